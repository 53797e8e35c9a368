package torch

import (
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

func TestSetThreads(t *testing.T) {
	t.Cleanup(Pin())
	if err := SetThreads(2); err != nil {
		t.Fatal(err)
	}
	if got := Threads(); got != 2 {
		t.Fatalf("Threads() = %d after SetThreads(2)", got)
	}
	if err := SetThreads(0); err == nil {
		t.Fatal("SetThreads(0) gave no error")
	}
}

func TestSeedIsDeterministic(t *testing.T) {
	t.Cleanup(Pin())
	draw := func() []float64 {
		Seed(42)
		x := ts.MustRandn([]int64{8}, gotch.Float, gotch.CPU)
		defer x.MustDrop()
		return x.Float64Values()
	}
	a, b := draw(), draw()
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("draw %d differs after reseeding: %v vs %v", i, a[i], b[i])
		}
	}
}

// TestConvForwardBackward proves gotch runs a convolution forward and backward
// through Debian's libtorch 1.13 with the compatibility header.
// Input ones [1,1,3,3], weight ones [1,1,2,2]: every output is 4; d(sum)/dW = 4
// (each weight sees 4 input ones); d(sum)/dx counts the windows covering each pixel.
func TestConvForwardBackward(t *testing.T) {
	t.Cleanup(Pin())
	x := ts.MustOnes([]int64{1, 1, 3, 3}, gotch.Float, gotch.CPU).MustSetRequiresGrad(true, true)
	w := ts.MustOnes([]int64{1, 1, 2, 2}, gotch.Float, gotch.CPU).MustSetRequiresGrad(true, true)
	defer x.MustDrop()
	defer w.MustDrop()
	y := ts.MustConv2d(x, w, ts.NewTensor(), []int64{1, 1}, []int64{0, 0}, []int64{1, 1}, 1)
	defer y.MustDrop()
	if got := y.MustSize(); len(got) != 4 || got[2] != 2 || got[3] != 2 {
		t.Fatalf("output shape %v, want [1 1 2 2]", got)
	}
	for i, v := range y.Float64Values() {
		if v != 4 {
			t.Fatalf("output[%d] = %v, want 4", i, v)
		}
	}
	loss := y.MustSum(gotch.Float, false)
	defer loss.MustDrop()
	loss.MustBackward()
	gw := w.MustGrad(false)
	defer gw.MustDrop()
	for i, v := range gw.Float64Values() {
		if v != 4 {
			t.Fatalf("dL/dw[%d] = %v, want 4", i, v)
		}
	}
	gx := x.MustGrad(false)
	defer gx.MustDrop()
	want := []float64{1, 2, 1, 2, 4, 2, 1, 2, 1}
	for i, v := range gx.Float64Values() {
		if v != want[i] {
			t.Fatalf("dL/dx = %v, want %v", gx.Float64Values(), want)
		}
	}
}

func TestVersion(t *testing.T) {
	t.Cleanup(Pin())
	if v := Version(); len(v) < 4 || v[:4] != "1.13" {
		t.Fatalf("Version() = %q, want 1.13.x", v)
	}
}

func TestLeakyReLU(t *testing.T) {
	t.Cleanup(Pin())
	x := ts.MustOfSlice([]float32{-2, -0.5, 0, 3})
	defer x.MustDrop()
	y, err := LeakyReLU(x, 0.2)
	if err != nil {
		t.Fatal(err)
	}
	defer y.MustDrop()
	want := []float64{-0.4, -0.1, 0, 3}
	for i, v := range y.Float64Values() {
		if d := v - want[i]; d > 1e-7 || d < -1e-7 {
			t.Fatalf("leaky_relu = %v, want %v", y.Float64Values(), want)
		}
	}
}

func TestNoGradRestoresRecording(t *testing.T) {
	t.Cleanup(Pin())
	if !SetGradEnabled(true) {
		t.Log("grad mode was off at start")
	}
	NoGrad(func() {
		if SetGradEnabled(false) {
			t.Fatal("recording on inside NoGrad")
		}
	})
	if !SetGradEnabled(true) {
		t.Fatal("NoGrad did not restore recording")
	}
	x := ts.MustOnes([]int64{2}, gotch.Float, gotch.CPU).MustSetRequiresGrad(true, true)
	defer x.MustDrop()
	NoGrad(func() {})
	y := x.MustMul(x, false)
	defer y.MustDrop()
	if !y.MustRequiresGrad() {
		t.Fatal("ops after NoGrad are not recorded")
	}
}
