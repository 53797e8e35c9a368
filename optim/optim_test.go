package optim

import (
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/sugarme/gotch/ts"

	"dira/internal/npy"
	"dira/internal/torch"
	"dira/internal/torch/torchtest"
)

func TestMain(m *testing.M) {
	torch.SetThreads(2)
	os.Exit(m.Run())
}

func readNPZ(t *testing.T, path string) map[string]npy.Array {
	t.Helper()
	m, err := npy.ReadNPZFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestOptimizersMatchPyTorch: three steps of SGD (momentum, weight decay) and
// Adam equal torch.optim's within 1e-6.
func TestOptimizersMatchPyTorch(t *testing.T) {
	torchtest.Pin(t)
	out := filepath.Join(t.TempDir(), "optim.npz")
	if b, err := exec.Command("/usr/bin/python3", "testdata/optim_reference.py", out).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	ref := readNPZ(t, out)
	grads := ref["grads"].Float32()
	for _, name := range []string{"sgd", "sgd_nomomentum", "adam"} {
		p := ts.MustOfSlice(ref["p0"].Float32()).MustView([]int64{3, 4}, true).MustSetRequiresGrad(true, true)
		var step func() error
		switch name {
		case "sgd":
			o := &SGD{Params: []*ts.Tensor{p}, LR: 0.1, Momentum: 0.9, WeightDecay: 1e-4}
			step = o.Step
		case "sgd_nomomentum":
			o := &SGD{Params: []*ts.Tensor{p}, LR: 0.1}
			step = o.Step
		case "adam":
			o := &Adam{Params: []*ts.Tensor{p}, LR: 0.01, Beta1: 0.5, Beta2: 0.999, Eps: 1e-8}
			step = o.Step
		}
		for s := 0; s < 3; s++ {
			ZeroGrad([]*ts.Tensor{p})
			g := ts.MustOfSlice(grads[s*12:(s+1)*12]).MustView([]int64{3, 4}, true)
			loss := p.MustMul(g, false).MustSum(p.DType(), true)
			loss.MustBackward()
			torch.Drop(loss, g)
			if err := step(); err != nil {
				t.Fatal(err)
			}
			want := ref[name+"_"+string(rune('0'+s))].Float32()
			got := torch.Float32s(p)
			var worst float64
			for i := range got {
				worst = math.Max(worst, math.Abs(float64(got[i]-want[i])))
			}
			if worst > 1e-6 {
				t.Fatalf("%s step %d: max |diff| %.3g > 1e-6", name, s, worst)
			}
			if s == 2 {
				t.Logf("%s after 3 steps: max |diff| vs torch.optim = %.3g", name, worst)
			}
		}
		p.MustDrop()
	}
}

func TestLRSchedules(t *testing.T) {
	torchtest.Pin(t)
	if got := LR(0.03, "cosine", nil, 0, 10); got != 0.03 {
		t.Errorf("cosine epoch 0 = %v", got)
	}
	if got := LR(0.03, "cosine", nil, 5, 10); math.Abs(got-0.015) > 1e-12 {
		t.Errorf("cosine half-way = %v", got)
	}
	if got := LR(0.03, "step", []int{120, 160}, 130, 200); math.Abs(got-0.003) > 1e-12 {
		t.Errorf("step after one milestone = %v", got)
	}
	if got := LR(0.03, "constant", nil, 9, 10); got != 0.03 {
		t.Errorf("constant = %v", got)
	}
}
