// Hand-written twins of norm.go's loops.

//go:build !noasm

#include "textflag.h"

// func sumF64AVX512(x *float32, blocks int, acc *[8]float64)
// Two float64 accumulators (the low and high eight floats of each block),
// added together at the end.
TEXT ·sumF64AVX512(SB), NOSPLIT, $0-24
	MOVQ x+0(FP), SI
	MOVQ blocks+8(FP), CX
	MOVQ acc+16(FP), DI
	VXORPD Z0, Z0, Z0
	VXORPD Z1, Z1, Z1
sumloop:
	VCVTPS2PD (SI), Z2
	VCVTPS2PD 32(SI), Z3
	VADDPD Z2, Z0, Z0
	VADDPD Z3, Z1, Z1
	ADDQ $64, SI
	DECQ CX
	JNZ sumloop
	VADDPD Z1, Z0, Z0
	VMOVUPD Z0, (DI)
	VZEROUPPER
	RET

// func sqDevF64AVX512(x *float32, blocks int, mean float64, acc *[8]float64)
TEXT ·sqDevF64AVX512(SB), NOSPLIT, $0-32
	MOVQ x+0(FP), SI
	MOVQ blocks+8(FP), CX
	VBROADCASTSD mean+16(FP), Z6
	MOVQ acc+24(FP), DI
	VXORPD Z0, Z0, Z0
	VXORPD Z1, Z1, Z1
sqloop:
	VCVTPS2PD (SI), Z2
	VCVTPS2PD 32(SI), Z3
	VSUBPD Z6, Z2, Z2
	VSUBPD Z6, Z3, Z3
	VFMADD231PD Z2, Z2, Z0
	VFMADD231PD Z3, Z3, Z1
	ADDQ $64, SI
	DECQ CX
	JNZ sqloop
	VADDPD Z1, Z0, Z0
	VMOVUPD Z0, (DI)
	VZEROUPPER
	RET

// func normalizeAVX512(dst, src, scale, bias *float32, blocks int, mean, invStd float64)
// Per 16 floats: widen, subtract mean, multiply by invStd (float64), narrow
// (round to nearest, as Go's conversion), multiply by scale, add bias.
TEXT ·normalizeAVX512(SB), NOSPLIT, $0-56
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ scale+16(FP), DX
	MOVQ bias+24(FP), BX
	MOVQ blocks+32(FP), CX
	VBROADCASTSD mean+40(FP), Z6
	VBROADCASTSD invStd+48(FP), Z7
normloop:
	VCVTPS2PD (SI), Z0
	VCVTPS2PD 32(SI), Z1
	VSUBPD Z6, Z0, Z0
	VSUBPD Z6, Z1, Z1
	VMULPD Z7, Z0, Z0
	VMULPD Z7, Z1, Z1
	VCVTPD2PS Z0, Y0
	VCVTPD2PS Z1, Y1
	VINSERTF64X4 $1, Y1, Z0, Z0
	VMULPS (DX), Z0, Z0
	TESTQ BX, BX
	JZ normstore
	VADDPS (BX), Z0, Z0
	ADDQ $64, BX
normstore:
	VMOVUPS Z0, (DI)
	ADDQ $64, SI
	ADDQ $64, DX
	ADDQ $64, DI
	DECQ CX
	JNZ normloop
	VZEROUPPER
	RET
