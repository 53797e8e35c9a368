package statedict

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// DType is the element type of an entry. dira's networks hold float32
// weights and statistics and int64 counters (num_batches_tracked,
// queue_ptr).
type DType int

// The element types.
const (
	Float32 DType = iota
	Int64
)

func (d DType) String() string {
	switch d {
	case Float32:
		return "float32"
	case Int64:
		return "int64"
	}
	return fmt.Sprintf("DType(%d)", int(d))
}

// Tensor is one state_dict entry: a name, a shape (empty for a 0-d tensor,
// as PyTorch saves num_batches_tracked) and the values in C order, in F32 or
// I64 according to DType.
type Tensor struct {
	Name  string
	Shape []int64
	DType DType
	F32   []float32
	I64   []int64
}

// Numel is the number of elements the shape holds (1 for a 0-d tensor).
func (t Tensor) Numel() int64 { return Numel(t.Shape) }

// Numel is the number of elements of a shape (1 for a 0-d shape).
func Numel(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	return n
}

// Check reports an entry whose values do not fill its shape.
func (t Tensor) Check() error {
	var have int
	switch t.DType {
	case Float32:
		have = len(t.F32)
	case Int64:
		have = len(t.I64)
	default:
		return fmt.Errorf("statedict: %s: unknown dtype %v", t.Name, t.DType)
	}
	for _, d := range t.Shape {
		if d < 0 {
			return fmt.Errorf("statedict: %s: negative dimension in shape %v", t.Name, t.Shape)
		}
	}
	if n := t.Numel(); int64(have) != n {
		return fmt.Errorf("statedict: %s: shape %v needs %d values, has %d", t.Name, t.Shape, n, have)
	}
	return nil
}

// Float32 returns the values as float32, converting integers (exact up to
// 2^24, far beyond any counter dira keeps).
func (t Tensor) Float32() []float32 {
	if t.DType == Float32 {
		return t.F32
	}
	out := make([]float32, len(t.I64))
	for i, v := range t.I64 {
		out[i] = float32(v)
	}
	return out
}

// StateDict is an ordered state_dict: PyTorch's module order is kept, so a
// written file lists keys as torch.save of the same module would.
type StateDict []Tensor

// Names lists the keys in order.
func (sd StateDict) Names() []string {
	out := make([]string, len(sd))
	for i, t := range sd {
		out[i] = t.Name
	}
	return out
}

// Get returns the entry named name.
func (sd StateDict) Get(name string) (Tensor, bool) {
	for _, t := range sd {
		if t.Name == name {
			return t, true
		}
	}
	return Tensor{}, false
}

// Prefixed returns the entries whose names start with prefix, with the
// prefix removed (values shared, not copied).
func (sd StateDict) Prefixed(prefix string) StateDict {
	var out StateDict
	for _, t := range sd {
		if rest, ok := strings.CutPrefix(t.Name, prefix); ok {
			t.Name = rest
			out = append(out, t)
		}
	}
	return out
}

// Rename maps every key through rename (keep false drops the entry) and
// fails when two keys become one. Values are shared, not copied.
func (sd StateDict) Rename(rename func(name string) (to string, keep bool)) (StateDict, error) {
	out := make(StateDict, 0, len(sd))
	from := map[string]string{}
	for _, t := range sd {
		to, keep := rename(t.Name)
		if !keep {
			continue
		}
		if prev, dup := from[to]; dup {
			return nil, fmt.Errorf("statedict: keys %q and %q both become %q", prev, t.Name, to)
		}
		from[to] = t.Name
		t.Name = to
		out = append(out, t)
	}
	return out, nil
}

// ErrDoesNotFit reports tensors that do not fit the network they are loaded
// into; the error lists the keys.
var ErrDoesNotFit = errors.New("does not fit the configured networks")

// Target is what a state dict is loaded into: a network's entries by name
// (model.Params implements it).
type Target interface {
	// Names lists the target's entries in order.
	Names() []string
	// ShapeOf is an entry's shape; false when there is no such entry.
	ShapeOf(name string) ([]int64, bool)
	// Assign copies t's values into the named entry (shapes already checked).
	Assign(name string, t Tensor) error
}

// Assignment sends one tensor to one target entry.
type Assignment struct {
	To string
	T  Tensor
}

// Identity assigns every entry of sd to the target entry of the same name.
func Identity(sd StateDict) []Assignment {
	out := make([]Assignment, len(sd))
	for i, t := range sd {
		out[i] = Assignment{To: t.Name, T: t}
	}
	return out
}

// Load is the strict loader. It first checks every assignment (the target
// entry exists, the shapes are equal, no entry is given twice, the values
// fill the shape) and that every target entry for which required returns
// true is given (nil: all are required); only then does it copy. On a problem
// nothing is copied and the error, wrapping ErrDoesNotFit, lists every
// problem (the first 20, the file's own in file order, then the missing ones
// in the target's order). It returns the target entries it filled.
func Load(dst Target, as []Assignment, required func(name string) bool) (map[string]bool, error) {
	var problems []string
	from := map[string]string{}
	for _, a := range as {
		shape, ok := dst.ShapeOf(a.To)
		switch {
		case !ok:
			problems = append(problems, "unexpected key "+a.T.Name)
		case from[a.To] != "":
			problems = append(problems, fmt.Sprintf("keys %s and %s both go to %s", from[a.To], a.T.Name, a.To))
		case !sameShape(shape, a.T.Shape):
			problems = append(problems, fmt.Sprintf("key %s: shape %v, the network's %s is %v", a.T.Name, a.T.Shape, a.To, shape))
		default:
			if err := a.T.Check(); err != nil {
				problems = append(problems, err.Error())
			}
		}
		from[a.To] = a.T.Name
	}
	for _, n := range dst.Names() {
		if (required == nil || required(n)) && from[n] == "" {
			problems = append(problems, "missing key "+n)
		}
	}
	if len(problems) > 0 {
		n := len(problems) // in file order, then the missing keys in network order

		if n > 20 {
			problems = append(problems[:20], fmt.Sprintf("and %d more", n-20))
		}
		return nil, fmt.Errorf("%w: %s", ErrDoesNotFit, strings.Join(problems, "; "))
	}
	loaded := map[string]bool{}
	for _, a := range as {
		if err := dst.Assign(a.To, a.T); err != nil {
			return nil, fmt.Errorf("key %s: %w", a.T.Name, err)
		}
		loaded[a.To] = true
	}
	return loaded, nil
}

// sameShape compares shapes, taking a 0-d tensor and a one-element vector as
// the same (gotch and older files give [1] where PyTorch has []).
func sameShape(want, got []int64) bool {
	if slices.Equal(want, got) {
		return true
	}
	scalar := func(s []int64) bool { return len(s) == 0 || (len(s) == 1 && s[0] == 1) }
	return scalar(want) && scalar(got)
}
