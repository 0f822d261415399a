// Hand-written AVX-512 loops of the elementwise primitives in ewise.go, one
// per primitive, on blocks*16 floats each; the Go callers do the tail.

//go:build !noasm

#include "textflag.h"

// func addVVAVX512(dst, a, b *float32, blocks int)
// dst = a OP b: Go operand order puts b first, so the instruction computes a OP b.
TEXT ·addVVAVX512(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ blocks+24(FP), CX
addVVloop:
	VMOVUPS (SI), Z0
	VADDPS (DX), Z0, Z0
	VMOVUPS Z0, (DI)
	ADDQ $64, SI
	ADDQ $64, DX
	ADDQ $64, DI
	DECQ CX
	JNZ addVVloop
	VZEROUPPER
	RET

// func subVVAVX512(dst, a, b *float32, blocks int)
// dst = a OP b: Go operand order puts b first, so the instruction computes a OP b.
TEXT ·subVVAVX512(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ blocks+24(FP), CX
subVVloop:
	VMOVUPS (SI), Z0
	VSUBPS (DX), Z0, Z0
	VMOVUPS Z0, (DI)
	ADDQ $64, SI
	ADDQ $64, DX
	ADDQ $64, DI
	DECQ CX
	JNZ subVVloop
	VZEROUPPER
	RET

// func mulVVAVX512(dst, a, b *float32, blocks int)
// dst = a OP b: Go operand order puts b first, so the instruction computes a OP b.
TEXT ·mulVVAVX512(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ blocks+24(FP), CX
mulVVloop:
	VMOVUPS (SI), Z0
	VMULPS (DX), Z0, Z0
	VMOVUPS Z0, (DI)
	ADDQ $64, SI
	ADDQ $64, DX
	ADDQ $64, DI
	DECQ CX
	JNZ mulVVloop
	VZEROUPPER
	RET

// func divVVAVX512(dst, a, b *float32, blocks int)
// dst = a OP b: Go operand order puts b first, so the instruction computes a OP b.
TEXT ·divVVAVX512(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ blocks+24(FP), CX
divVVloop:
	VMOVUPS (SI), Z0
	VDIVPS (DX), Z0, Z0
	VMOVUPS Z0, (DI)
	ADDQ $64, SI
	ADDQ $64, DX
	ADDQ $64, DI
	DECQ CX
	JNZ divVVloop
	VZEROUPPER
	RET

// func addVSAVX512(dst, a *float32, blocks int, s float32)
TEXT ·addVSAVX512(SB), NOSPLIT, $0-28
	MOVQ dst+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ blocks+16(FP), CX
	VBROADCASTSS s+24(FP), Z1
addVSloop:
	VMOVUPS (SI), Z0
	VADDPS Z1, Z0, Z0
	VMOVUPS Z0, (DI)
	ADDQ $64, SI
	ADDQ $64, DI
	DECQ CX
	JNZ addVSloop
	VZEROUPPER
	RET

// func mulVSAVX512(dst, a *float32, blocks int, s float32)
TEXT ·mulVSAVX512(SB), NOSPLIT, $0-28
	MOVQ dst+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ blocks+16(FP), CX
	VBROADCASTSS s+24(FP), Z1
mulVSloop:
	VMOVUPS (SI), Z0
	VMULPS Z1, Z0, Z0
	VMOVUPS Z0, (DI)
	ADDQ $64, SI
	ADDQ $64, DI
	DECQ CX
	JNZ mulVSloop
	VZEROUPPER
	RET

// func divVSAVX512(dst, a *float32, blocks int, s float32)
TEXT ·divVSAVX512(SB), NOSPLIT, $0-28
	MOVQ dst+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ blocks+16(FP), CX
	VBROADCASTSS s+24(FP), Z1
divVSloop:
	VMOVUPS (SI), Z0
	VDIVPS Z1, Z0, Z0
	VMOVUPS Z0, (DI)
	ADDQ $64, SI
	ADDQ $64, DI
	DECQ CX
	JNZ divVSloop
	VZEROUPPER
	RET

// func clipAVX512(dst, a *float32, blocks int, lo, hi float32)
// MAXPS and MINPS return their second source when either is NaN: with x
// second, NaN stays NaN, and x below lo becomes lo, then above hi hi, as
// Clip does (hi when lo > hi).
TEXT ·clipAVX512(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ blocks+16(FP), CX
	VBROADCASTSS lo+24(FP), Z1
	VBROADCASTSS hi+28(FP), Z2
cliploop:
	VMOVUPS (SI), Z0
	VMAXPS Z0, Z1, Z0
	VMINPS Z0, Z2, Z0
	VMOVUPS Z0, (DI)
	ADDQ $64, SI
	ADDQ $64, DI
	DECQ CX
	JNZ cliploop
	VZEROUPPER
	RET

// func hardSigmoidAVX512(dst, a *float32, blocks int, alpha, beta float64)
// In float64, as the reference does: max(0, min(1, alpha*x + beta)) with a
// separate multiply and add, then rounded to float32. MINPD and MAXPD return
// their second source when either is NaN: with the value second, NaN stays.
TEXT ·hardSigmoidAVX512(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ blocks+16(FP), CX
	VBROADCASTSD alpha+24(FP), Z4
	VBROADCASTSD beta+32(FP), Z5
	MOVQ $0x3ff0000000000000, AX
	VPBROADCASTQ AX, Z6
	VPXORQ Z7, Z7, Z7
hsigloop:
	VCVTPS2PD (SI), Z0
	VCVTPS2PD 32(SI), Z1
	VMULPD Z4, Z0, Z0
	VMULPD Z4, Z1, Z1
	VADDPD Z5, Z0, Z0
	VADDPD Z5, Z1, Z1
	VMINPD Z0, Z6, Z0
	VMINPD Z1, Z6, Z1
	VMAXPD Z0, Z7, Z0
	VMAXPD Z1, Z7, Z1
	VCVTPD2PS Z0, Y0
	VCVTPD2PS Z1, Y1
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	ADDQ $64, SI
	ADDQ $64, DI
	DECQ CX
	JNZ hsigloop
	VZEROUPPER
	RET

// func hardSwishAVX512(dst, a *float32, blocks int)
// In float64, as the reference does: x * max(0, min(1, x/6 + 0.5)).
TEXT ·hardSwishAVX512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ blocks+16(FP), CX
	MOVQ $0x4018000000000000, AX
	VPBROADCASTQ AX, Z4
	MOVQ $0x3fe0000000000000, AX
	VPBROADCASTQ AX, Z5
	MOVQ $0x3ff0000000000000, AX
	VPBROADCASTQ AX, Z6
	VPXORQ Z7, Z7, Z7
hswloop:
	VCVTPS2PD (SI), Z0
	VCVTPS2PD 32(SI), Z1
	VDIVPD Z4, Z0, Z2
	VDIVPD Z4, Z1, Z3
	VADDPD Z5, Z2, Z2
	VADDPD Z5, Z3, Z3
	VMINPD Z2, Z6, Z2
	VMINPD Z3, Z6, Z3
	VMAXPD Z2, Z7, Z2
	VMAXPD Z3, Z7, Z3
	VMULPD Z2, Z0, Z0
	VMULPD Z3, Z1, Z1
	VCVTPD2PS Z0, Y0
	VCVTPD2PS Z1, Y1
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	ADDQ $64, SI
	ADDQ $64, DI
	DECQ CX
	JNZ hswloop
	VZEROUPPER
	RET
