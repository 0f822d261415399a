// AVX-512 loops of the int8 matrix multiply and the quantization
// primitives (qgemm.go, quant.go). Go operand order: sources first, the
// destination last.

//go:build !noasm

#include "textflag.h"

// func qKernelVNNI(a *byte, lda int, b *byte, kq int, acc *int32)
// acc[r*64+c] = Σq Σt a[r*lda+4q+t]·int8(b[q*256+4c+t]) for 4 rows, 64
// columns: 16 zmm accumulators, per k-quad 4 loads of B, 4 broadcasts of A
// and 16 VPDPBUSD (unsigned bytes of the broadcast times signed bytes of B).
TEXT ·qKernelVNNI(SB), NOSPLIT, $0-40
	MOVQ a+0(FP), SI
	MOVQ lda+8(FP), BX
	MOVQ b+16(FP), DX
	MOVQ kq+24(FP), CX
	MOVQ acc+32(FP), DI
	LEAQ (SI)(BX*2), R8
	VPXORD Z16, Z16, Z16
	VPXORD Z17, Z17, Z17
	VPXORD Z18, Z18, Z18
	VPXORD Z19, Z19, Z19
	VPXORD Z20, Z20, Z20
	VPXORD Z21, Z21, Z21
	VPXORD Z22, Z22, Z22
	VPXORD Z23, Z23, Z23
	VPXORD Z24, Z24, Z24
	VPXORD Z25, Z25, Z25
	VPXORD Z26, Z26, Z26
	VPXORD Z27, Z27, Z27
	VPXORD Z28, Z28, Z28
	VPXORD Z29, Z29, Z29
	VPXORD Z30, Z30, Z30
	VPXORD Z31, Z31, Z31
qkloop:
	VMOVDQU32 (DX), Z0
	VMOVDQU32 64(DX), Z1
	VMOVDQU32 128(DX), Z2
	VMOVDQU32 192(DX), Z3
	VPBROADCASTD (SI), Z4
	VPBROADCASTD (SI)(BX*1), Z5
	VPBROADCASTD (R8), Z6
	VPBROADCASTD (R8)(BX*1), Z7
	VPDPBUSD Z0, Z4, Z16
	VPDPBUSD Z1, Z4, Z17
	VPDPBUSD Z2, Z4, Z18
	VPDPBUSD Z3, Z4, Z19
	VPDPBUSD Z0, Z5, Z20
	VPDPBUSD Z1, Z5, Z21
	VPDPBUSD Z2, Z5, Z22
	VPDPBUSD Z3, Z5, Z23
	VPDPBUSD Z0, Z6, Z24
	VPDPBUSD Z1, Z6, Z25
	VPDPBUSD Z2, Z6, Z26
	VPDPBUSD Z3, Z6, Z27
	VPDPBUSD Z0, Z7, Z28
	VPDPBUSD Z1, Z7, Z29
	VPDPBUSD Z2, Z7, Z30
	VPDPBUSD Z3, Z7, Z31
	ADDQ $4, SI
	ADDQ $4, R8
	ADDQ $256, DX
	DECQ CX
	JNZ qkloop
	VMOVDQU32 Z16, (DI)
	VMOVDQU32 Z17, 64(DI)
	VMOVDQU32 Z18, 128(DI)
	VMOVDQU32 Z19, 192(DI)
	VMOVDQU32 Z20, 256(DI)
	VMOVDQU32 Z21, 320(DI)
	VMOVDQU32 Z22, 384(DI)
	VMOVDQU32 Z23, 448(DI)
	VMOVDQU32 Z24, 512(DI)
	VMOVDQU32 Z25, 576(DI)
	VMOVDQU32 Z26, 640(DI)
	VMOVDQU32 Z27, 704(DI)
	VMOVDQU32 Z28, 768(DI)
	VMOVDQU32 Z29, 832(DI)
	VMOVDQU32 Z30, 896(DI)
	VMOVDQU32 Z31, 960(DI)
	VZEROUPPER
	RET

// func qKernelAVX2(a *byte, lda int, b *byte, kq int, acc *int32)
// The qKernelVNNI contract without VNNI, exact: bytes widened to 16 bits
// (A zero-extended, B sign-extended) and multiplied in pairs by VPMADDWD,
// whose 32-bit sums cannot saturate (VPMADDUBSW's 16-bit ones can). Eight
// passes of 8 columns: per quad, B's 8 columns x 4 bytes widen to two
// registers of 4 columns x 4 words, each row's 4 bytes broadcast and widen
// to [a0 a1 a2 a3] x 4, and VPMADDWD leaves two partial sums per column;
// VPHADDD and VPERMQ add and order them at the end.
TEXT ·qKernelAVX2(SB), NOSPLIT, $0-40
	MOVQ a+0(FP), SI
	MOVQ lda+8(FP), BX
	MOVQ b+16(FP), DX
	MOVQ acc+32(FP), DI
	LEAQ (BX)(BX*2), R11
	XORQ R12, R12
q2pass:
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1
	VPXOR Y2, Y2, Y2
	VPXOR Y3, Y3, Y3
	VPXOR Y4, Y4, Y4
	VPXOR Y5, Y5, Y5
	VPXOR Y6, Y6, Y6
	VPXOR Y7, Y7, Y7
	MOVQ SI, R8
	LEAQ (DX)(R12*1), R9
	MOVQ kq+24(FP), CX
q2loop:
	VPMOVSXBW (R9), Y8
	VPMOVSXBW 16(R9), Y9
	VPBROADCASTD (R8), X10
	VPMOVZXBW X10, Y10
	VPMADDWD Y8, Y10, Y11
	VPADDD Y11, Y0, Y0
	VPMADDWD Y9, Y10, Y11
	VPADDD Y11, Y1, Y1
	VPBROADCASTD (R8)(BX*1), X10
	VPMOVZXBW X10, Y10
	VPMADDWD Y8, Y10, Y11
	VPADDD Y11, Y2, Y2
	VPMADDWD Y9, Y10, Y11
	VPADDD Y11, Y3, Y3
	VPBROADCASTD (R8)(BX*2), X10
	VPMOVZXBW X10, Y10
	VPMADDWD Y8, Y10, Y11
	VPADDD Y11, Y4, Y4
	VPMADDWD Y9, Y10, Y11
	VPADDD Y11, Y5, Y5
	VPBROADCASTD (R8)(R11*1), X10
	VPMOVZXBW X10, Y10
	VPMADDWD Y8, Y10, Y11
	VPADDD Y11, Y6, Y6
	VPMADDWD Y9, Y10, Y11
	VPADDD Y11, Y7, Y7
	ADDQ $4, R8
	ADDQ $256, R9
	DECQ CX
	JNZ q2loop
	// Row r's two registers hold columns [c0 c0 c1 c1 c2 c2 c3 c3] and
	// [c4 ... c7] as pairs: add the pairs, order the columns, store 8.
	VPHADDD Y1, Y0, Y0
	VPERMQ $0xD8, Y0, Y0
	VMOVDQU Y0, (DI)
	VPHADDD Y3, Y2, Y2
	VPERMQ $0xD8, Y2, Y2
	VMOVDQU Y2, 256(DI)
	VPHADDD Y5, Y4, Y4
	VPERMQ $0xD8, Y4, Y4
	VMOVDQU Y4, 512(DI)
	VPHADDD Y7, Y6, Y6
	VPERMQ $0xD8, Y6, Y6
	VMOVDQU Y6, 768(DI)
	ADDQ $32, DI
	ADDQ $32, R12
	CMPQ R12, $256
	JNE q2pass
	VZEROUPPER
	RET

// func qDequantBlockAVX512(dst *float32, ldd int, acc *int32, rows int, colTerm *int32, scale, bias *float32, blocks int)
// For each of rows rows (dst ldd floats apart, acc 64 int32s apart):
// dst = float32(acc + colTerm) * scale (+ bias when bias is not nil), 16
// at a time, blocks per row.
TEXT ·qDequantBlockAVX512(SB), NOSPLIT, $0-64
	MOVQ dst+0(FP), DI
	MOVQ ldd+8(FP), R10
	SHLQ $2, R10
	MOVQ acc+16(FP), SI
	MOVQ rows+24(FP), R11
	MOVQ colTerm+32(FP), DX
	MOVQ scale+40(FP), R8
	MOVQ bias+48(FP), R9
	MOVQ blocks+56(FP), BX
qbrow:
	XORQ AX, AX
	MOVQ BX, CX
qbcol:
	VMOVDQU32 (SI)(AX*1), Z0
	VPADDD (DX)(AX*1), Z0, Z0
	VCVTDQ2PS Z0, Z0
	VMULPS (R8)(AX*1), Z0, Z0
	TESTQ R9, R9
	JZ qbstore
	VADDPS (R9)(AX*1), Z0, Z0
qbstore:
	VMOVUPS Z0, (DI)(AX*1)
	ADDQ $64, AX
	DECQ CX
	JNZ qbcol
	ADDQ R10, DI
	ADDQ $256, SI
	DECQ R11
	JNZ qbrow
	VZEROUPPER
	RET

// func qDequantRowsAVX512(dst *float32, ldd int, acc *int32, rows int, colTerm, rowTerm *int32, scale, bias *float32, blocks int)
// For each of rows rows r (dst ldd floats apart, acc 64 int32s apart):
// dst = float32(acc + colTerm + rowTerm[r]) * scale[r] (+ bias[r] when bias
// is not nil), 16 at a time, blocks per row.
TEXT ·qDequantRowsAVX512(SB), NOSPLIT, $0-72
	MOVQ dst+0(FP), DI
	MOVQ ldd+8(FP), R10
	SHLQ $2, R10
	MOVQ acc+16(FP), SI
	MOVQ rows+24(FP), R11
	MOVQ colTerm+32(FP), DX
	MOVQ rowTerm+40(FP), R12
	MOVQ scale+48(FP), R8
	MOVQ bias+56(FP), R9
	MOVQ blocks+64(FP), BX
	VPXORD Z3, Z3, Z3
qrrow:
	VPBROADCASTD (R12), Z1
	VBROADCASTSS (R8), Z2
	TESTQ R9, R9
	JZ qrnob
	VBROADCASTSS (R9), Z3
	ADDQ $4, R9
qrnob:
	XORQ AX, AX
	MOVQ BX, CX
qrcol:
	VMOVDQU32 (SI)(AX*1), Z0
	VPADDD (DX)(AX*1), Z0, Z0
	VPADDD Z1, Z0, Z0
	VCVTDQ2PS Z0, Z0
	VMULPS Z2, Z0, Z0
	VADDPS Z3, Z0, Z0
	VMOVUPS Z0, (DI)(AX*1)
	ADDQ $64, AX
	DECQ CX
	JNZ qrcol
	ADDQ R10, DI
	ADDQ $256, SI
	ADDQ $4, R12
	ADDQ $4, R8
	DECQ R11
	JNZ qrrow
	VZEROUPPER
	RET

// func qPackPanelAVX512(dst, src *byte, ldb, kq int, flip uint64, sums *int32)
// Per quad: four rows of 64 bytes, interleaved bytewise then wordwise
// within 128-bit lanes (lane L of u0..u3 holds columns 16L+0..3, +4..7,
// +8..11, +12..15, four bytes each), then a 4x4 transpose of lanes gives
// columns 0-15, 16-31, 32-47, 48-63 in order. VPDPBUSD with bytes of 1
// adds each column's four (signed) bytes to its sum.
TEXT ·qPackPanelAVX512(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ ldb+16(FP), R9
	MOVQ kq+24(FP), CX
	MOVQ flip+32(FP), AX
	MOVQ sums+40(FP), DX
	VPBROADCASTB AX, Z31
	MOVL $0x01010101, AX
	VPBROADCASTD AX, Z30
	LEAQ (R9)(R9*2), R11
	VMOVDQU32 (DX), Z20
	VMOVDQU32 64(DX), Z21
	VMOVDQU32 128(DX), Z22
	VMOVDQU32 192(DX), Z23
qploop:
	VMOVDQU8 (SI), Z0
	VMOVDQU8 (SI)(R9*1), Z1
	VMOVDQU8 (SI)(R9*2), Z2
	VMOVDQU8 (SI)(R11*1), Z3
	VPXORD Z31, Z0, Z0
	VPXORD Z31, Z1, Z1
	VPXORD Z31, Z2, Z2
	VPXORD Z31, Z3, Z3
	VPUNPCKLBW Z1, Z0, Z4
	VPUNPCKHBW Z1, Z0, Z5
	VPUNPCKLBW Z3, Z2, Z6
	VPUNPCKHBW Z3, Z2, Z7
	VPUNPCKLWD Z6, Z4, Z8
	VPUNPCKHWD Z6, Z4, Z9
	VPUNPCKLWD Z7, Z5, Z10
	VPUNPCKHWD Z7, Z5, Z11
	VSHUFI32X4 $0x44, Z9, Z8, Z12
	VSHUFI32X4 $0xEE, Z9, Z8, Z13
	VSHUFI32X4 $0x44, Z11, Z10, Z14
	VSHUFI32X4 $0xEE, Z11, Z10, Z15
	VSHUFI32X4 $0x88, Z14, Z12, Z16
	VSHUFI32X4 $0xDD, Z14, Z12, Z17
	VSHUFI32X4 $0x88, Z15, Z13, Z18
	VSHUFI32X4 $0xDD, Z15, Z13, Z19
	VMOVDQU32 Z16, (DI)
	VMOVDQU32 Z17, 64(DI)
	VMOVDQU32 Z18, 128(DI)
	VMOVDQU32 Z19, 192(DI)
	VPDPBUSD Z16, Z30, Z20
	VPDPBUSD Z17, Z30, Z21
	VPDPBUSD Z18, Z30, Z22
	VPDPBUSD Z19, Z30, Z23
	LEAQ (SI)(R9*4), SI
	ADDQ $256, DI
	DECQ CX
	JNZ qploop
	VMOVDQU32 Z20, (DX)
	VMOVDQU32 Z21, 64(DX)
	VMOVDQU32 Z22, 128(DX)
	VMOVDQU32 Z23, 192(DX)
	VZEROUPPER
	RET

// func qRequantRowsAVX512(dst *byte, ldd int, acc *int32, rows int, colTerm, rowTerm *int32, mult *float32, blocks int, lo, hi float32, zp int32)
// For each of rows rows r (dst ldd bytes apart, acc 64 int32s apart):
// dst = byte(cvt(min(max(float32(acc + colTerm + rowTerm[r]) * mult[r],
// lo), hi)) + zp), 16 at a time, blocks per row; max's NaN takes lo.
TEXT ·qRequantRowsAVX512(SB), NOSPLIT, $0-76
	MOVQ dst+0(FP), DI
	MOVQ ldd+8(FP), R10
	MOVQ acc+16(FP), SI
	MOVQ rows+24(FP), R11
	MOVQ colTerm+32(FP), DX
	MOVQ rowTerm+40(FP), R12
	MOVQ mult+48(FP), R8
	MOVQ blocks+56(FP), BX
	VBROADCASTSS lo+64(FP), Z3
	VBROADCASTSS hi+68(FP), Z4
	MOVL zp+72(FP), AX
	VPBROADCASTD AX, Z5
qqrow:
	VPBROADCASTD (R12), Z1
	VBROADCASTSS (R8), Z2
	XORQ AX, AX
	XORQ R9, R9
	MOVQ BX, CX
qqcol:
	VMOVDQU32 (SI)(AX*1), Z0
	VPADDD (DX)(AX*1), Z0, Z0
	VPADDD Z1, Z0, Z0
	VCVTDQ2PS Z0, Z0
	VMULPS Z2, Z0, Z0
	VMAXPS Z3, Z0, Z0
	VMINPS Z4, Z0, Z0
	VCVTPS2DQ Z0, Z0
	VPADDD Z5, Z0, Z0
	VPMOVDB Z0, (DI)(R9*1)
	ADDQ $64, AX
	ADDQ $16, R9
	DECQ CX
	JNZ qqcol
	ADDQ R10, DI
	ADDQ $256, SI
	ADDQ $4, R12
	ADDQ $4, R8
	DECQ R11
	JNZ qqrow
	VZEROUPPER
	RET

// func qRequantColsAVX512(dst *byte, ldd int, acc *int32, rows int, colTerm *int32, mult *float32, blocks int, lo, hi float32, zp int32)
// For each of rows rows (dst ldd bytes apart, acc 64 int32s apart):
// dst = byte(cvt(min(max(float32(acc + colTerm) * mult, lo), hi)) + zp),
// 16 at a time, blocks per row.
TEXT ·qRequantColsAVX512(SB), NOSPLIT, $0-68
	MOVQ dst+0(FP), DI
	MOVQ ldd+8(FP), R10
	MOVQ acc+16(FP), SI
	MOVQ rows+24(FP), R11
	MOVQ colTerm+32(FP), DX
	MOVQ mult+40(FP), R8
	MOVQ blocks+48(FP), BX
	VBROADCASTSS lo+56(FP), Z3
	VBROADCASTSS hi+60(FP), Z4
	MOVL zp+64(FP), AX
	VPBROADCASTD AX, Z5
qcrow:
	XORQ AX, AX
	XORQ R9, R9
	MOVQ BX, CX
qccol:
	VMOVDQU32 (SI)(AX*1), Z0
	VPADDD (DX)(AX*1), Z0, Z0
	VCVTDQ2PS Z0, Z0
	VMULPS (R8)(AX*1), Z0, Z0
	VMAXPS Z3, Z0, Z0
	VMINPS Z4, Z0, Z0
	VCVTPS2DQ Z0, Z0
	VPADDD Z5, Z0, Z0
	VPMOVDB Z0, (DI)(R9*1)
	ADDQ $64, AX
	ADDQ $16, R9
	DECQ CX
	JNZ qccol
	ADDQ R10, DI
	ADDQ $256, SI
	DECQ R11
	JNZ qcrow
	VZEROUPPER
	RET

// func minMaxF32AVX512(x *float32, blocks int) (lo, hi float32)
// VMINPS/VMAXPS return their second source (Intel order; the first operand
// in Go's) when either is NaN, and that is the running bound here: a NaN in
// x leaves the bound as it was.
TEXT ·minMaxF32AVX512(SB), NOSPLIT, $0-24
	MOVQ x+0(FP), SI
	MOVQ blocks+8(FP), CX
	MOVL $0x7f800000, AX
	VPBROADCASTD AX, Z0
	MOVL $0xff800000, AX
	VPBROADCASTD AX, Z1
qmmloop:
	VMOVUPS (SI), Z2
	VMINPS Z0, Z2, Z0
	VMAXPS Z1, Z2, Z1
	ADDQ $64, SI
	DECQ CX
	JNZ qmmloop
	VEXTRACTF32X8 $1, Z0, Y2
	VMINPS Y0, Y2, Y0
	VEXTRACTF128 $1, Y0, X2
	VMINPS X0, X2, X0
	VPSHUFD $0x4e, X0, X2
	VMINPS X0, X2, X0
	VPSHUFD $0xb1, X0, X2
	VMINPS X0, X2, X0
	VEXTRACTF32X8 $1, Z1, Y2
	VMAXPS Y1, Y2, Y1
	VEXTRACTF128 $1, Y1, X2
	VMAXPS X1, X2, X1
	VPSHUFD $0x4e, X1, X2
	VMAXPS X1, X2, X1
	VPSHUFD $0xb1, X1, X2
	VMAXPS X1, X2, X1
	MOVSS X0, lo+16(FP)
	MOVSS X1, hi+20(FP)
	VZEROUPPER
	RET

// func quantizeAVX512F32(dst *byte, x *float32, blocks int, scale, lo, hi float32, zp int32)
// dst = byte(cvt(min(max(x/scale, lo), hi)) + zp), rounding half to even
// (MXCSR's default); max's NaN takes lo, as MLAS's _mm512_max_ps(v, lo).
TEXT ·quantizeAVX512F32(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ blocks+16(FP), CX
	VBROADCASTSS scale+24(FP), Z1
	VBROADCASTSS lo+28(FP), Z2
	VBROADCASTSS hi+32(FP), Z3
	MOVL zp+36(FP), AX
	VPBROADCASTD AX, Z4
qqloop:
	VMOVUPS (SI), Z0
	VDIVPS Z1, Z0, Z0
	VMAXPS Z2, Z0, Z0
	VMINPS Z3, Z0, Z0
	VCVTPS2DQ Z0, Z0
	VPADDD Z4, Z0, Z0
	VPMOVDB Z0, (DI)
	ADDQ $64, SI
	ADDQ $16, DI
	DECQ CX
	JNZ qqloop
	VZEROUPPER
	RET
