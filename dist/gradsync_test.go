package dist

import (
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sugarme/gotch/ts"

	"dira/internal/torch"
)

// tinyNet is a two-layer perceptron plus a convolution: parameters of five
// shapes, enough for several gradient buckets at a small bucket size.
type tinyNet struct{ w1, b1, w2, b2, k *ts.Tensor }

func (n tinyNet) params() []*ts.Tensor { return []*ts.Tensor{n.w1, n.b1, n.w2, n.b2, n.k} }

// randn returns n normal values scaled by std from a seeded generator.
func randn(rng *rand.Rand, n int, std float64) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(rng.NormFloat64() * std)
	}
	return out
}

func newTinyNet(t *testing.T, seed uint64) tinyNet {
	rng := rand.New(rand.NewPCG(seed, 1))
	param := func(std float64, shape ...int64) *ts.Tensor {
		n := int64(1)
		for _, d := range shape {
			n *= d
		}
		p, err := tensor(t, randn(rng, int(n), std), shape...).SetRequiresGrad(true, true)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	return tinyNet{w1: param(0.3, 16, 8), b1: param(0.1, 16), w2: param(0.3, 4, 16), b2: param(0.1, 4), k: param(0.3, 4, 3, 3, 3)}
}

// batch is one rank's input at one step.
type batch struct{ x, img *ts.Tensor }

func newBatch(t *testing.T, rank, step int) batch {
	rng := rand.New(rand.NewPCG(uint64(100+10*rank+step), 2))
	return batch{x: tensor(t, randn(rng, 4*8, 1), 4, 8), img: tensor(t, randn(rng, 2*3*6*6, 1), 2, 3, 6, 6)}
}

func (b batch) drop() { torch.Drop(b.x, b.img) }

// backward computes the loss and its gradients.
func (n tinyNet) backward(b batch) error {
	loss, err := n.loss(b)
	if err != nil {
		return err
	}
	defer loss.MustDrop()
	return loss.Backward()
}

// loss is mean((relu(x w1ᵀ + b1) w2ᵀ + b2)²) + mean(conv(img, k)²)/2.
func (n tinyNet) loss(b batch) (loss *ts.Tensor, err error) {
	defer torch.Catch("tiny net", &err)
	w1t := torch.Must(n.w1.T(false))
	h := torch.Must(b.x.Matmul(w1t, false))
	w1t.MustDrop()
	h = torch.Must(h.Add(n.b1, true))
	h = torch.Must(h.Relu(true))
	w2t := torch.Must(n.w2.T(false))
	y := torch.Must(h.Matmul(w2t, true))
	w2t.MustDrop()
	y = torch.Must(y.Add(n.b2, true))
	y = torch.Must(y.Square(true))
	mlp := torch.Must(y.Mean(y.DType(), true))
	c := torch.Must(ts.Conv2d(b.img, n.k, ts.None, []int64{1, 1}, []int64{1, 1}, []int64{1, 1}, 1))
	c = torch.Must(c.Square(true))
	conv := torch.Must(c.Mean(c.DType(), true))
	half := ts.FloatScalar(0.5)
	conv = torch.Must(conv.MulScalar(half, true))
	half.MustDrop()
	loss = torch.Must(mlp.Add(conv, true))
	conv.MustDrop()
	return loss, nil
}

func zeroGrads(t *testing.T, params []*ts.Tensor) {
	t.Helper()
	for _, p := range params {
		g, err := p.Grad(false)
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := g.Defined(); err != nil {
			t.Fatal(err)
		} else if ok {
			if err := torch.InPlace(g, g.Zero_); err != nil {
				t.Fatal(err)
			}
		}
		g.MustDrop()
	}
}

// grads copies every parameter's gradient.
func grads(t *testing.T, params []*ts.Tensor) [][]float32 {
	t.Helper()
	var out [][]float32
	for _, p := range params {
		g, err := p.Grad(false)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, float32s(t, g))
		g.MustDrop()
	}
	return out
}

// maxDiff is the largest |got - want| over all gradients.
func maxDiff(got [][]float32, want [][]float64) float64 {
	var worst float64
	for i := range got {
		for j := range got[i] {
			worst = math.Max(worst, math.Abs(float64(got[i][j])-want[i][j]))
		}
	}
	return worst
}

// TestGradSync: 2 ranks start from different weights, broadcast rank 0's,
// and train 3 SGD steps on different data. At each step the gradients after
// GradSync (bucketed, overlapped with backward) and after AllreduceGrads (one
// flat all-reduce) equal the average of the gradients each rank's data gives
// on its own, computed here without communication, within 1e-6.
func TestGradSync(t *testing.T) {
	w, ok := asWorker(t)
	if !ok {
		runRanks(t, passes, passes)
		return
	}
	g := w.join(t, testTimeout)
	defer g.Close()
	net := newTinyNet(t, uint64(1+w.rank))
	params := net.params()
	defer torch.Drop(params...)
	if err := g.Broadcast(params, 0); err != nil {
		t.Fatal(err)
	}
	const bucketBytes = 256 // several buckets once re-bucketed
	s, err := NewGradSync(g, params, bucketBytes)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n := s.Buckets(); n != 1 {
		t.Errorf("%d buckets before the first step, want 1 (DDP 1.13's first step)", n)
	}
	const tol = 1e-6
	var worstSync, worstFlat float64
	for step := range 3 {
		// The reference: each rank's gradients, computed locally, averaged.
		want := make([][]float64, len(params))
		for r := range g.Size() {
			b := newBatch(t, r, step)
			zeroGrads(t, params)
			if err := net.backward(b); err != nil {
				t.Fatal(err)
			}
			b.drop()
			for i, gr := range grads(t, params) {
				if want[i] == nil {
					want[i] = make([]float64, len(gr))
				}
				for j, v := range gr {
					want[i][j] += float64(v) / float64(g.Size())
				}
			}
		}

		b := newBatch(t, w.rank, step)
		zeroGrads(t, params)
		if step == 1 {
			// The one-call form.
			loss, err := net.loss(b)
			if err != nil {
				t.Fatal(err)
			}
			err = s.Backward(loss)
			loss.MustDrop()
			if err != nil {
				t.Fatal(err)
			}
		} else {
			if err := s.Prepare(); err != nil {
				t.Fatal(err)
			}
			if err := net.backward(b); err != nil {
				t.Fatal(err)
			}
			if err := s.Wait(); err != nil {
				t.Fatal(err)
			}
		}
		d := maxDiff(grads(t, params), want)
		worstSync = math.Max(worstSync, d)
		if d > tol {
			t.Errorf("step %d: GradSync gradients differ from the average by %.3g", step, d)
		}
		if step > 0 && s.Buckets() < 2 {
			t.Errorf("step %d: %d bucket(s) at %d bytes per bucket, want several", step, s.Buckets(), bucketBytes)
		}

		zeroGrads(t, params)
		if err := net.backward(b); err != nil {
			t.Fatal(err)
		}
		if err := g.AllreduceGrads(params); err != nil {
			t.Fatal(err)
		}
		d = maxDiff(grads(t, params), want)
		worstFlat = math.Max(worstFlat, d)
		if d > tol {
			t.Errorf("step %d: AllreduceGrads gradients differ from the average by %.3g", step, d)
		}
		b.drop()
		if err := torch.SGDStep(params, make([]*ts.Tensor, len(params)), 0.1, 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("max |gradient - average of the ranks' own gradients| over 3 steps: GradSync %.3g, AllreduceGrads %.3g (tolerance %g); %d buckets after re-bucketing",
		worstSync, worstFlat, tol, s.Buckets())
}

// TestGradSyncUnusedParameter: a parameter that gets no gradient makes Wait
// fail, naming its index and shape, on every rank.
func TestGradSyncUnusedParameter(t *testing.T) {
	w, ok := asWorker(t)
	if !ok {
		runRanks(t, passes, passes)
		return
	}
	g := w.join(t, testTimeout)
	defer g.Close()
	net := newTinyNet(t, 1)
	unused, err := tensor(t, []float32{1, 2, 3}).SetRequiresGrad(true, true)
	if err != nil {
		t.Fatal(err)
	}
	params := append(net.params(), unused)
	defer torch.Drop(params...)
	s, err := NewGradSync(g, params, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Wait(); err == nil || !strings.Contains(err.Error(), "Wait without Prepare") {
		t.Errorf("Wait before Prepare: error %v", err)
	}
	if err := s.Prepare(); err != nil {
		t.Fatal(err)
	}
	b := newBatch(t, w.rank, 0)
	defer b.drop()
	if err := net.backward(b); err != nil {
		t.Fatal(err)
	}
	err = s.Wait()
	t.Logf("unused parameter: %v", err)
	if err == nil || !strings.Contains(err.Error(), "1 of 6 parameters got no gradient") || !strings.Contains(err.Error(), "5 [3]") {
		t.Errorf("error %v, want one naming parameter 5 of shape [3]", err)
	}
}

// TestGradSyncShapeMismatch: ranks whose parameters differ are refused when
// the GradSync is made, on every rank.
func TestGradSyncShapeMismatch(t *testing.T) {
	w, ok := asWorker(t)
	if !ok {
		runRanks(t, passes, passes)
		return
	}
	g := w.join(t, testTimeout)
	defer g.Close()
	p, err := tensor(t, make([]float32, 2+w.rank)).SetRequiresGrad(true, true)
	if err != nil {
		t.Fatal(err)
	}
	defer p.MustDrop()
	_, err = NewGradSync(g, []*ts.Tensor{p}, 0)
	t.Logf("mismatched parameters: %v", err)
	if err == nil || !strings.Contains(err.Error(), "grad sync setup") {
		t.Errorf("error %v, want a grad sync setup error", err)
	}
}

// TestGradSyncKilledPeer: rank 1 dies of SIGKILL between Prepare and its
// backward at the second step; rank 0's backward, whose buckets then cannot be
// reduced, returns an error naming the lost peer within the timeout instead of
// hanging or aborting, and the GradSync and the group close.
func TestGradSyncKilledPeer(t *testing.T) {
	w, ok := asWorker(t)
	if !ok {
		runRanks(t, passes, killed)
		return
	}
	const timeout = time.Minute
	g := w.join(t, timeout)
	net := newTinyNet(t, 1)
	params := net.params()
	defer torch.Drop(params...)
	s, err := NewGradSync(g, params, 256)
	if err != nil {
		t.Fatal(err)
	}
	for step := range 2 {
		b := newBatch(t, w.rank, step)
		loss, err := net.loss(b)
		if err != nil {
			t.Fatal(err)
		}
		if step == 1 && w.rank == 1 {
			// Both ranks re-bucket in Prepare at this step; rank 1 dies
			// right after it.
			if err := s.Prepare(); err != nil {
				t.Fatal(err)
			}
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			time.Sleep(time.Minute)
			t.Fatal("not killed")
		}
		start := time.Now()
		err = s.Backward(loss)
		took := time.Since(start)
		loss.MustDrop()
		b.drop()
		if step == 0 {
			if err != nil {
				t.Fatal(err)
			}
			continue
		}
		t.Logf("backward after the peer died: %v after %v", err, took)
		if err == nil || !errors.Is(err, ErrPeerLost) || !strings.Contains(err.Error(), "grad sync backward") ||
			!strings.Contains(err.Error(), "rank 1 is lost") {
			t.Errorf("error %v, want a grad sync backward error marked ErrPeerLost naming rank 1", err)
		}
		if took > timeout/2 {
			t.Errorf("the error took %v with a timeout of %v", took, timeout)
		}
	}
	start := time.Now()
	s.Close()
	g.Close()
	t.Logf("close after the peer died: %v", time.Since(start))
}

// TestWorldOfOne: a group of one process (torchrun --nproc_per_node 1) works:
// collectives leave values as they are, and GradSync leaves the gradients of
// the only rank.
func TestWorldOfOne(t *testing.T) {
	if _, ok := asWorker(t); ok {
		t.Fatal("not a multi-process test")
	}
	g, err := New(Config{Addr: "127.0.0.1", Port: freePort(t), WorldSize: 1, ServeStore: true, Timeout: testTimeout})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	x := tensor(t, []float32{1.5, -2}, 1, 2)
	defer x.MustDrop()
	if err := g.Allreduce(x, Sum); err != nil {
		t.Fatal(err)
	}
	all, err := g.Allgather(x)
	if err != nil {
		t.Fatal(err)
	}
	defer all.MustDrop()
	if err := g.AllreduceMean([]*ts.Tensor{x}); err != nil {
		t.Fatal(err)
	}
	for _, y := range []*ts.Tensor{x, all} {
		if got := float32s(t, y); got[0] != 1.5 || got[1] != -2 {
			t.Errorf("values %v after collectives in a world of one, want [1.5 -2]", got)
		}
	}
	net := newTinyNet(t, 3)
	params := net.params()
	defer torch.Drop(params...)
	b := newBatch(t, 0, 0)
	defer b.drop()
	if err := net.backward(b); err != nil {
		t.Fatal(err)
	}
	local := grads(t, params)
	s, err := NewGradSync(g, params, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	zeroGrads(t, params)
	loss, err := net.loss(b)
	if err != nil {
		t.Fatal(err)
	}
	defer loss.MustDrop()
	if err := s.Backward(loss); err != nil {
		t.Fatal(err)
	}
	want := make([][]float64, len(local))
	for i, gr := range local {
		for _, v := range gr {
			want[i] = append(want[i], float64(v))
		}
	}
	if d := maxDiff(grads(t, params), want); d != 0 {
		t.Errorf("GradSync in a world of one changed the gradients by %.3g", d)
	}
}
