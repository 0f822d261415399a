// Hand-written twin of MaxPool2x2 (pool.go).

//go:build !noasm

#include "textflag.h"

DATA evenidx<>+0(SB)/4, $0
DATA evenidx<>+4(SB)/4, $2
DATA evenidx<>+8(SB)/4, $4
DATA evenidx<>+12(SB)/4, $6
DATA evenidx<>+16(SB)/4, $8
DATA evenidx<>+20(SB)/4, $10
DATA evenidx<>+24(SB)/4, $12
DATA evenidx<>+28(SB)/4, $14
DATA evenidx<>+32(SB)/4, $16
DATA evenidx<>+36(SB)/4, $18
DATA evenidx<>+40(SB)/4, $20
DATA evenidx<>+44(SB)/4, $22
DATA evenidx<>+48(SB)/4, $24
DATA evenidx<>+52(SB)/4, $26
DATA evenidx<>+56(SB)/4, $28
DATA evenidx<>+60(SB)/4, $30
GLOBL evenidx<>(SB), RODATA|NOPTR, $64
DATA oddidx<>+0(SB)/4, $1
DATA oddidx<>+4(SB)/4, $3
DATA oddidx<>+8(SB)/4, $5
DATA oddidx<>+12(SB)/4, $7
DATA oddidx<>+16(SB)/4, $9
DATA oddidx<>+20(SB)/4, $11
DATA oddidx<>+24(SB)/4, $13
DATA oddidx<>+28(SB)/4, $15
DATA oddidx<>+32(SB)/4, $17
DATA oddidx<>+36(SB)/4, $19
DATA oddidx<>+40(SB)/4, $21
DATA oddidx<>+44(SB)/4, $23
DATA oddidx<>+48(SB)/4, $25
DATA oddidx<>+52(SB)/4, $27
DATA oddidx<>+56(SB)/4, $29
DATA oddidx<>+60(SB)/4, $31
GLOBL oddidx<>(SB), RODATA|NOPTR, $64

// masktab[n] is (1<<n) - 1, n = 0..16.
DATA masktab<>+0(SB)/2, $0x0
DATA masktab<>+2(SB)/2, $0x1
DATA masktab<>+4(SB)/2, $0x3
DATA masktab<>+6(SB)/2, $0x7
DATA masktab<>+8(SB)/2, $0xf
DATA masktab<>+10(SB)/2, $0x1f
DATA masktab<>+12(SB)/2, $0x3f
DATA masktab<>+14(SB)/2, $0x7f
DATA masktab<>+16(SB)/2, $0xff
DATA masktab<>+18(SB)/2, $0x1ff
DATA masktab<>+20(SB)/2, $0x3ff
DATA masktab<>+22(SB)/2, $0x7ff
DATA masktab<>+24(SB)/2, $0xfff
DATA masktab<>+26(SB)/2, $0x1fff
DATA masktab<>+28(SB)/2, $0x3fff
DATA masktab<>+30(SB)/2, $0x7fff
DATA masktab<>+32(SB)/2, $0xffff
GLOBL masktab<>(SB), RODATA|NOPTR, $34

// GOMAX sets d to Go's max(a, b) per lane: VMAXPS, then a AND b where a == b
// (so +0 beats -0), then a + b (a NaN) where either is NaN.
#define GOMAX(a, b, d) \
	VMAXPS b, a, d \
	VCMPPS $0, b, a, K4 \
	VPANDD b, a, K4, d \
	VCMPPS $3, b, a, K5 \
	VADDPS b, a, K5, d

// func maxPool2x2AVX512(src, dst *float32, oh, w, ow, rowStep int)
TEXT ·maxPool2x2AVX512(SB), NOSPLIT, $0-48
	MOVQ src+0(FP), SI
	MOVQ dst+8(FP), DI
	MOVQ oh+16(FP), R8
	MOVQ w+24(FP), R9
	SHLQ $2, R9
	MOVQ ow+32(FP), R10
	VMOVDQU32 evenidx<>(SB), Z30
	VMOVDQU32 oddidx<>(SB), Z31
	LEAQ masktab<>(SB), R14
poolrow:
	MOVQ SI, AX
	LEAQ (SI)(R9*1), BX
	MOVQ DI, DX
	MOVQ R10, CX
poolchunk:
	MOVQ CX, R11
	CMPQ R11, $16
	JLE pooln
	MOVQ $16, R11
pooln:
	KMOVW (R14)(R11*2), K3
	LEAQ (R11)(R11*1), R12
	MOVQ R12, R13
	CMPQ R13, $16
	JLE poollo
	MOVQ $16, R13
poollo:
	KMOVW (R14)(R13*2), K1
	SUBQ R13, R12
	KMOVW (R14)(R12*2), K2
	VMOVUPS.Z (AX), K1, Z0
	VMOVUPS.Z 64(AX), K2, Z1
	VMOVUPS.Z (BX), K1, Z2
	VMOVUPS.Z 64(BX), K2, Z3
	GOMAX(Z0, Z2, Z4)
	GOMAX(Z1, Z3, Z5)
	VMOVAPS Z4, Z6
	VPERMT2PS Z5, Z30, Z6
	VMOVAPS Z4, Z7
	VPERMT2PS Z5, Z31, Z7
	GOMAX(Z6, Z7, Z8)
	VMOVUPS Z8, K3, (DX)
	ADDQ $128, AX
	ADDQ $128, BX
	ADDQ $64, DX
	SUBQ R11, CX
	JNZ poolchunk
	MOVQ rowStep+40(FP), R12
	SHLQ $2, R12
	ADDQ R12, SI
	LEAQ (DI)(R10*4), DI
	DECQ R8
	JNZ poolrow
	VZEROUPPER
	RET

// func deinterleave2RowsAVX512(even, odd *float32, dstStride int, src *float32, srcStride, rows, cols int)
// Per row, each 32 floats of src: the even lanes to even, the odd ones to
// odd, 16 each, split with VPERMT2PS as maxPool2x2AVX512 splits them; the
// last cols%32 under masks (K1, K2 loading, K3, K4 storing).
TEXT ·deinterleave2RowsAVX512(SB), NOSPLIT, $0-56
	MOVQ even+0(FP), DI
	MOVQ odd+8(FP), DX
	MOVQ dstStride+16(FP), R8
	SHLQ $2, R8
	MOVQ src+24(FP), SI
	MOVQ srcStride+32(FP), R9
	SHLQ $2, R9
	MOVQ rows+40(FP), R10
	MOVQ cols+48(FP), R11
	VMOVDQU32 evenidx<>(SB), Z30
	VMOVDQU32 oddidx<>(SB), Z31
	LEAQ masktab<>(SB), R14
	MOVQ R11, AX
	ANDQ $31, AX
	MOVQ AX, BX
	CMPQ BX, $16
	JLE dlo
	MOVQ $16, BX
dlo:
	KMOVW (R14)(BX*2), K1
	MOVQ AX, BX
	SUBQ $16, BX
	JGE dhi
	XORQ BX, BX
dhi:
	KMOVW (R14)(BX*2), K2
	MOVQ AX, BX
	INCQ BX
	SHRQ $1, BX
	KMOVW (R14)(BX*2), K3
	MOVQ AX, BX
	SHRQ $1, BX
	KMOVW (R14)(BX*2), K4
	MOVQ R11, R12
	SHRQ $5, R12
drow:
	MOVQ SI, AX
	MOVQ DI, BX
	MOVQ DX, R13
	MOVQ R12, CX
	TESTQ CX, CX
	JZ dtail
dblk:
	VMOVUPS (AX), Z0
	VMOVUPS 64(AX), Z1
	VMOVAPS Z0, Z2
	VPERMT2PS Z1, Z30, Z2
	VPERMT2PS Z1, Z31, Z0
	VMOVUPS Z2, (BX)
	VMOVUPS Z0, (R13)
	ADDQ $128, AX
	ADDQ $64, BX
	ADDQ $64, R13
	DECQ CX
	JNZ dblk
dtail:
	VMOVUPS.Z (AX), K1, Z0
	VMOVUPS.Z 64(AX), K2, Z1
	VMOVAPS Z0, Z2
	VPERMT2PS Z1, Z30, Z2
	VPERMT2PS Z1, Z31, Z0
	VMOVUPS Z2, K3, (BX)
	VMOVUPS Z0, K4, (R13)
	ADDQ R9, SI
	ADDQ R8, DI
	ADDQ R8, DX
	DECQ R10
	JNZ drow
	VZEROUPPER
	RET

// MTMASK sets K to the lanes of a vector that starts off outputs into the DX
// left: masktab[min(16, max(0, DX-off))] (R14 holds masktab).
#define MTMASK(off, K) \
	MOVQ DX, CX \
	SUBQ $off, CX \
	MOVQ $16, AX \
	CMPQ CX, AX \
	CMOVQGT AX, CX \
	XORQ AX, AX \
	CMPQ CX, AX \
	CMOVQLT AX, CX \
	KMOVW (R14)(CX*2), K

// MTADDR points SI at tap R11's input for the current block: base R13 plus
// offs[t]*4, plus the block's byte offset BX.
#define MTADDR \
	MOVQ (R11), SI \
	SHLQ $2, SI \
	ADDQ R13, SI \
	ADDQ BX, SI

// func maxTapsAVX512(dst *float32, n int, base *float32, offs *int, taps int)
// dst[j] = Go's max over t of base[offs[t]+j], for j < n: 64 outputs at a
// time in Z0-Z3 over every tap, then the last n%64 under masks K1-K3, K6.
TEXT ·maxTapsAVX512(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ n+8(FP), DX
	MOVQ base+16(FP), R13
	MOVQ offs+24(FP), R8
	MOVQ taps+32(FP), R10
	LEAQ masktab<>(SB), R14
	XORQ BX, BX
mt64:
	CMPQ DX, $64
	JLT mtrest
	MOVQ R8, R11
	MTADDR
	VMOVUPS (SI), Z0
	VMOVUPS 64(SI), Z1
	VMOVUPS 128(SI), Z2
	VMOVUPS 192(SI), Z3
	MOVQ R10, CX
	DECQ CX
	JZ mt64store
mt64tap:
	ADDQ $8, R11
	MTADDR
	VMOVUPS (SI), Z4
	VMOVUPS 64(SI), Z5
	VMOVUPS 128(SI), Z6
	VMOVUPS 192(SI), Z7
	GOMAX(Z0, Z4, Z8)
	GOMAX(Z1, Z5, Z9)
	GOMAX(Z2, Z6, Z10)
	GOMAX(Z3, Z7, Z11)
	VMOVAPS Z8, Z0
	VMOVAPS Z9, Z1
	VMOVAPS Z10, Z2
	VMOVAPS Z11, Z3
	DECQ CX
	JNZ mt64tap
mt64store:
	VMOVUPS Z0, (DI)(BX*1)
	VMOVUPS Z1, 64(DI)(BX*1)
	VMOVUPS Z2, 128(DI)(BX*1)
	VMOVUPS Z3, 192(DI)(BX*1)
	ADDQ $256, BX
	SUBQ $64, DX
	JMP mt64
mtrest:
	TESTQ DX, DX
	JZ mtdone
	MTMASK(0, K1)
	MTMASK(16, K2)
	MTMASK(32, K3)
	MTMASK(48, K6)
	MOVQ R8, R11
	MTADDR
	VMOVUPS.Z (SI), K1, Z0
	VMOVUPS.Z 64(SI), K2, Z1
	VMOVUPS.Z 128(SI), K3, Z2
	VMOVUPS.Z 192(SI), K6, Z3
	MOVQ R10, CX
	DECQ CX
	JZ mtreststore
mtresttap:
	ADDQ $8, R11
	MTADDR
	VMOVUPS.Z (SI), K1, Z4
	VMOVUPS.Z 64(SI), K2, Z5
	VMOVUPS.Z 128(SI), K3, Z6
	VMOVUPS.Z 192(SI), K6, Z7
	GOMAX(Z0, Z4, Z8)
	GOMAX(Z1, Z5, Z9)
	GOMAX(Z2, Z6, Z10)
	GOMAX(Z3, Z7, Z11)
	VMOVAPS Z8, Z0
	VMOVAPS Z9, Z1
	VMOVAPS Z10, Z2
	VMOVAPS Z11, Z3
	DECQ CX
	JNZ mtresttap
mtreststore:
	VMOVUPS Z0, K1, (DI)(BX*1)
	VMOVUPS Z1, K2, 64(DI)(BX*1)
	VMOVUPS Z2, K3, 128(DI)(BX*1)
	VMOVUPS Z3, K6, 192(DI)(BX*1)
mtdone:
	VZEROUPPER
	RET

// ilvlo and ilvhi pick, from two 16-float vectors a (indices 0-15) and b
// (16-31), the interleaving a0 b0 a1 b1 ... of their low and high halves.
DATA ilvlo<>+0(SB)/4, $0
DATA ilvlo<>+4(SB)/4, $16
DATA ilvlo<>+8(SB)/4, $1
DATA ilvlo<>+12(SB)/4, $17
DATA ilvlo<>+16(SB)/4, $2
DATA ilvlo<>+20(SB)/4, $18
DATA ilvlo<>+24(SB)/4, $3
DATA ilvlo<>+28(SB)/4, $19
DATA ilvlo<>+32(SB)/4, $4
DATA ilvlo<>+36(SB)/4, $20
DATA ilvlo<>+40(SB)/4, $5
DATA ilvlo<>+44(SB)/4, $21
DATA ilvlo<>+48(SB)/4, $6
DATA ilvlo<>+52(SB)/4, $22
DATA ilvlo<>+56(SB)/4, $7
DATA ilvlo<>+60(SB)/4, $23
GLOBL ilvlo<>(SB), RODATA|NOPTR, $64

DATA ilvhi<>+0(SB)/4, $8
DATA ilvhi<>+4(SB)/4, $24
DATA ilvhi<>+8(SB)/4, $9
DATA ilvhi<>+12(SB)/4, $25
DATA ilvhi<>+16(SB)/4, $10
DATA ilvhi<>+20(SB)/4, $26
DATA ilvhi<>+24(SB)/4, $11
DATA ilvhi<>+28(SB)/4, $27
DATA ilvhi<>+32(SB)/4, $12
DATA ilvhi<>+36(SB)/4, $28
DATA ilvhi<>+40(SB)/4, $13
DATA ilvhi<>+44(SB)/4, $29
DATA ilvhi<>+48(SB)/4, $14
DATA ilvhi<>+52(SB)/4, $30
DATA ilvhi<>+56(SB)/4, $15
DATA ilvhi<>+60(SB)/4, $31
GLOBL ilvhi<>(SB), RODATA|NOPTR, $64

// func interleave2AVX512(dst, even, odd *float32, blocks int)
// Per block, 16 floats of even and of odd to 32 of dst, even[j] at 2j and
// odd[j] at 2j+1: Deinterleave2 undone.
TEXT ·interleave2AVX512(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ even+8(FP), SI
	MOVQ odd+16(FP), DX
	MOVQ blocks+24(FP), CX
	VMOVDQU32 ilvlo<>(SB), Z30
	VMOVDQU32 ilvhi<>(SB), Z31
ilv:
	VMOVUPS (SI), Z0
	VMOVUPS (DX), Z1
	VMOVAPS Z0, Z2
	VPERMT2PS Z1, Z30, Z2
	VPERMT2PS Z1, Z31, Z0
	VMOVUPS Z2, (DI)
	VMOVUPS Z0, 64(DI)
	ADDQ $64, SI
	ADDQ $64, DX
	ADDQ $128, DI
	DECQ CX
	JNZ ilv
	VZEROUPPER
	RET
