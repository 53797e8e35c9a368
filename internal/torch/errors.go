package torch

import (
	"errors"
	"fmt"
	"strings"

	"github.com/sugarme/gotch/ts"
)

// Error is a libtorch error: the first line of its message (libtorch appends
// a C++ backtrace after it, which means nothing to a user).
type Error struct{ Msg string }

func (e *Error) Error() string { return "libtorch: " + e.Msg }

// libtorchError turns an error from gotch (or this package's glue) into an
// *Error holding the message's first line.
func libtorchError(err error) error {
	var te *Error
	if errors.As(err, &te) {
		return err
	}
	msg := strings.TrimSpace(err.Error())
	msg = strings.TrimPrefix(msg, "Libtorch API Error:")
	msg = strings.TrimSpace(msg)
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = strings.TrimSpace(msg[:i])
	}
	return &Error{Msg: msg}
}

// opPanic carries a libtorch error out of tensor code: Must and Check panic
// with it, and Catch, deferred at the exported function's edge, turns it back
// into an error. Tensor code then reads as a sequence of ops instead of an
// error check after each one; any other panic passes through.
type opPanic struct{ err error }

// Must returns t, or panics with err for Catch to recover.
func Must(t *ts.Tensor, err error) *ts.Tensor {
	assertPinned()
	if err != nil {
		panic(opPanic{libtorchError(err)})
	}
	return t
}

// Check panics with a non-nil err for Catch to recover.
func Check(err error) {
	assertPinned()
	if err != nil {
		panic(opPanic{err})
	}
}

// Fail panics with a libtorch error message for Catch to recover: for a
// libtorch call dira makes itself whose failure it detects (and for tests
// that need a real libtorch error at a chosen moment).
func Fail(format string, args ...any) {
	panic(opPanic{&Error{Msg: fmt.Sprintf(format, args...)}})
}

// Catch, deferred, sets *err to "what: <error>" when a Must or Check below it
// panicked. It must be deferred directly (defer torch.Catch(...)). what ""
// leaves the error unwrapped.
func Catch(what string, err *error) {
	if r := recover(); r != nil {
		op, ok := r.(opPanic)
		if !ok {
			panic(r)
		}
		if what == "" {
			*err = op.err
			return
		}
		*err = fmt.Errorf("%s: %w", what, op.err)
	}
}

// Drop frees tensors, skipping nil ones.
func Drop(xs ...*ts.Tensor) {
	assertPinned()
	for _, t := range xs {
		if t != nil {
			if err := t.Drop(); err != nil {
				panic(opPanic{libtorchError(err)})
			}
		}
	}
}

// DropScalars frees scalars, skipping nil ones.
func DropScalars(ss ...*ts.Scalar) {
	for _, s := range ss {
		if s != nil {
			if err := s.Drop(); err != nil {
				panic(opPanic{libtorchError(err)})
			}
		}
	}
}
