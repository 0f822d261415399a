package tensor

import (
	"encoding/binary"
	"math"
	"testing"
)

func TestHalfToFloat(t *testing.T) {
	tests := []struct {
		h    uint16
		want float32
	}{
		{0x0000, 0},
		{0x3c00, 1},
		{0xc000, -2},
		{0x3555, 0.333251953125},
		{0x7bff, 65504},                 // largest normal
		{0x0400, 6.103515625e-05},       // smallest normal
		{0x0001, 5.960464477539063e-08}, // smallest subnormal
		{0x03ff, 6.097555160522461e-05}, // largest subnormal
		{0x7c00, float32(math.Inf(1))},
		{0xfc00, float32(math.Inf(-1))},
	}
	for _, tc := range tests {
		if got := HalfToFloat(tc.h); got != tc.want {
			t.Errorf("HalfToFloat(%#04x) = %v, want %v", tc.h, got, tc.want)
		}
	}
	if got := HalfToFloat(0x7e00); !math.IsNaN(float64(got)) {
		t.Errorf("HalfToFloat(NaN) = %v", got)
	}
	if got := HalfToFloat(0x8000); got != 0 || !math.Signbit(float64(got)) {
		t.Errorf("HalfToFloat(-0) = %v, want -0", got)
	}
}

func TestViewAliasesAlignedBytes(t *testing.T) {
	buf := make([]byte, 4*4+1)
	for i := 0; i < 4; i++ {
		binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(float32(i)+0.5))
	}
	v, ok, err := View(Float32, []int{2, 2}, buf[:16])
	if err != nil || !ok {
		t.Fatalf("View aligned: ok=%v err=%v", ok, err)
	}
	if v.F32[3] != 3.5 {
		t.Fatalf("view[3] = %v", v.F32[3])
	}
	binary.LittleEndian.PutUint32(buf[0:], math.Float32bits(9))
	if v.F32[0] != 9 {
		t.Fatal("View copied the bytes instead of aliasing them")
	}
	// One byte off: misaligned for float32, so no view (the caller copies).
	if _, ok, err := View(Float32, []int{4}, buf[1:17]); ok || err != nil {
		t.Fatalf("View misaligned: ok=%v err=%v, want ok=false", ok, err)
	}
	if _, ok, _ := View(Bool, []int{2}, []byte{0, 2}); ok {
		t.Fatal("View of bool bytes must refuse: they may hold values other than 0 and 1")
	}
	if _, _, err := View(Float32, []int{5}, buf[:16]); err == nil {
		t.Fatal("View with a wrong byte count must fail")
	}
}

func TestDecodeEveryDType(t *testing.T) {
	le := binary.LittleEndian
	raw := make([]byte, 16)
	le.PutUint64(raw, uint64(math.Float64bits(-1.5)))
	le.PutUint64(raw[8:], uint64(1<<40))
	f64, err := Decode(Float64, []int{1}, raw[:8])
	if err != nil || f64.F64[0] != -1.5 {
		t.Fatalf("float64: %v %v", f64, err)
	}
	i64, err := Decode(Int64, []int{1}, raw[8:])
	if err != nil || i64.I64[0] != 1<<40 {
		t.Fatalf("int64: %v %v", i64, err)
	}
	b, err := Decode(Bool, []int{3}, []byte{0, 1, 7})
	if err != nil || b.B[0] || !b.B[1] || !b.B[2] {
		t.Fatalf("bool: %v %v", b.B, err)
	}
	h, err := Decode(Float16, []int{2}, []byte{0x00, 0x3c, 0x00, 0xc0})
	if err != nil || h.DType != Float32 || h.F32[0] != 1 || h.F32[1] != -2 {
		t.Fatalf("float16 widened: %v %v", h, err)
	}
	bf, err := Decode(BFloat16, []int{2}, []byte{0x80, 0x3f, 0x20, 0xc0})
	if err != nil || bf.DType != Float32 || bf.F32[0] != 1 || bf.F32[1] != -2.5 {
		t.Fatalf("bfloat16 widened: %v %v", bf, err)
	}
	i16, err := Decode(Int16, []int{2}, []byte{0xff, 0xff, 0x00, 0x80})
	if err != nil || i16.I16[0] != -1 || i16.I16[1] != math.MinInt16 {
		t.Fatalf("int16: %v %v", i16, err)
	}
	u16, err := Decode(Uint16, []int{1}, []byte{0xff, 0xff})
	if err != nil || u16.U16[0] != math.MaxUint16 {
		t.Fatalf("uint16: %v %v", u16, err)
	}
	u32, err := Decode(Uint32, []int{1}, []byte{0xff, 0xff, 0xff, 0xff})
	if err != nil || u32.U32[0] != math.MaxUint32 {
		t.Fatalf("uint32: %v %v", u32, err)
	}
	u64, err := Decode(Uint64, []int{2}, raw)
	if err != nil || u64.U64[0] != math.Float64bits(-1.5) || u64.U64[1] != 1<<40 {
		t.Fatalf("uint64: %v %v", u64, err)
	}
	for _, w := range []*Tensor{i16, u16, u32, u64} {
		if err := w.Validate(); err != nil || w.Len() != w.Shape[0] || len(w.Bytes()) != w.Len()*w.DType.Size() {
			t.Fatalf("%s: Validate %v, Len %d, %d bytes", w, err, w.Len(), len(w.Bytes()))
		}
	}
	if _, err := Decode(String, []int{1}, []byte{1}); err == nil {
		t.Fatal("string must be refused")
	}
}

// TestFloatToBFloat checks the bfloat16 rounding on every float32 whose low
// half sits at or around a tie, against the definition: the nearest of the
// two neighbouring bfloat16 values, ties to the even one.
func TestFloatToBFloat(t *testing.T) {
	for hi := uint32(0); hi < 1<<16; hi++ {
		for _, lo := range []uint32{0, 1, 0x7fff, 0x8000, 0x8001, 0xffff} {
			b := hi<<16 | lo
			f := math.Float32frombits(b)
			got := FloatToBFloat(f)
			if f != f {
				if g := BFloatToFloat(got); g == g {
					t.Fatalf("%#08x: NaN became %v", b, g)
				}
				continue
			}
			want := uint16(hi)
			if lo > 0x8000 || lo == 0x8000 && hi&1 == 1 {
				want++
			}
			if got != want {
				t.Fatalf("%#08x (%v): got %#04x, want %#04x", b, f, got, want)
			}
		}
	}
	if RoundBFloat(1.00390625) != 1 || RoundBFloat(1.01171875) != 1.015625 {
		t.Fatal("RoundBFloat: ties must go to even")
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		t    *Tensor
		ok   bool
	}{
		{"good", New(Float32, 2, 3), true},
		{"scalar", New(Int64), true},
		{"short data", &Tensor{DType: Float32, Shape: []int{2, 3}, F32: make([]float32, 5)}, false},
		{"negative dim", &Tensor{DType: Float32, Shape: []int{-1}, F32: nil}, false},
		{"float16 in memory", &Tensor{DType: Float16, Shape: []int{1}}, false},
		{"nil", nil, false},
		{"strings", &Tensor{DType: String, Shape: []int{2}, S: []string{"a", ""}}, true},
		{"short strings", &Tensor{DType: String, Shape: []int{2}, S: []string{"a"}}, false},
		{"sequence", NewSequence([]*Tensor{New(Float32, 2), New(Int64)}), true},
		{"empty sequence", NewSequence(nil), true},
		{"sequence of a bad tensor", NewSequence([]*Tensor{New(Float32, 2), {DType: Float32, Shape: []int{3}}}), false},
		{"none", &Tensor{DType: None}, true},
	}
	for _, tc := range tests {
		if err := tc.t.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

// TestFloatToHalf checks every float16 value, every midpoint between two
// neighbours (ties go to the even one) and the floats either side of it.
func TestFloatToHalf(t *testing.T) {
	for h := uint32(0); h <= 0xffff; h++ {
		f := HalfToFloat(uint16(h))
		got := FloatToHalf(f)
		if math.IsNaN(float64(f)) {
			if !math.IsNaN(float64(HalfToFloat(got))) {
				t.Fatalf("FloatToHalf(NaN %#04x) = %#04x, not a NaN", h, got)
			}
			continue
		}
		if got != uint16(h) {
			t.Fatalf("FloatToHalf(%v) = %#04x, want %#04x", f, got, h)
		}
	}
	for _, sign := range []uint16{0, 0x8000} {
		for h := uint16(0); h < 0x7bff; h++ { // 65504 to infinity: the cases below
			lo, hi := HalfToFloat(sign|h), HalfToFloat(sign|(h+1))
			mid := (lo + hi) / 2 // 12 significant bits: exact in float32
			even := sign | h
			if h&1 == 1 {
				even = sign | (h + 1)
			}
			if got := FloatToHalf(mid); got != even {
				t.Fatalf("FloatToHalf(%v), midway between %#04x and %#04x = %#04x, want %#04x", mid, sign|h, sign|(h+1), got, even)
			}
			toward := func(x float32, up bool) float32 {
				if up == (x >= 0) {
					return math.Nextafter32(x, float32(math.Inf(1)))
				}
				return math.Nextafter32(x, float32(math.Inf(-1)))
			}
			if got := FloatToHalf(toward(mid, true)); got != sign|(h+1) {
				t.Fatalf("FloatToHalf(just past %v) = %#04x, want %#04x", mid, got, sign|(h+1))
			}
			if got := FloatToHalf(toward(mid, false)); got != sign|h {
				t.Fatalf("FloatToHalf(just short of %v) = %#04x, want %#04x", mid, got, sign|h)
			}
		}
	}
	for _, tc := range []struct {
		f    float32
		want uint16
	}{{65519.99, 0x7bff}, {65520, 0x7c00}, {1e10, 0x7c00}, {-1e10, 0xfc00}, {1e-30, 0}, {-1e-30, 0x8000}, {2.98e-8, 0}, {2.99e-8, 1}} {
		if got := FloatToHalf(tc.f); got != tc.want {
			t.Errorf("FloatToHalf(%v) = %#04x, want %#04x", tc.f, got, tc.want)
		}
	}
	if got := RoundHalf(0.1); got != 0.0999755859375 {
		t.Errorf("RoundHalf(0.1) = %v, want 0.0999755859375", got)
	}
}
