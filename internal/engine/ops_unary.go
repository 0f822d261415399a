package engine

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/spindleml/spindle/internal/kernels"
	"github.com/spindleml/spindle/internal/tensor"
)

// Elementwise unary ops. Float32 inputs are computed in float64 and rounded
// once, so transcendental ops (Exp, Erf, Tanh, ...) are correctly rounded or
// within one ulp of float32; this matters for BERT's Erf-decomposed GELU,
// which ONNX Runtime computes to float32 precision. Outputs are freshly
// allocated.

func init() {
	for op, f := range map[string]func(float64) float64{
		"Log":   math.Log,
		"Sqrt":  math.Sqrt,
		"Floor": math.Floor,
		"Ceil":  math.Ceil,
		// Round halves to even, as ONNX specifies (numpy.round).
		"Round":    math.RoundToEven,
		"Softplus": softplus,
		"Softsign": func(x float64) float64 { return x / (1 + math.Abs(x)) },
		"Mish":     func(x float64) float64 { return x * math.Tanh(softplus(x)) },
		"Cos":      math.Cos,
		"Sin":      math.Sin,
		"Tan":      math.Tan,
		"Acos":     math.Acos,
		"Asin":     math.Asin,
		"Atan":     math.Atan,
		"Cosh":     math.Cosh,
		"Sinh":     math.Sinh,
		"Acosh":    math.Acosh,
		"Asinh":    math.Asinh,
		"Atanh":    math.Atanh,
		"HardSwish": func(x float64) float64 {
			return x * max(0, min(1, x/6+0.5))
		},
	} {
		registerUnary(op, fixed(floatTable(f)))
	}
	// Erf, Exp, Tanh and Sigmoid are hot in transformers (GELU, Softmax
	// decompositions, SiLU): float32 uses table-driven approximations
	// evaluated in float64, within 1 ulp of the correctly rounded result
	// (TestErf32, TestExp32).
	registerUnary("Erf", fixed(unaryTable{tensor.Float32: un(erf32), tensor.Float64: un(math.Erf)}))
	registerUnary("Exp", fixed(unaryTable{tensor.Float32: vec(kernels.Exp), tensor.Float64: un(math.Exp)}))
	registerUnary("Tanh", fixed(unaryTable{
		tensor.Float32: un(func(x float32) float32 { return float32(tanh64f(float64(x))) }),
		tensor.Float64: un(math.Tanh),
	}))
	registerUnary("Sigmoid", fixed(unaryTable{tensor.Float32: vec(kernels.Sigmoid), tensor.Float64: un(sigmoid)}))
	registerUnary("Reciprocal", fixed(unaryTable{
		tensor.Float32: un(func(x float32) float32 { return 1 / x }),
		tensor.Float64: un(func(x float64) float64 { return 1 / x }),
	}))
	registerUnary("Neg", fixed(signedOnly(unaryNumTable("Neg"))))
	registerUnary("Abs", fixed(unaryNumTable("Abs")))
	registerUnary("Sign", fixed(unaryNumTable("Sign")))
	registerUnary("BitwiseNot", fixed(unaryTable{
		tensor.Int64: un(bitNot[int64]), tensor.Int32: un(bitNot[int32]), tensor.Int16: un(bitNot[int16]),
		tensor.Int8: un(bitNot[int8]), tensor.Uint64: un(bitNot[uint64]), tensor.Uint32: un(bitNot[uint32]),
		tensor.Uint16: un(bitNot[uint16]), tensor.Uint8: un(bitNot[uint8]),
	}))
	reluTable := signedOnly(unaryNumTable("Relu"))
	reluTable[tensor.Float32] = reluF32
	registerUnary("Relu", fixed(reluTable))
	registerUnary("IsNaN", fixed(unaryTable{
		tensor.Float32: un(func(x float32) bool { return x != x }),
		tensor.Float64: un(func(x float64) bool { return x != x }),
	}))
	registerUnary("IsInf", newIsInf)
	registerUnary("LeakyRelu", func(n *Node) (unaryTable, error) {
		alpha := float64(n.Float("alpha", 0.01))
		return floatTable(func(x float64) float64 {
			if x < 0 {
				return alpha * x
			}
			return x
		}), nil
	})
	registerUnary("Elu", func(n *Node) (unaryTable, error) {
		alpha := float64(n.Float("alpha", 1))
		return floatTable(func(x float64) float64 {
			if x < 0 {
				return alpha * math.Expm1(x)
			}
			return x
		}), nil
	})
	registerUnary("Celu", func(n *Node) (unaryTable, error) {
		alpha := float64(n.Float("alpha", 1))
		if alpha == 0 {
			return nil, fmt.Errorf("attribute alpha: must not be 0")
		}
		return floatTable(func(x float64) float64 {
			return max(0, x) + min(0, alpha*math.Expm1(x/alpha))
		}), nil
	})
	registerUnary("Selu", func(n *Node) (unaryTable, error) {
		alpha := float64(n.Float("alpha", 1.67326319217681884765625))
		gamma := float64(n.Float("gamma", 1.05070102214813232421875))
		return floatTable(func(x float64) float64 {
			if x <= 0 {
				return gamma * alpha * math.Expm1(x)
			}
			return gamma * x
		}), nil
	})
	registerUnary("HardSigmoid", func(n *Node) (unaryTable, error) {
		alpha, beta := float64(n.Float("alpha", 0.2)), float64(n.Float("beta", 0.5))
		return floatTable(func(x float64) float64 { return max(0, min(1, alpha*x+beta)) }), nil
	})
	registerUnary("ThresholdedRelu", func(n *Node) (unaryTable, error) {
		alpha := float64(n.Float("alpha", 1))
		return floatTable(func(x float64) float64 {
			if x > alpha {
				return x
			}
			return 0
		}), nil
	})
	registerUnary("Gelu", func(n *Node) (unaryTable, error) {
		switch a := n.String("approximate", "none"); a {
		case "none":
			return unaryTable{
				tensor.Float32: un(func(x float32) float32 {
					v := float64(x)
					if v < -3 {
						// 1 + erf(v/√2) would cancel to nothing; erfc keeps the tiny tail.
						return float32(0.5 * v * math.Erfc(-v/math.Sqrt2))
					}
					return float32(0.5 * v * (1 + erf64f(v/math.Sqrt2)))
				}),
				tensor.Float64: un(func(x float64) float64 { return 0.5 * x * (1 + math.Erf(x/math.Sqrt2)) }),
			}, nil
		case "tanh":
			c := math.Sqrt(2 / math.Pi)
			return unaryTable{
				tensor.Float32: un(func(x float32) float32 {
					v := float64(x)
					return float32(0.5 * v * (1 + tanh64f(c*(v+0.044715*v*v*v))))
				}),
				tensor.Float64: un(func(x float64) float64 { return 0.5 * x * (1 + math.Tanh(c*(x+0.044715*x*x*x))) }),
			}, nil
		default:
			return nil, fmt.Errorf("attribute approximate: %q: %w (none and tanh are)", a, ErrUnsupported)
		}
	})
	registerUnary("Shrink", func(n *Node) (unaryTable, error) {
		bias, lambd := float64(n.Float("bias", 0)), float64(n.Float("lambd", 0.5))
		return floatTable(func(x float64) float64 {
			switch {
			case x < -lambd:
				return x + bias
			case x > lambd:
				return x - bias
			}
			return 0
		}), nil
	})
	register("Clip", newClip)
}

// sigmoid is 1/(1+e^-x) evaluated without overflow for large |x|.
func sigmoid(x float64) float64 {
	if x >= 0 {
		return 1 / (1 + math.Exp(-x))
	}
	e := math.Exp(x)
	return e / (1 + e)
}

// softplus is log(1+e^x) evaluated without overflow for large x.
func softplus(x float64) float64 {
	if x > 0 {
		return x + math.Log1p(math.Exp(-x))
	}
	return math.Log1p(math.Exp(x))
}

func neg[T num](x T) T { return -x }

func abs[T num](x T) T {
	if x < 0 {
		return -x
	}
	return x
}

func relu[T num](x T) T {
	if x > 0 {
		return x
	}
	return 0
}

// reluF32 is relu over a float32 tensor with kernels.MaxZero (the same
// results, NaN and -0 giving 0), not a call per element: CNNs run it over
// every activation.
func reluF32(x *tensor.Tensor) *tensor.Tensor {
	out := newF32(x.Shape...)
	kernels.MaxZero(out.F32, x.F32)
	return out
}

// sign maps NaN to NaN (x != x), as numpy.sign does.
func bitNot[T integer](x T) T { return ^x }

func sign[T num](x T) T {
	switch {
	case x > 0:
		return 1
	case x < 0:
		return T(0) - 1
	}
	return x
}

// unaryFn computes one dtype's elementwise op into a new tensor.
type unaryFn func(x *tensor.Tensor) *tensor.Tensor

// unaryTable holds an op's implementations by input dtype.
type unaryTable map[tensor.DType]unaryFn

// un lifts an element function to a unaryFn.
func un[T, R elem](f func(T) R) unaryFn {
	return func(x *tensor.Tensor) *tensor.Tensor {
		out := newOf[R](x.Shape)
		dst := dataOf[R](out)
		for i, v := range dataOf[T](x) {
			dst[i] = f(v)
		}
		return out
	}
}

// vec lifts a float32 vector kernel to a unaryFn.
func vec(f func(dst, src []float32)) unaryFn {
	return func(x *tensor.Tensor) *tensor.Tensor {
		out := newF32Dirty(x.Shape...)
		f(out.F32, x.F32)
		return out
	}
}

// floatTable implements a float64 function for float64 and float32 (computed
// in float64, rounded once).
func floatTable(f func(float64) float64) unaryTable {
	return unaryTable{
		tensor.Float32: un(func(x float32) float32 { return float32(f(float64(x))) }),
		tensor.Float64: un(f),
	}
}

// unaryNumTable instantiates a unary op for every numeric dtype, named by key
// as numTableOf's are.
func unaryNumTable(key string) unaryTable {
	t := unaryTable{
		tensor.Float32: unaryNum[float32](key), tensor.Float64: unaryNum[float64](key),
		tensor.Int64: unaryNum[int64](key), tensor.Int32: unaryNum[int32](key),
		tensor.Int16: unaryNum[int16](key), tensor.Int8: unaryNum[int8](key),
		tensor.Uint64: unaryNum[uint64](key), tensor.Uint32: unaryNum[uint32](key),
		tensor.Uint16: unaryNum[uint16](key), tensor.Uint8: unaryNum[uint8](key),
	}
	return t
}

func unaryNum[T num](key string) unaryFn {
	switch key {
	case "Neg":
		return un(neg[T])
	case "Abs":
		return un(abs[T])
	case "Sign":
		return un(sign[T])
	case "Relu":
		return un(relu[T])
	}
	panic("engine: unaryNum: unknown op " + key)
}

// signedOnly drops the unsigned dtypes from t (ops like Neg that ONNX
// defines for signed types only).
func signedOnly(t unaryTable) unaryTable {
	for _, dt := range []tensor.DType{tensor.Uint64, tensor.Uint32, tensor.Uint16, tensor.Uint8} {
		delete(t, dt)
	}
	return t
}

// fixed is the maker of an op without attributes.
func fixed(t unaryTable) func(*Node) (unaryTable, error) {
	return func(*Node) (unaryTable, error) { return t, nil }
}

// registerUnary registers a one-input elementwise op; mk reads the node's
// attributes at compile time.
func registerUnary(op string, mk func(n *Node) (unaryTable, error)) {
	register(op, func(n *Node) (Kernel, error) {
		t, err := mk(n)
		if err != nil {
			return nil, err
		}
		n.fresh = true // every unaryFn returns a new tensor
		return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
			if err := checkInputs(in, 1, 1); err != nil {
				return nil, err
			}
			f, ok := t[in[0].DType]
			if !ok {
				var names []string
				for dt := range t {
					names = append(names, dt.String())
				}
				sort.Strings(names)
				return nil, fmt.Errorf("input X: dtype %s, %s supports %s", in[0].DType, op, strings.Join(names, ", "))
			}
			return []*tensor.Tensor{f(in[0])}, nil
		}, nil
	})
}

// newIsInf reports infinities, positive and negative ones selectable.
func newIsInf(n *Node) (unaryTable, error) {
	pos, negInf := n.Int("detect_positive", 1) != 0, n.Int("detect_negative", 1) != 0
	f := func(x float64) bool { return (pos && math.IsInf(x, 1)) || (negInf && math.IsInf(x, -1)) }
	return unaryTable{
		tensor.Float32: un(func(x float32) bool { return f(float64(x)) }),
		tensor.Float64: un(f),
	}, nil
}

// newClip limits values to [min, max]. Before opset 11 the bounds are float
// attributes; since, they are optional scalar inputs of the input's dtype.
// When min > max every value becomes max, as the spec says. NaN stays NaN.
func newClip(n *Node) (Kernel, error) {
	attrMode := n.Opset < 11
	lo := n.Float("min", float32(math.Inf(-1)))
	hi := n.Float("max", float32(math.Inf(1)))
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if attrMode {
			if err := checkInputs(in, 1, 1); err != nil {
				return nil, err
			}
			x := in[0]
			switch x.DType {
			case tensor.Float32:
				return []*tensor.Tensor{clip(x, lo, hi)}, nil
			case tensor.Float64:
				return []*tensor.Tensor{clip(x, float64(lo), float64(hi))}, nil
			}
			return nil, fmt.Errorf("input input: dtype %s, Clip before opset 11 supports float32 and float64", x.DType)
		}
		if err := checkInputs(in, 1, 3); err != nil {
			return nil, err
		}
		switch in[0].DType {
		case tensor.Float32:
			return clipInputs[float32](in, float32(math.Inf(-1)), float32(math.Inf(1)))
		case tensor.Float64:
			return clipInputs(in, math.Inf(-1), math.Inf(1))
		case tensor.Int64:
			return clipInputs[int64](in, math.MinInt64, math.MaxInt64)
		case tensor.Int32:
			return clipInputs[int32](in, math.MinInt32, math.MaxInt32)
		case tensor.Int8:
			return clipInputs[int8](in, math.MinInt8, math.MaxInt8)
		case tensor.Uint8:
			return clipInputs[uint8](in, 0, math.MaxUint8)
		}
		return nil, fmt.Errorf("input input: dtype %s, Clip supports float32, float64, int64, int32, int8 and uint8", in[0].DType)
	}, nil
}

func clipInputs[T num](in []*tensor.Tensor, lo, hi T) ([]*tensor.Tensor, error) {
	x := in[0]
	for i, name := range []string{"min", "max"} {
		if i+1 >= len(in) || in[i+1] == nil {
			continue
		}
		b := in[i+1]
		if b.DType != x.DType || b.Len() != 1 {
			return nil, fmt.Errorf("input %s: %s, must be a scalar of the input's dtype %s", name, b, x.DType)
		}
		if i == 0 {
			lo = dataOf[T](b)[0]
		} else {
			hi = dataOf[T](b)[0]
		}
	}
	return []*tensor.Tensor{clip(x, lo, hi)}, nil
}

func clip[T num](x *tensor.Tensor, lo, hi T) *tensor.Tensor {
	out := newOf[T](x.Shape)
	dst := dataOf[T](out)
	for i, v := range dataOf[T](x) {
		if v < lo {
			v = lo
		}
		if v > hi {
			v = hi
		}
		dst[i] = v
	}
	return out
}

// Float32 erf and exp. Each is computed in float64 by a polynomial accurate
// to about 1e-12 relative and rounded once to float32, so the result is the
// correctly rounded one except when the exact value lies within 1e-12 of a
// rounding boundary (then it is 1 ulp off). The coefficients are Taylor
// coefficients derived at start-up from closed forms, not fitted constants.

// erfSmallTerms are the Taylor coefficients of erf(x)/x in powers of x² (used
// for |x| < erfSplit): 2/√π (-1)^n / (n! (2n+1)).
var erfSmallTerms [7]float64

const (
	erfSplit  = 0.125    // below: the odd Taylor series at 0
	erfLimit  = 4.0      // at and above: erf rounds to ±1 in float32 (erfc(4) < 2^-25)
	erfPieceW = 1.0 / 32 // width of each piece on [erfSplit, erfLimit)
	erfDeg    = 5        // Taylor degree of each piece, about its centre
)

// erfPieces[i][k] is the k-th Taylor coefficient of erf about the centre of
// piece i, c = erfSplit + i*erfPieceW (the piece spans c ± erfPieceW/2; piece
// 0 is used only above its centre): erf(c) for k = 0 and
// (2/√π) e^(-c²) (-1)^(k-1) H_(k-1)(c) / k! for k >= 1, with H the physicists'
// Hermite polynomials (d^n/dx^n e^(-x²) = (-1)^n H_n(x) e^(-x²)).
var erfPieces [int((erfLimit-erfSplit)/erfPieceW) + 1][erfDeg + 1]float64

func init() {
	twoOverSqrtPi := 2 / math.Sqrt(math.Pi)
	fact := 1.0
	for n := range erfSmallTerms {
		if n > 0 {
			fact *= float64(n)
		}
		sign := 1.0
		if n%2 == 1 {
			sign = -1
		}
		erfSmallTerms[n] = twoOverSqrtPi * sign / (fact * float64(2*n+1))
	}
	for i := range erfPieces {
		c := erfSplit + float64(i)*erfPieceW
		p := &erfPieces[i]
		p[0] = math.Erf(c)
		g := twoOverSqrtPi * math.Exp(-c*c)
		hPrev, h := 0.0, 1.0 // H_(-1) (unused), H_0
		kfact := 1.0
		for k := 1; k <= erfDeg; k++ {
			n := k - 1 // h holds H_n(c)
			kfact *= float64(k)
			sign := 1.0
			if n%2 == 1 {
				sign = -1
			}
			p[k] = g * sign * h / kfact
			hPrev, h = h, 2*c*h-2*float64(n)*hPrev
		}
	}
}

// erf64f approximates erf(x) in float64 to about 1e-12 relative, for
// arguments that come from float32 values.
func erf64f(x float64) float64 {
	a := math.Abs(x)
	var r float64
	switch {
	case a < erfSplit:
		t := a * a
		c := &erfSmallTerms
		t2 := t * t
		lo := t2*(t*c[3]+c[2]) + (t*c[1] + c[0])
		hi := t2*c[6] + (t*c[5] + c[4])
		r = a * (t2*t2*hi + lo)
	case a < erfLimit:
		// Round f to the nearest piece without an int-to-float conversion
		// (CVTSI2SD's false dependency serializes the loop): adding 1.5*2^52
		// leaves round(f) in the low mantissa bits.
		f := (a - erfSplit) * (1 / erfPieceW)
		t := f + roundMagic
		p := &erfPieces[math.Float64bits(t)&0xffff]
		u := (f - (t - roundMagic)) * erfPieceW
		u2 := u * u
		// Estrin's scheme: three independent pairs, then two levels. (No
		// math.FMA: without GOAMD64=v3 its CPU check spills registers.)
		r = u2*(u2*(u*p[5]+p[4])+(u*p[3]+p[2])) + (u*p[1] + p[0])
	case a >= erfLimit:
		r = 1
	default: // NaN
		return x
	}
	return math.Copysign(r, x)
}

func erf32(x float32) float32 { return float32(erf64f(float64(x))) }

// roundMagic is 1.5*2^52: for |f| < 2^50, f + roundMagic rounds f to an
// integer n and holds 2^51 + n in the low 52 bits of the sum.
const roundMagic = 0x1.8p52

// exp64f is kernels.Exp64: e^x in float64 to about 1e-14 relative for x in
// float32's range.
func exp64f(x float64) float64 { return kernels.Exp64(x) }

func exp32(x float32) float32 { return float32(exp64f(float64(x))) }

// tanh64f approximates tanh(x) in float64 to about 1e-13 relative for
// arguments from float32: the odd Taylor series below tanhSplit (whose
// coefficients 2^2n (2^2n - 1) B_2n / (2n)! are written out), and
// 1 - 2/(e^2|x| + 1) above, where no cancellation can hurt. Beyond 10 the
// result rounds to ±1 in float32.
func tanh64f(x float64) float64 {
	const tanhSplit = 0.125
	a := math.Abs(x)
	switch {
	case a < tanhSplit:
		t := a * a
		p := -929569.0 / 638512875
		p = p*t + 21844.0/6081075
		p = p*t - 1382.0/155925
		p = p*t + 62.0/2835
		p = p*t - 17.0/315
		p = p*t + 2.0/15
		p = p*t - 1.0/3
		return x * (1 + t*p)
	case a < 10:
		return math.Copysign(1-2/(exp64f(2*a)+1), x)
	case a >= 10:
		return math.Copysign(1, x)
	}
	return x // NaN
}
