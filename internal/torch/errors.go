package torch

import (
	"fmt"

	"github.com/sugarme/gotch/ts"
)

// opPanic carries a libtorch error out of tensor code: Must and Check panic
// with it, and Catch, deferred at the exported function's edge, turns it back
// into an error. Tensor code then reads as a sequence of ops instead of an
// error check after each one; any other panic passes through.
type opPanic struct{ err error }

// Must returns t, or panics with err for Catch to recover.
func Must(t *ts.Tensor, err error) *ts.Tensor {
	if err != nil {
		panic(opPanic{err})
	}
	return t
}

// Check panics with a non-nil err for Catch to recover.
func Check(err error) {
	if err != nil {
		panic(opPanic{err})
	}
}

// Catch, deferred, sets *err to "what: <libtorch error>" when a Must or Check
// below it panicked. It must be deferred directly (defer torch.Catch(...)).
func Catch(what string, err *error) {
	if r := recover(); r != nil {
		op, ok := r.(opPanic)
		if !ok {
			panic(r)
		}
		*err = fmt.Errorf("%s: %w", what, op.err)
	}
}

// Drop frees tensors, skipping nil ones.
func Drop(ts ...*ts.Tensor) {
	for _, t := range ts {
		if t != nil {
			t.MustDrop()
		}
	}
}
