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
