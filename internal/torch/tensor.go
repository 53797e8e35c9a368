package torch

// #include <stdlib.h>
// #include "glue.h"
import "C"

import (
	"fmt"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// The helpers below replace the gotch v0.7.0 functions that call log.Fatal
// on a libtorch error (MustSize, Numel, Float64Values, Int64Values, Copy_,
// MustOfSlice, MustZeros, ...): they panic with the error for Catch instead,
// so a libtorch failure ends the step that caused it, not the process.
// TestNoFatalGotchCalls keeps the rest of dira off those functions.

// Size is t's shape.
func Size(t *ts.Tensor) []int64 {
	assertPinned()
	s, err := t.Size()
	if err != nil {
		panic(opPanic{libtorchError(err)})
	}
	return s
}

// Numel is the number of elements of t (1 for a 0-d tensor).
func Numel(t *ts.Tensor) int64 {
	n := int64(1)
	for _, d := range Size(t) {
		n *= d
	}
	return n
}

// ScalarType is libtorch's element type number (c10::ScalarType). gotch's
// DType cannot tell float16 from float32 and exits the process on bfloat16.
type ScalarType int

// The element types dira meets.
const (
	Uint8    ScalarType = 0
	Int8     ScalarType = 1
	Int32    ScalarType = 3
	Int64    ScalarType = 4
	Float16  ScalarType = 5
	Float32  ScalarType = 6
	Float64  ScalarType = 7
	Bool     ScalarType = 11
	BFloat16 ScalarType = 15
)

func (s ScalarType) String() string {
	switch s {
	case Uint8:
		return "uint8"
	case Int8:
		return "int8"
	case Int32:
		return "int32"
	case Int64:
		return "int64"
	case Float16:
		return "float16"
	case Float32:
		return "float32"
	case Float64:
		return "float64"
	case Bool:
		return "bool"
	case BFloat16:
		return "bfloat16"
	}
	return fmt.Sprintf("scalar type %d", int(s))
}

// TypeOf is t's element type.
func TypeOf(t *ts.Tensor) ScalarType {
	assertPinned()
	return ScalarType(C.dira_scalar_type(t.Ctensor()))
}

// Float32s copies t's elements (any dtype, any strides) into a new slice.
func Float32s(t *ts.Tensor) []float32 {
	out := make([]float32, Numel(t))
	copyOut(t, Float32, gotch.Float, out)
	return out
}

// Float64s copies t's elements as float64.
func Float64s(t *ts.Tensor) []float64 {
	out := make([]float64, Numel(t))
	copyOut(t, Float64, gotch.Double, out)
	return out
}

// Int64s copies t's elements as int64.
func Int64s(t *ts.Tensor) []int64 {
	out := make([]int64, Numel(t))
	copyOut(t, Int64, gotch.Int64, out)
	return out
}

// Item is the value of a one-element tensor (a loss) as float64.
func Item(t *ts.Tensor) float64 {
	v := Float64s(t)
	if len(v) != 1 {
		Fail("item of a tensor with %d elements", len(v))
	}
	return v[0]
}

// copyOut converts t to dtype, makes it contiguous and copies it into dst.
func copyOut(t *ts.Tensor, st ScalarType, dtype gotch.DType, dst any) {
	n := Numel(t)
	if n == 0 {
		return
	}
	src := t
	if TypeOf(t) != st {
		src = Must(t.Totype(dtype, false))
		defer Drop(src)
	}
	c := Must(src.Contiguous(false))
	defer Drop(c)
	if err := c.CopyData(dst, uint(n)); err != nil {
		panic(opPanic{libtorchError(err)})
	}
}

// FromFloat32 makes a float32 tensor of shape from values (copied).
func FromFloat32(values []float32, shape []int64) *ts.Tensor {
	return fromData(values, len(values), shape)
}

// FromInt64 makes an int64 tensor of shape from values (copied).
func FromInt64(values []int64, shape []int64) *ts.Tensor {
	return fromData(values, len(values), shape)
}

func fromData(values any, n int, shape []int64) *ts.Tensor {
	assertPinned()
	want := int64(1)
	for _, d := range shape {
		want *= d
	}
	if int64(n) != want {
		Fail("%d values for shape %v", n, shape)
	}
	if len(shape) == 0 {
		// gotch builds no 0-d tensor from data: make [1] and squeeze it.
		t := Must(ts.OfSlice(values))
		return Must(t.Squeeze(true))
	}
	if n == 0 {
		return Zeros(shape, map[bool]gotch.DType{true: gotch.Float, false: gotch.Int64}[isFloat(values)])
	}
	return Must(ts.NewTensorFromData(values, shape))
}

func isFloat(v any) bool { _, ok := v.([]float32); return ok }

// Zeros is a new tensor of zeros.
func Zeros(shape []int64, dtype gotch.DType) *ts.Tensor {
	assertPinned()
	return Must(ts.Zeros(shape, dtype, gotch.CPU))
}

// Ones is a new tensor of ones.
func Ones(shape []int64, dtype gotch.DType) *ts.Tensor {
	assertPinned()
	return Must(ts.Ones(shape, dtype, gotch.CPU))
}

// CopyInto copies src into dst in place (dst.copy_(src), broadcasting and
// converting like PyTorch), without recording autograd: it is how weights are
// loaded and moved, never part of a loss.
func CopyInto(dst, src *ts.Tensor) {
	assertPinned()
	var cerr *C.char
	if C.dira_copy_(dst.Ctensor(), src.Ctensor(), &cerr) != 0 {
		panic(opPanic{cError(cerr)})
	}
}

// Defined reports whether t holds a tensor (an undefined gradient does not).
func Defined(t *ts.Tensor) bool {
	assertPinned()
	ok, err := t.Defined()
	if err != nil {
		panic(opPanic{libtorchError(err)})
	}
	return ok
}

// Grad is t's gradient tensor (undefined before a backward reaches t); the
// caller drops the handle.
func Grad(t *ts.Tensor) *ts.Tensor { return Must(t.Grad(false)) }

// Backward runs autograd from a scalar loss.
func Backward(loss *ts.Tensor) {
	assertPinned()
	if err := loss.Backward(); err != nil {
		panic(opPanic{libtorchError(err)})
	}
}

// SetRequiresGrad marks t as a leaf that records gradients, returning the
// new handle (t is consumed).
func SetRequiresGrad(t *ts.Tensor, on bool) *ts.Tensor {
	return Must(t.SetRequiresGrad(on, true))
}

// RequiresGrad reports whether autograd records operations on t.
func RequiresGrad(t *ts.Tensor) bool {
	assertPinned()
	ok, err := t.RequiresGrad()
	if err != nil {
		panic(opPanic{libtorchError(err)})
	}
	return ok
}

// FloatScalar and IntScalar wrap gotch's scalar constructors, which cannot
// fail; the caller frees them with DropScalars.
func FloatScalar(v float64) *ts.Scalar { return ts.FloatScalar(v) }

// IntScalar is FloatScalar for integers.
func IntScalar(v int64) *ts.Scalar { return ts.IntScalar(v) }

// String describes a tensor's shape and dtype, for error messages.
func String(t *ts.Tensor) string {
	return fmt.Sprintf("%v %v", Size(t), TypeOf(t))
}
