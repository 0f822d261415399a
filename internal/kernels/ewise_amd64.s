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

// func axpyAVX512(dst, src *float32, n int, a float32)
// dst += a*src with one rounding per element (fused multiply-add), n floats:
// whole vectors, then the last n%16 under a mask (masked-out lanes are
// neither read nor written).
TEXT ·axpyAVX512(SB), NOSPLIT, $0-28
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), DX
	VBROADCASTSS a+24(FP), Z1
	MOVQ DX, CX
	SHRQ $4, CX
	JZ axpytail
axpyloop:
	VMOVUPS (DI), Z0
	VFMADD231PS (SI), Z1, Z0
	VMOVUPS Z0, (DI)
	ADDQ $64, SI
	ADDQ $64, DI
	DECQ CX
	JNZ axpyloop
axpytail:
	ANDQ $15, DX
	JZ axpydone
	MOVQ DX, CX
	MOVL $1, AX
	SHLL CX, AX
	DECL AX
	KMOVW AX, K1
	VMOVUPS.Z (DI), K1, Z0
	VMOVUPS.Z (SI), K1, Z2
	VFMADD231PS Z2, Z1, Z0
	VMOVUPS Z0, K1, (DI)
axpydone:
	VZEROUPPER
	RET

// DWINIT8 sets the eight accumulators Z0-Z7 to the bias (Z31).
#define DWINIT8 \
	VMOVAPS Z31, Z0 \
	VMOVAPS Z31, Z1 \
	VMOVAPS Z31, Z2 \
	VMOVAPS Z31, Z3 \
	VMOVAPS Z31, Z4 \
	VMOVAPS Z31, Z5 \
	VMOVAPS Z31, Z6 \
	VMOVAPS Z31, Z7

// DWTAP points SI at this tap's input for the current block (base R13 plus
// offs[t]*4 from R11, plus the block's byte offset BX) and broadcasts its
// weight (R12) into Z16.
#define DWTAP \
	MOVQ (R11), SI \
	SHLQ $2, SI \
	ADDQ R13, SI \
	ADDQ BX, SI \
	VBROADCASTSS (R12), Z16

// DWNEXT steps to the next tap and counts CX down.
#define DWNEXT \
	ADDQ $8, R11 \
	ADDQ $4, R12 \
	DECQ CX

// LANEMASK sets K to the lanes of a vector that starts off outputs into the
// DX left: min(16, max(0, DX-off)) low bits.
#define LANEMASK(off, K) \
	MOVQ DX, CX \
	SUBQ $off, CX \
	MOVQ $16, AX \
	CMPQ CX, AX \
	CMOVQGT AX, CX \
	XORQ AX, AX \
	CMPQ CX, AX \
	CMOVQLT AX, CX \
	MOVL $1, AX \
	SHLL CX, AX \
	DECL AX \
	KMOVW AX, K

// func dwRowAVX512(dst *float32, n int, base *float32, offs *int, w *float32, taps int, bias float32)
// dst[j] = bias + sum over t of w[t]*base[offs[t]+j], for j < n: the
// accumulators of 128 outputs stay in registers over every tap (eight
// independent sums, so the multiply-adds overlap), each tap a broadcast
// weight times one load per 16 outputs. The last n%128 outputs take one more
// pass over the taps, with eight accumulators (more than 64 left) or four,
// the loads and stores past n masked off: a short row costs one pass, not one
// per 16 outputs.
TEXT ·dwRowAVX512(SB), NOSPLIT, $0-52
	MOVQ dst+0(FP), DI
	MOVQ n+8(FP), DX
	MOVQ base+16(FP), R13
	MOVQ offs+24(FP), R8
	MOVQ w+32(FP), R9
	MOVQ taps+40(FP), R10
	VBROADCASTSS bias+48(FP), Z31
	XORQ BX, BX
dw128:
	CMPQ DX, $128
	JLT dwrest
	DWINIT8
	MOVQ R8, R11
	MOVQ R9, R12
	MOVQ R10, CX
dw128tap:
	DWTAP
	VFMADD231PS (SI), Z16, Z0
	VFMADD231PS 64(SI), Z16, Z1
	VFMADD231PS 128(SI), Z16, Z2
	VFMADD231PS 192(SI), Z16, Z3
	VFMADD231PS 256(SI), Z16, Z4
	VFMADD231PS 320(SI), Z16, Z5
	VFMADD231PS 384(SI), Z16, Z6
	VFMADD231PS 448(SI), Z16, Z7
	DWNEXT
	JNZ dw128tap
	VMOVUPS Z0, (DI)(BX*1)
	VMOVUPS Z1, 64(DI)(BX*1)
	VMOVUPS Z2, 128(DI)(BX*1)
	VMOVUPS Z3, 192(DI)(BX*1)
	VMOVUPS Z4, 256(DI)(BX*1)
	VMOVUPS Z5, 320(DI)(BX*1)
	VMOVUPS Z6, 384(DI)(BX*1)
	VMOVUPS Z7, 448(DI)(BX*1)
	ADDQ $512, BX
	SUBQ $128, DX
	JMP dw128
dwrest:
	TESTQ DX, DX
	JZ dwdone
	CMPQ DX, $64
	JLE dwrest4
	// 65 to 127 left: vectors 0-3 whole, 4-7 under masks K4-K7.
	LANEMASK(64, K4)
	LANEMASK(80, K5)
	LANEMASK(96, K6)
	LANEMASK(112, K7)
	DWINIT8
	MOVQ R8, R11
	MOVQ R9, R12
	MOVQ R10, CX
dwrest8tap:
	DWTAP
	VFMADD231PS (SI), Z16, Z0
	VFMADD231PS 64(SI), Z16, Z1
	VFMADD231PS 128(SI), Z16, Z2
	VFMADD231PS 192(SI), Z16, Z3
	VMOVUPS.Z 256(SI), K4, Z8
	VMOVUPS.Z 320(SI), K5, Z9
	VMOVUPS.Z 384(SI), K6, Z10
	VMOVUPS.Z 448(SI), K7, Z11
	VFMADD231PS Z8, Z16, Z4
	VFMADD231PS Z9, Z16, Z5
	VFMADD231PS Z10, Z16, Z6
	VFMADD231PS Z11, Z16, Z7
	DWNEXT
	JNZ dwrest8tap
	VMOVUPS Z0, (DI)(BX*1)
	VMOVUPS Z1, 64(DI)(BX*1)
	VMOVUPS Z2, 128(DI)(BX*1)
	VMOVUPS Z3, 192(DI)(BX*1)
	VMOVUPS Z4, K4, 256(DI)(BX*1)
	VMOVUPS Z5, K5, 320(DI)(BX*1)
	VMOVUPS Z6, K6, 384(DI)(BX*1)
	VMOVUPS Z7, K7, 448(DI)(BX*1)
	JMP dwdone
dwrest4:
	// 1 to 64 left: four vectors under masks K4-K7.
	LANEMASK(0, K4)
	LANEMASK(16, K5)
	LANEMASK(32, K6)
	LANEMASK(48, K7)
	VMOVAPS Z31, Z0
	VMOVAPS Z31, Z1
	VMOVAPS Z31, Z2
	VMOVAPS Z31, Z3
	MOVQ R8, R11
	MOVQ R9, R12
	MOVQ R10, CX
dwrest4tap:
	DWTAP
	VMOVUPS.Z (SI), K4, Z8
	VMOVUPS.Z 64(SI), K5, Z9
	VMOVUPS.Z 128(SI), K6, Z10
	VMOVUPS.Z 192(SI), K7, Z11
	VFMADD231PS Z8, Z16, Z0
	VFMADD231PS Z9, Z16, Z1
	VFMADD231PS Z10, Z16, Z2
	VFMADD231PS Z11, Z16, Z3
	DWNEXT
	JNZ dwrest4tap
	VMOVUPS Z0, K4, (DI)(BX*1)
	VMOVUPS Z1, K5, 64(DI)(BX*1)
	VMOVUPS Z2, K6, 128(DI)(BX*1)
	VMOVUPS Z3, K7, 192(DI)(BX*1)
dwdone:
	VZEROUPPER
	RET

// Exp64 on 8 float64 lanes, operation for operation as the Go function does
// it (vmath.go), so results are the same bits: X in, R out; Z8-Z14 and K1-K3
// are scratch, Z16-Z30 and R14 hold the constants EXPCONSTS loads.
#define EXP64(X, R) \
	VMULPD Z16, X, Z8 \
	VADDPD Z17, Z8, Z8 \
	VSUBPD Z17, Z8, Z9 \
	VPANDQ Z26, Z8, Z10 \
	VPSUBQ Z27, Z10, Z10 \
	VMULPD Z18, Z9, Z11 \
	VSUBPD Z11, X, Z11 \
	VPSRAQ $5, Z10, Z12 \
	VPANDQ Z30, Z10, Z10 \
	KXNORW K1, K1, K1 \
	VGATHERQPD (R14)(Z10*8), K1, Z13 \
	VMULPD Z11, Z11, Z14 \
	VMULPD Z19, Z11, Z9 \
	VADDPD Z20, Z9, Z9 \
	VMULPD Z21, Z11, Z10 \
	VADDPD Z22, Z10, Z10 \
	VMULPD Z9, Z14, Z9 \
	VADDPD Z10, Z9, Z9 \
	VMULPD Z9, Z14, Z9 \
	VADDPD Z11, Z9, Z9 \
	VADDPD Z23, Z9, Z9 \
	VMULPD Z13, Z9, Z9 \
	VPADDQ Z28, Z12, Z12 \
	VPSLLQ $52, Z12, Z12 \
	VMULPD Z12, Z9, R \
	VCMPPD $0x1e, Z24, X, K2 \
	VMOVAPD Z29, K2, R \
	VCMPPD $0x11, Z25, X, K3 \
	VPXORQ R, R, K3, R

#define EXPCONSTS \
	MOVQ $0x40471547652b82fe, AX \
	VPBROADCASTQ AX, Z16 \
	MOVQ $0x4338000000000000, AX \
	VPBROADCASTQ AX, Z17 \
	MOVQ $0x3f962e42fefa39ef, AX \
	VPBROADCASTQ AX, Z18 \
	MOVQ $0x3f81111111111111, AX \
	VPBROADCASTQ AX, Z19 \
	MOVQ $0x3fa5555555555555, AX \
	VPBROADCASTQ AX, Z20 \
	MOVQ $0x3fc5555555555555, AX \
	VPBROADCASTQ AX, Z21 \
	MOVQ $0x3fe0000000000000, AX \
	VPBROADCASTQ AX, Z22 \
	MOVQ $0x3ff0000000000000, AX \
	VPBROADCASTQ AX, Z23 \
	MOVQ $0x4059000000000000, AX \
	VPBROADCASTQ AX, Z24 \
	MOVQ $0xc05b800000000000, AX \
	VPBROADCASTQ AX, Z25 \
	MOVQ $0x000fffffffffffff, AX \
	VPBROADCASTQ AX, Z26 \
	MOVQ $0x0008000000000000, AX \
	VPBROADCASTQ AX, Z27 \
	MOVQ $1023, AX \
	VPBROADCASTQ AX, Z28 \
	MOVQ $0x7ff0000000000000, AX \
	VPBROADCASTQ AX, Z29 \
	MOVQ $31, AX \
	VPBROADCASTQ AX, Z30 \
	LEAQ ·expTable(SB), R14

// func expAVX512(dst, a *float32, blocks int)
// dst = float32(Exp64(float64(a))).
TEXT ·expAVX512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ blocks+16(FP), CX
	EXPCONSTS
exploop:
	VCVTPS2PD (SI), Z0
	VCVTPS2PD 32(SI), Z1
	EXP64(Z0, Z2)
	EXP64(Z1, Z3)
	VCVTPD2PS Z2, Y2
	VCVTPD2PS Z3, Y3
	VMOVUPS Y2, (DI)
	VMOVUPS Y3, 32(DI)
	ADDQ $64, SI
	ADDQ $64, DI
	DECQ CX
	JNZ exploop
	VZEROUPPER
	RET

// func copyRowsAVX512(dst *float32, dstStride int, src *float32, srcStride int, rows, cols int)
// Copies rows rows of cols floats, 16 at a time, the last cols%16 under a
// mask (K1, empty when there are none).
TEXT ·copyRowsAVX512(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ dstStride+8(FP), R8
	SHLQ $2, R8
	MOVQ src+16(FP), SI
	MOVQ srcStride+24(FP), R9
	SHLQ $2, R9
	MOVQ rows+32(FP), R10
	MOVQ cols+40(FP), DX
	MOVQ DX, CX
	ANDQ $15, CX
	MOVL $1, AX
	SHLL CX, AX
	DECL AX
	KMOVW AX, K1
	MOVQ DX, R11
	SHRQ $4, R11
crow:
	XORQ BX, BX
	MOVQ R11, CX
	TESTQ CX, CX
	JZ ctail
cvec:
	VMOVUPS (SI)(BX*1), Z0
	VMOVUPS Z0, (DI)(BX*1)
	ADDQ $64, BX
	DECQ CX
	JNZ cvec
ctail:
	VMOVUPS.Z (SI)(BX*1), K1, Z0
	VMOVUPS Z0, K1, (DI)(BX*1)
	ADDQ R9, SI
	ADDQ R8, DI
	DECQ R10
	JNZ crow
	VZEROUPPER
	RET
