package torch

import (
	"errors"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// TestUnpinnedTensorWorkPanics: tensor work on a goroutine that did not pin
// its thread fails on the first op, every time, not once in a thousand runs.
func TestUnpinnedTensorWorkPanics(t *testing.T) {
	got := make(chan any)
	go func() {
		defer func() { got <- recover() }()
		Zeros([]int64{2}, gotch.Float)
	}()
	if p := <-got; p != ErrUnpinned {
		t.Fatalf("unpinned op: recovered %v, want ErrUnpinned", p)
	}
	if Pinned() {
		t.Fatal("the test goroutine reports a pin it never made")
	}
	unpin := Pin()
	if !Pinned() {
		t.Fatal("Pin did not register the thread")
	}
	inner := Pin() // nested pins keep the registration until the outer one ends
	inner()
	if !Pinned() {
		t.Fatal("ending a nested pin dropped the outer one")
	}
	unpin()
	if Pinned() {
		t.Fatal("the registration outlived Pin's unpin")
	}
}

// TestDoReturnsLibtorchErrors: a libtorch failure inside Do comes back as an
// *Error holding the first line of libtorch's message, and other panics (bugs)
// pass through.
func TestDoReturnsLibtorchErrors(t *testing.T) {
	err := Do(func() error {
		a := Zeros([]int64{2, 3}, gotch.Float)
		b := Zeros([]int64{4, 5}, gotch.Float)
		defer Drop(a, b)
		Must(a.Mm(b, false))
		return nil
	})
	var te *Error
	if !errors.As(err, &te) {
		t.Fatalf("Do returned %v (%T), want a *torch.Error", err, err)
	}
	if strings.Contains(te.Msg, "\n") || !strings.Contains(te.Msg, "cannot be multiplied") {
		t.Errorf("libtorch message %q: want the one-line shape error", te.Msg)
	}
	defer func() {
		if p := recover(); p != "a bug" {
			t.Errorf("recovered %v, want the bug's own panic value", p)
		}
	}()
	Do(func() error { panic("a bug") })
}

func TestTensorHelpers(t *testing.T) {
	t.Cleanup(Pin())
	x := FromFloat32([]float32{1, 2, 3, 4, 5, 6}, []int64{2, 3})
	defer Drop(x)
	if got := Size(x); len(got) != 2 || got[0] != 2 || got[1] != 3 {
		t.Fatalf("Size = %v", got)
	}
	tr := Must(x.T(false)) // a strided view: copies must come out in C order
	defer Drop(tr)
	if got := Float32s(tr); got[1] != 4 || got[2] != 2 {
		t.Errorf("Float32s of the transpose = %v, want [1 4 2 5 3 6]", got)
	}
	n := FromInt64([]int64{7}, []int64{})
	defer Drop(n)
	if Numel(n) != 1 || len(Size(n)) != 0 || Int64s(n)[0] != 7 || TypeOf(n) != Int64 {
		t.Errorf("0-d int64: size %v, values %v, type %v", Size(n), Int64s(n), TypeOf(n))
	}
	dst := Zeros([]int64{2, 3}, gotch.Float)
	defer Drop(dst)
	CopyInto(dst, x)
	if Item(Must(dst.Sum(gotch.Float, false))) != 21 {
		t.Errorf("CopyInto did not copy")
	}
	var err error
	func() {
		defer Catch("wrong count", &err)
		FromFloat32([]float32{1, 2}, []int64{3})
	}()
	if err == nil || !strings.Contains(err.Error(), "wrong count: libtorch: 2 values for shape [3]") {
		t.Errorf("FromFloat32 with the wrong count: %v", err)
	}
	_ = ts.None
}
