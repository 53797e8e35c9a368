package stages

import (
	"fmt"

	"github.com/sugarme/gotch/ts"
)

// torchError carries a libtorch error out of tensor code in this package;
// must/check panic with it and catchTorch recovers it at function edges.
type torchError struct{ err error }

func must(t *ts.Tensor, err error) *ts.Tensor {
	if err != nil {
		panic(torchError{err})
	}
	return t
}

func check(err error) {
	if err != nil {
		panic(torchError{err})
	}
}

func catchTorch(what string, err *error) {
	if r := recover(); r != nil {
		te, ok := r.(torchError)
		if !ok {
			panic(r)
		}
		*err = fmt.Errorf("%s: %w", what, te.err)
	}
}

func drop(ts ...*ts.Tensor) {
	for _, t := range ts {
		if t != nil {
			t.MustDrop()
		}
	}
}
