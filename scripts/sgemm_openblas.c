// sgemm_openblas times OpenBLAS's cblas_sgemm on issue 4's BERT shapes
// (M in {16, 128}; K, N in {384, 768, 1536, 3072}), row-major, no transposes,
// alpha 1, beta 0, the best of five rounds of about 40 ms each, and prints one
// line per shape: "M K N GFLOPS". Run with OPENBLAS_NUM_THREADS=1 for one core.
// Built by scripts/bench-engine.sh only; Spindle does not link OpenBLAS.
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(void) {
	int ms[] = {16, 128}, ks[] = {384, 768, 1536, 3072};
	for (int mi = 0; mi < 2; mi++)
		for (int ki = 0; ki < 4; ki++)
			for (int ni = 0; ni < 4; ni++) {
				int m = ms[mi], k = ks[ki], n = ks[ni];
				float *a = malloc(sizeof(float) * m * k), *b = malloc(sizeof(float) * k * n), *c = malloc(sizeof(float) * m * n);
				for (int i = 0; i < m * k; i++) a[i] = rand() / (float)RAND_MAX;
				for (int i = 0; i < k * n; i++) b[i] = rand() / (float)RAND_MAX;
				cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1, a, k, b, n, 0, c, n);
				double best = 0, flops = 2.0 * m * n * k;
				for (int r = 0; r < 5; r++) {
					int reps = 0;
					double t0 = now(), t;
					do {
						cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1, a, k, b, n, 0, c, n);
						reps++;
						t = now() - t0;
					} while (t < 0.04);
					if (flops * reps / t / 1e9 > best) best = flops * reps / t / 1e9;
				}
				printf("%d %d %d %.1f\n", m, k, n, best);
				free(a); free(b); free(c);
			}
	return 0;
}
