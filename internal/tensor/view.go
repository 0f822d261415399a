package tensor

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"
)

// nativeLittle reports whether this machine stores numbers little-endian, as ONNX
// raw_data and .npy files (as Spindle writes and reads them) do.
var nativeLittle = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// View returns a tensor whose data aliases raw, the little-endian bytes of
// NumElements(shape) elements of dt (a Float16 one holds the binary16 bits in
// U16). It returns ok=false, and no tensor, when
// aliasing is impossible: raw is misaligned for dt, the machine is big-endian, or dt
// is Bool (whose bytes may hold values other than 0 and 1). Callers then use Decode,
// which copies.
func View(dt DType, shape []int, raw []byte) (t *Tensor, ok bool, err error) {
	if sz := dt.Size(); sz == 0 || dt == BFloat16 {
		return nil, false, fmt.Errorf("unsupported dtype %s", dt)
	}
	n, size, err := byteCount(shape, dt)
	if err != nil {
		return nil, false, err
	}
	if len(raw) != size {
		return nil, false, fmt.Errorf("shape %s of %s needs %d bytes, have %d", ShapeString(shape), dt, size, len(raw))
	}
	if dt == Bool || !nativeLittle {
		return nil, false, nil
	}
	if n > 0 && uintptr(unsafe.Pointer(&raw[0]))%uintptr(dt.Size()) != 0 {
		return nil, false, nil
	}
	t = &Tensor{DType: dt, Shape: append([]int(nil), shape...)}
	if n == 0 {
		*t = *New(dt, shape...)
		return t, true, nil
	}
	p := unsafe.Pointer(&raw[0])
	switch dt {
	case Float32:
		t.F32 = unsafe.Slice((*float32)(p), n)
	case Float64:
		t.F64 = unsafe.Slice((*float64)(p), n)
	case Int64:
		t.I64 = unsafe.Slice((*int64)(p), n)
	case Int32:
		t.I32 = unsafe.Slice((*int32)(p), n)
	case Int16:
		t.I16 = unsafe.Slice((*int16)(p), n)
	case Int8:
		t.I8 = unsafe.Slice((*int8)(p), n)
	case Uint64:
		t.U64 = unsafe.Slice((*uint64)(p), n)
	case Uint32:
		t.U32 = unsafe.Slice((*uint32)(p), n)
	case Uint16, Float16:
		t.U16 = unsafe.Slice((*uint16)(p), n)
	case Uint8:
		t.U8 = raw[:n:n]
	}
	return t, true, nil
}

// Decode copies raw, the little-endian bytes of NumElements(shape) elements of dt,
// into a new tensor. Float16 and BFloat16 data is widened to Float32 (View
// keeps Float16 as it is).
func Decode(dt DType, shape []int, raw []byte) (*Tensor, error) {
	if dt.Size() == 0 {
		return nil, fmt.Errorf("unsupported dtype %s", dt)
	}
	_, size, err := byteCount(shape, dt)
	if err != nil {
		return nil, err
	}
	if len(raw) != size {
		return nil, fmt.Errorf("shape %s of %s needs %d bytes, have %d", ShapeString(shape), dt, size, len(raw))
	}
	out := dt
	if dt.Wide() {
		out = Float32
	}
	t := New(out, shape...)
	le := binary.LittleEndian
	switch dt {
	case Float32:
		for i := range t.F32 {
			t.F32[i] = math.Float32frombits(le.Uint32(raw[4*i:]))
		}
	case Float16:
		for i := range t.F32 {
			t.F32[i] = HalfToFloat(le.Uint16(raw[2*i:]))
		}
	case BFloat16:
		for i := range t.F32 {
			t.F32[i] = BFloatToFloat(le.Uint16(raw[2*i:]))
		}
	case Float64:
		for i := range t.F64 {
			t.F64[i] = math.Float64frombits(le.Uint64(raw[8*i:]))
		}
	case Int64:
		for i := range t.I64 {
			t.I64[i] = int64(le.Uint64(raw[8*i:]))
		}
	case Int32:
		for i := range t.I32 {
			t.I32[i] = int32(le.Uint32(raw[4*i:]))
		}
	case Int16:
		for i := range t.I16 {
			t.I16[i] = int16(le.Uint16(raw[2*i:]))
		}
	case Int8:
		for i := range t.I8 {
			t.I8[i] = int8(raw[i])
		}
	case Uint64:
		for i := range t.U64 {
			t.U64[i] = le.Uint64(raw[8*i:])
		}
	case Uint32:
		for i := range t.U32 {
			t.U32[i] = le.Uint32(raw[4*i:])
		}
	case Uint16:
		for i := range t.U16 {
			t.U16[i] = le.Uint16(raw[2*i:])
		}
	case Uint8:
		copy(t.U8, raw)
	case Bool:
		for i := range t.B {
			t.B[i] = raw[i] != 0
		}
	}
	return t, nil
}

// HalfToFloat converts an IEEE 754 binary16 value to float32.
func HalfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0 && mant == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: normalise
		e := uint32(127 - 15 + 1)
		for mant&0x400 == 0 {
			mant <<= 1
			e--
		}
		mant &= 0x3ff
		return math.Float32frombits(sign | e<<23 | mant<<13)
	case exp == 0x1f:
		return math.Float32frombits(sign | 0xff<<23 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// FloatToHalf converts f to the nearest IEEE 754 binary16 value, ties to
// even, as hardware conversions do: magnitudes from 65520 up become
// infinities, values too small for a subnormal become zeros of f's sign,
// and a NaN stays a (quiet) NaN.
func FloatToHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00 | uint16(mant>>13)
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		// A subnormal half: the value in units of 2^-24.
		shift := uint32(14 - e)
		if shift > 24 {
			return sign
		}
		full := mant | 0x800000
		return sign | uint16(roundEven(full, shift))
	}
	return sign | uint16(uint32(e)<<10+roundEven(mant, 13))
}

// roundEven returns v >> shift rounded to nearest, ties to even (shift >= 1).
// A carry out of the kept bits moves into the exponent above them, which is
// what rounding up to the next binade (or to infinity) is.
func roundEven(v, shift uint32) uint32 {
	r := v >> shift
	rem := v & (1<<shift - 1)
	half := uint32(1) << (shift - 1)
	if rem > half || rem == half && r&1 == 1 {
		r++
	}
	return r
}

// RoundHalf returns f rounded to the nearest float16 value, as a float32:
// what a float16 tensor holding f holds.
func RoundHalf(f float32) float32 { return HalfToFloat(FloatToHalf(f)) }

// BFloatToFloat converts a bfloat16 value (the upper half of a float32) to
// float32, exactly.
func BFloatToFloat(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// FloatToBFloat converts f to the nearest bfloat16 value, ties to even, as
// ONNX's Cast (saturate or not: bfloat16 has float32's range) and hardware
// conversions do; a NaN stays a quiet NaN.
func FloatToBFloat(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x40
	}
	return uint16(roundEven(b, 16))
}

// RoundBFloat returns f rounded to the nearest bfloat16 value, as a float32.
func RoundBFloat(f float32) float32 { return BFloatToFloat(FloatToBFloat(f)) }

// Widen returns a Float16 tensor's values as a new Float32 tensor, and any
// other tensor as it is.
func Widen(t *Tensor) *Tensor {
	if t.DType != Float16 {
		return t
	}
	out := New(Float32, t.Shape...)
	for i, h := range t.U16 {
		out.F32[i] = HalfToFloat(h)
	}
	return out
}
