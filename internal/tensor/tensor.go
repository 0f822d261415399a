package tensor

import (
	"fmt"
	"strings"
	"unsafe"
)

// DType is an element type. Its values are ONNX TensorProto.DataType codes so that
// model files and tensors agree without a lookup table. The zero value is Invalid.
type DType int32

// Element types Spindle stores. Float16 and BFloat16 are computed as
// Float32: a float32 tensor computed for a float16 or bfloat16 value holds
// values that type can hold. Float16 weights are held as they are (U16, the
// IEEE binary16 bits, mapped from the model file) for the kernels that widen
// them as they read them; BFloat16 weights are widened at load.
const (
	Invalid  DType = 0
	Float32  DType = 1
	Uint8    DType = 2
	Int8     DType = 3
	Uint16   DType = 4
	Int16    DType = 5
	Int32    DType = 6
	Int64    DType = 7
	String   DType = 8
	Bool     DType = 9
	Float16  DType = 10
	Float64  DType = 11
	Uint32   DType = 12
	Uint64   DType = 13
	BFloat16 DType = 16
)

// The kinds of ONNX's non-tensor values, held in a Tensor too so that they
// travel where tensors do. They are not element types (ONNX gives them no
// data_type code): a Sequence's elements are in Seq; None is an optional
// value holding nothing (an optional holding a value is that value).
const (
	Sequence DType = -1
	None     DType = -2
)

var dtypeNames = map[DType]string{
	Sequence: "sequence", None: "none",
	Float32: "float32", Uint8: "uint8", Int8: "int8", Uint16: "uint16", Int16: "int16", Int32: "int32",
	Int64: "int64", String: "string", Bool: "bool", Float16: "float16", Float64: "float64",
	Uint32: "uint32", Uint64: "uint64", BFloat16: "bfloat16",
}

// Wide reports whether d is computed as Float32 (Float16, BFloat16): such a
// value is a Float32 tensor everywhere but in a Float16 weight.
func (d DType) Wide() bool { return d == Float16 || d == BFloat16 }

// String returns the NumPy-style name of d, or "dtype(N)" for an unknown code.
func (d DType) String() string {
	if s, ok := dtypeNames[d]; ok {
		return s
	}
	return fmt.Sprintf("dtype(%d)", int32(d))
}

// Size returns the size in bytes of one element of d, or 0 for types without a
// fixed-size in-memory form (String, Invalid).
func (d DType) Size() int {
	switch d {
	case Float32, Int32, Uint32:
		return 4
	case Int64, Float64, Uint64:
		return 8
	case Uint8, Int8, Bool:
		return 1
	case Float16, BFloat16, Int16, Uint16:
		return 2
	}
	return 0
}

// Tensor is an n-dimensional array. Exactly one data slice, the one matching DType,
// is set; its length is the product of Shape (1 for a scalar, whose Shape is empty).
// The zero Tensor is invalid.
type Tensor struct {
	DType DType
	Shape []int

	F32 []float32
	F64 []float64
	I64 []int64
	I32 []int32
	I16 []int16
	I8  []int8
	U64 []uint64
	U32 []uint32
	U16 []uint16
	U8  []uint8
	B   []bool
	S   []string

	// Seq holds a Sequence's elements.
	Seq []*Tensor
}

// NewSequence returns a sequence of the given elements (not copied).
func NewSequence(elems []*Tensor) *Tensor { return &Tensor{DType: Sequence, Seq: elems} }

// NumElements returns the product of shape's dimensions (1 for a scalar).
func NumElements(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// New allocates a zero-filled tensor of the given type and shape. It panics on a
// dtype without an in-memory form, which is a programmer error.
func New(dt DType, shape ...int) *Tensor {
	n := NumElements(shape)
	t := &Tensor{DType: dt, Shape: append([]int(nil), shape...)}
	switch dt {
	case Float32:
		t.F32 = make([]float32, n)
	case Float64:
		t.F64 = make([]float64, n)
	case Int64:
		t.I64 = make([]int64, n)
	case Int32:
		t.I32 = make([]int32, n)
	case Int16:
		t.I16 = make([]int16, n)
	case Int8:
		t.I8 = make([]int8, n)
	case Uint64:
		t.U64 = make([]uint64, n)
	case Uint32:
		t.U32 = make([]uint32, n)
	case Uint16:
		t.U16 = make([]uint16, n)
	case Float16:
		t.U16 = make([]uint16, n)
	case Uint8:
		t.U8 = make([]uint8, n)
	case Bool:
		t.B = make([]bool, n)
	case String:
		t.S = make([]string, n)
	default:
		panic("tensor: New: unsupported dtype " + dt.String())
	}
	return t
}

// FromF32 wraps data (not copied) as a float32 tensor of the given shape.
func FromF32(data []float32, shape ...int) *Tensor {
	return &Tensor{DType: Float32, Shape: append([]int(nil), shape...), F32: data}
}

// FromI64 wraps data (not copied) as an int64 tensor of the given shape.
func FromI64(data []int64, shape ...int) *Tensor {
	return &Tensor{DType: Int64, Shape: append([]int(nil), shape...), I64: data}
}

// Len returns the number of elements of t's data slice.
func (t *Tensor) Len() int {
	switch t.DType {
	case Float32:
		return len(t.F32)
	case Float64:
		return len(t.F64)
	case Int64:
		return len(t.I64)
	case Int32:
		return len(t.I32)
	case Int16:
		return len(t.I16)
	case Int8:
		return len(t.I8)
	case Uint64:
		return len(t.U64)
	case Uint32:
		return len(t.U32)
	case Uint16, Float16:
		return len(t.U16)
	case Uint8:
		return len(t.U8)
	case Bool:
		return len(t.B)
	case String:
		return len(t.S)
	}
	return 0
}

// Validate reports whether t is well formed: a known dtype, a shape
// CheckShape accepts and a data slice whose length matches the shape.
func (t *Tensor) Validate() error {
	if t == nil {
		return fmt.Errorf("tensor is nil")
	}
	switch t.DType {
	case None:
		return nil
	case Sequence:
		for i, e := range t.Seq {
			if err := e.Validate(); err != nil {
				return fmt.Errorf("sequence element %d: %w", i, err)
			}
		}
		return nil
	}
	if (t.DType.Size() == 0 && t.DType != String) || t.DType.Wide() {
		return fmt.Errorf("unsupported dtype %s", t.DType)
	}
	if err := CheckShape(t.Shape); err != nil {
		return err
	}
	if n, want := t.Len(), NumElements(t.Shape); n != want {
		return fmt.Errorf("shape %v needs %d elements, data has %d", t.Shape, want, n)
	}
	return nil
}

// Bytes returns t's data as raw little-endian bytes, a view sharing t's memory;
// nil for strings, which have no fixed-size form.
func (t *Tensor) Bytes() []byte {
	switch t.DType {
	case Float32:
		return sliceBytes(t.F32)
	case Float64:
		return sliceBytes(t.F64)
	case Int64:
		return sliceBytes(t.I64)
	case Int32:
		return sliceBytes(t.I32)
	case Int16:
		return sliceBytes(t.I16)
	case Int8:
		return sliceBytes(t.I8)
	case Uint64:
		return sliceBytes(t.U64)
	case Uint32:
		return sliceBytes(t.U32)
	case Uint16, Float16:
		return sliceBytes(t.U16)
	case Uint8:
		return t.U8
	case Bool:
		return sliceBytes(t.B)
	}
	return nil
}

func sliceBytes[T any](s []T) []byte {
	if len(s) == 0 {
		return nil
	}
	var z T
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), len(s)*int(unsafe.Sizeof(z)))
}

// ShapeString formats a shape as "[1 3 224 224]".
func ShapeString(shape []int) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, d := range shape {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprint(&b, d)
	}
	b.WriteByte(']')
	return b.String()
}

// String describes t's type and shape, not its data.
func (t *Tensor) String() string {
	switch t.DType {
	case Sequence:
		return fmt.Sprintf("sequence of %d", len(t.Seq))
	case None:
		return "none"
	}
	return t.DType.String() + ShapeString(t.Shape)
}
