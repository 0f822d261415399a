// Hand-written; the constants are vmath.go's as float32 bit patterns.

//go:build !noasm

#include "textflag.h"

// Constants are float32 bit patterns. geluc holds erf's Maclaurin
// coefficients (2/sqrt(pi) * (-1)^n / (n! (2n+1)), n = 11 down to 0) and then
// Numerical Recipes' erfc coefficients in Horner order, as in vmath.go.
DATA geluc<>+0(SB)/4, $0xb0a8eb8c
DATA geluc<>+4(SB)/4, $0x327e62b9
DATA geluc<>+8(SB)/4, $0xb42fba17
DATA geluc<>+12(SB)/4, $0x35dcf365
DATA geluc<>+16(SB)/4, $0xb77a692e
DATA geluc<>+20(SB)/4, $0x38fcd193
DATA geluc<>+24(SB)/4, $0xba6016da
DATA geluc<>+28(SB)/4, $0x3bab2de7
DATA geluc<>+32(SB)/4, $0xbcdc1672
DATA geluc<>+36(SB)/4, $0x3de71791
DATA geluc<>+40(SB)/4, $0xbec093a3
DATA geluc<>+44(SB)/4, $0x3f906ebb
DATA geluc<>+48(SB)/4, $0x3e2ef945
DATA geluc<>+52(SB)/4, $0xbf527892
DATA geluc<>+56(SB)/4, $0x3fbe87b0
DATA geluc<>+60(SB)/4, $0xbf914e5d
DATA geluc<>+64(SB)/4, $0x3e8ec7cc
DATA geluc<>+68(SB)/4, $0xbe3ec24c
DATA geluc<>+72(SB)/4, $0x3dc636c9
DATA geluc<>+76(SB)/4, $0x3ebf88fb
DATA geluc<>+80(SB)/4, $0x3f8000c7
DATA geluc<>+84(SB)/4, $0xbfa1fc4e
GLOBL geluc<>(SB), RODATA|NOPTR, $88

// EXPCONSTS loads Expf's constants: Z16 = expMin, Z17 = 88, Z18 = log2(e),
// Z19/Z20 = ln2 split high/low, Z21-Z26 the polynomial, Z27 = 1.
#define EXPCONSTS \
	MOVL $0xc2aeac4f, AX \
	VPBROADCASTD AX, Z16 \
	MOVL $0x42b00000, AX \
	VPBROADCASTD AX, Z17 \
	MOVL $0x3fb8aa3b, AX \
	VPBROADCASTD AX, Z18 \
	MOVL $0x3f318000, AX \
	VPBROADCASTD AX, Z19 \
	MOVL $0xb95e8083, AX \
	VPBROADCASTD AX, Z20 \
	MOVL $0x39506967, AX \
	VPBROADCASTD AX, Z21 \
	MOVL $0x3ab743ce, AX \
	VPBROADCASTD AX, Z22 \
	MOVL $0x3c088908, AX \
	VPBROADCASTD AX, Z23 \
	MOVL $0x3d2aa9c1, AX \
	VPBROADCASTD AX, Z24 \
	MOVL $0x3e2aaaaa, AX \
	VPBROADCASTD AX, Z25 \
	MOVL $0x3f000000, AX \
	VPBROADCASTD AX, Z26 \
	MOVL $0x3f800000, AX \
	VPBROADCASTD AX, Z27

// EXP sets P = e^X for the 16 lanes of X as Expf does (X is clobbered; T and
// R2 are scratch): clamp to [-88, 88], n = round(x log2 e), r = x - n ln2,
// the polynomial in r, then VSCALEFPS multiplies by 2^n.
#define EXP(X, T, P, R2) \
	VCMPPS $5, Z16, X, K3 \
	VMAXPS Z16, X, X \
	VMINPS Z17, X, X \
	VMULPS Z18, X, T \
	VRNDSCALEPS $0, T, T \
	VFNMADD231PS Z19, T, X \
	VFNMADD231PS Z20, T, X \
	VMOVAPS Z21, P \
	VFMADD213PS Z22, X, P \
	VFMADD213PS Z23, X, P \
	VFMADD213PS Z24, X, P \
	VFMADD213PS Z25, X, P \
	VFMADD213PS Z26, X, P \
	VMULPS X, X, R2 \
	VFMADD213PS X, R2, P \
	VADDPS Z27, P, P \
	VSCALEFPS T, P, P \
	VMOVAPS.Z P, K3, P

// func expSubSumAVX512(x *float32, blocks int, m float32, acc *[16]float32)
TEXT ·expSubSumAVX512(SB), NOSPLIT, $0-32
	MOVQ x+0(FP), SI
	MOVQ blocks+8(FP), CX
	VBROADCASTSS m+16(FP), Z1
	MOVQ acc+24(FP), DI
	EXPCONSTS
	VPXORD Z31, Z31, Z31
exploop:
	VMOVUPS (SI), Z0
	VSUBPS Z1, Z0, Z0
	EXP(Z0, Z2, Z3, Z4)
	VMOVUPS Z3, (SI)
	VADDPS Z3, Z31, Z31
	ADDQ $64, SI
	DECQ CX
	JNZ exploop
	VMOVUPS Z31, (DI)
	VZEROUPPER
	RET

// func sigmoidAVX512(dst, a *float32, blocks int)
// dst = 1/(1+e) where a >= 0 and e/(1+e) where a < 0, e = e^-|a| (EXP), NaN
// kept: Sigmoid's formula.
TEXT ·sigmoidAVX512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ blocks+16(FP), CX
	EXPCONSTS
	MOVL $0x80000000, AX
	VPBROADCASTD AX, Z29
	VPXORD Z28, Z28, Z28
sigloop:
	VMOVUPS (SI), Z0
	VPORD Z29, Z0, Z1
	EXP(Z1, Z2, Z3, Z4)
	VADDPS Z27, Z3, Z5
	VMOVAPS Z27, Z6
	VCMPPS $1, Z28, Z0, K1
	VMOVAPS Z3, K1, Z6
	VDIVPS Z5, Z6, Z6
	VCMPPS $3, Z0, Z0, K2
	VMOVAPS Z0, K2, Z6
	VMOVUPS Z6, (DI)
	ADDQ $64, SI
	ADDQ $64, DI
	DECQ CX
	JNZ sigloop
	VZEROUPPER
	RET

// func geluRowsAVX512(dst, src *float32, ld, rows, blocks int)
// Gelu of rows rows of blocks*16 floats, ld floats apart in src and dst
// (which may be the same): the constants loaded once for a whole block of
// a matrix. Near zero erf comes from its series, further out from erfc.
TEXT ·geluRowsAVX512(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ ld+16(FP), R10
	SHLQ $2, R10
	MOVQ rows+24(FP), R11
	EXPCONSTS
	MOVL $0x3f3504f3, AX
	VPBROADCASTD AX, Z28
	MOVL $0x3f000000, AX
	VPBROADCASTD AX, Z29
	MOVL $0x3f400000, AX
	VPBROADCASTD AX, Z30
	MOVL $0x7fffffff, AX
	VPBROADCASTD AX, Z15
	VPXORD Z14, Z14, Z14
gelurow:
	MOVQ SI, R12
	MOVQ DI, R13
	MOVQ blocks+32(FP), CX
gelurloop:
	VMOVUPS (R12), Z0
	VMULPS Z28, Z0, Z1
	VPANDD Z15, Z1, Z2
	// Near zero: Z7 = x/2 * (1 + z * series(z^2)).
	VMULPS Z1, Z1, Z5
	VBROADCASTSS geluc<>+0(SB), Z6
	VFMADD213PS.BCST geluc<>+4(SB), Z5, Z6
	VFMADD213PS.BCST geluc<>+8(SB), Z5, Z6
	VFMADD213PS.BCST geluc<>+12(SB), Z5, Z6
	VFMADD213PS.BCST geluc<>+16(SB), Z5, Z6
	VFMADD213PS.BCST geluc<>+20(SB), Z5, Z6
	VFMADD213PS.BCST geluc<>+24(SB), Z5, Z6
	VFMADD213PS.BCST geluc<>+28(SB), Z5, Z6
	VFMADD213PS.BCST geluc<>+32(SB), Z5, Z6
	VFMADD213PS.BCST geluc<>+36(SB), Z5, Z6
	VFMADD213PS.BCST geluc<>+40(SB), Z5, Z6
	VFMADD213PS.BCST geluc<>+44(SB), Z5, Z6
	VMULPS Z1, Z6, Z6
	VADDPS Z27, Z6, Z6
	VMULPS Z0, Z6, Z6
	VMULPS Z29, Z6, Z7
	// Further out: erfc(|z|) = t * e^(q(t) - z^2), t = 1/(1 + |z|/2).
	VMOVAPS Z27, Z10
	VFMADD231PS Z29, Z2, Z10
	VDIVPS Z10, Z27, Z8
	VBROADCASTSS geluc<>+48(SB), Z9
	VFMADD213PS.BCST geluc<>+52(SB), Z8, Z9
	VFMADD213PS.BCST geluc<>+56(SB), Z8, Z9
	VFMADD213PS.BCST geluc<>+60(SB), Z8, Z9
	VFMADD213PS.BCST geluc<>+64(SB), Z8, Z9
	VFMADD213PS.BCST geluc<>+68(SB), Z8, Z9
	VFMADD213PS.BCST geluc<>+72(SB), Z8, Z9
	VFMADD213PS.BCST geluc<>+76(SB), Z8, Z9
	VFMADD213PS.BCST geluc<>+80(SB), Z8, Z9
	VFMADD213PS.BCST geluc<>+84(SB), Z8, Z9
	VFNMADD231PS Z2, Z2, Z9
	EXP(Z9, Z10, Z11, Z12)
	VMULPS Z8, Z11, Z11
	// h = erfc(|z|)/2; x * (1 - h) for x > 0, x * h otherwise.
	VMULPS Z29, Z11, Z11
	VSUBPS Z11, Z27, Z12
	VCMPPS $1, Z0, Z14, K2
	VBLENDMPS Z12, Z11, K2, Z13
	VMULPS Z0, Z13, Z13
	// Pick the series where |z| < 0.75.
	VCMPPS $1, Z30, Z2, K1
	VBLENDMPS Z7, Z13, K1, Z13
	VMOVUPS Z13, (R13)
	ADDQ $64, R12
	ADDQ $64, R13
	DECQ CX
	JNZ gelurloop
	ADDQ R10, SI
	ADDQ R10, DI
	DECQ R11
	JNZ gelurow
	VZEROUPPER
	RET

// func addToAVX512(dst, src *float32, blocks int)
TEXT ·addToAVX512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ blocks+16(FP), CX
addloop:
	VMOVUPS (DI), Z0
	VADDPS (SI), Z0, Z0
	VMOVUPS Z0, (DI)
	ADDQ $64, SI
	ADDQ $64, DI
	DECQ CX
	JNZ addloop
	VZEROUPPER
	RET

// func scaleAVX512(x *float32, blocks int, s float32)
TEXT ·scaleAVX512(SB), NOSPLIT, $0-20
	MOVQ x+0(FP), DI
	MOVQ blocks+8(FP), CX
	VBROADCASTSS s+16(FP), Z1
scaleloop:
	VMULPS (DI), Z1, Z0
	VMOVUPS Z0, (DI)
	ADDQ $64, DI
	DECQ CX
	JNZ scaleloop
	VZEROUPPER
	RET

// func maxAVX512(x *float32, blocks int, acc *[16]float32) (nan bool)
// Lanes holding NaN are counted in K2 (an unordered self-compare), since
// VMAXPS would drop them.
TEXT ·maxAVX512(SB), NOSPLIT, $0-25
	MOVQ x+0(FP), SI
	MOVQ blocks+8(FP), CX
	MOVQ acc+16(FP), DI
	VMOVUPS (SI), Z1
	KXORW K2, K2, K2
maxloop:
	VMOVUPS (SI), Z0
	VCMPPS $3, Z0, Z0, K1
	KORW K1, K2, K2
	VMAXPS Z0, Z1, Z1
	ADDQ $64, SI
	DECQ CX
	JNZ maxloop
	VMOVUPS Z1, (DI)
	KORTESTW K2, K2
	SETNE nan+24(FP)
	VZEROUPPER
	RET

// func addConstReluAVX512(x *float32, blocks int, b float32, relu bool)
// VMAXPS with 0 as its first source returns the second (x) unless 0 > x, so
// NaN and -0 pass through as Relu's Go loop leaves them.
TEXT ·addConstReluAVX512(SB), NOSPLIT, $0-21
	MOVQ x+0(FP), DI
	MOVQ blocks+8(FP), CX
	VBROADCASTSS b+16(FP), Z1
	VPXORD Z2, Z2, Z2
	MOVBLZX relu+20(FP), AX
	TESTL AX, AX
	JNZ addreluloop
addconstloop:
	VADDPS (DI), Z1, Z0
	VMOVUPS Z0, (DI)
	ADDQ $64, DI
	DECQ CX
	JNZ addconstloop
	VZEROUPPER
	RET
addreluloop:
	VADDPS (DI), Z1, Z0
	VMAXPS Z0, Z2, Z0
	VMOVUPS Z0, (DI)
	ADDQ $64, DI
	DECQ CX
	JNZ addreluloop
	VZEROUPPER
	RET

// func reluAVX512(x *float32, blocks int)
TEXT ·reluAVX512(SB), NOSPLIT, $0-16
	MOVQ x+0(FP), DI
	MOVQ blocks+8(FP), CX
	VPXORD Z2, Z2, Z2
reluloop:
	VMOVUPS (DI), Z0
	VMAXPS Z0, Z2, Z0
	VMOVUPS Z0, (DI)
	ADDQ $64, DI
	DECQ CX
	JNZ reluloop
	VZEROUPPER
	RET

// func maxZeroAVX512(dst, src *float32, blocks int)
// VMAXPS with x as its first source returns x only when x > 0, so NaN and
// -0 give 0.
TEXT ·maxZeroAVX512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ blocks+16(FP), CX
	VPXORD Z2, Z2, Z2
maxzeroloop:
	VMOVUPS (SI), Z0
	VMAXPS Z2, Z0, Z0
	VMOVUPS Z0, (DI)
	ADDQ $64, SI
	ADDQ $64, DI
	DECQ CX
	JNZ maxzeroloop
	VZEROUPPER
	RET
