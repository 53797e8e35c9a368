package dist

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sugarme/gotch/ts"
)

const testTimeout = 30 * time.Second

// TestAllreduce: sum in place of float32 and float64 tensors, max of int64,
// over 2 processes; results exact.
func TestAllreduce(t *testing.T) {
	w, ok := asWorker(t)
	if !ok {
		runRanks(t, passes, passes)
		return
	}
	g := w.join(t, testTimeout)
	defer g.Close()
	if g.Rank() != w.rank || g.Size() != 2 {
		t.Fatalf("rank %d of %d, want %d of 2", g.Rank(), g.Size(), w.rank)
	}
	// value(r, i) on rank r; the sum over ranks is exact in float32.
	value := func(r, i int) float32 { return float32(i+1)*float32(r+1) + 0.25 }
	vals := make([]float32, 6)
	for i := range vals {
		vals[i] = value(w.rank, i)
	}
	x := tensor(t, vals, 2, 3)
	defer x.MustDrop()
	handle := x.Ctensor()
	if err := g.Allreduce(x, Sum); err != nil {
		t.Fatal(err)
	}
	if x.Ctensor() != handle {
		t.Fatal("allreduce replaced the tensor handle instead of writing in place")
	}
	for i, got := range float32s(t, x) {
		if want := value(0, i) + value(1, i); got != want {
			t.Errorf("sum[%d] = %v, want %v", i, got, want)
		}
	}

	d := ofSlice(t, []float64{1.5 * float64(w.rank+1), -2})
	defer d.MustDrop()
	if err := g.Allreduce(d, Sum); err != nil {
		t.Fatal(err)
	}
	if got := float64s(t, d); !slices.Equal(got, []float64{4.5, -4}) {
		t.Errorf("float64 sum = %v, want [4.5 -4]", got)
	}

	n := ofSlice(t, []int64{int64(10 * w.rank), int64(7 - w.rank)})
	defer n.MustDrop()
	if err := g.Allreduce(n, Max); err != nil {
		t.Fatal(err)
	}
	if got := int64s(t, n); !slices.Equal(got, []int64{10, 7}) {
		t.Errorf("int64 max = %v, want [10 7]", got)
	}
}

// TestAllreduceMean: several tensors of different shapes averaged in one
// coalesced collective; tensors of mixed dtypes or of integers are refused.
func TestAllreduceMean(t *testing.T) {
	w, ok := asWorker(t)
	if !ok {
		runRanks(t, passes, passes)
		return
	}
	g := w.join(t, testTimeout)
	defer g.Close()
	shapes := [][]int64{{3}, {2, 5}, {4, 1, 3}}
	var list []*ts.Tensor
	for k, s := range shapes {
		n := s[0]
		for _, d := range s[1:] {
			n *= d
		}
		vals := make([]float32, n)
		for i := range vals {
			vals[i] = float32(100*w.rank) + float32(i)*0.5 + float32(k)
		}
		x := tensor(t, vals, s...)
		defer x.MustDrop()
		list = append(list, x)
	}
	if err := g.AllreduceMean(list); err != nil {
		t.Fatal(err)
	}
	for k, x := range list {
		if got := shape(t, x); !slices.Equal(got, shapes[k]) {
			t.Errorf("tensor %d has shape %v after averaging, want %v", k, got, shapes[k])
		}
		for i, got := range float32s(t, x) {
			if want := 50 + float32(i)*0.5 + float32(k); got != want {
				t.Errorf("mean of tensor %d [%d] = %v, want %v", k, i, got, want)
			}
		}
	}

	d := ofSlice(t, []float64{1})
	defer d.MustDrop()
	err := g.AllreduceMean([]*ts.Tensor{list[0], d})
	if err == nil || !strings.Contains(err.Error(), "allreduce mean") || !strings.Contains(err.Error(), "dtype") {
		t.Errorf("mixed dtypes: error %v, want one naming allreduce mean and dtype", err)
	}
	n := ofSlice(t, []int64{1})
	defer n.MustDrop()
	if err := g.AllreduceMean([]*ts.Tensor{n}); err == nil || !strings.Contains(err.Error(), "floating-point") {
		t.Errorf("int64 average: error %v, want one asking for floating-point tensors", err)
	}
	// The group still works after the refused calls (they sent nothing).
	if err := g.Barrier(); err != nil {
		t.Fatal(err)
	}
}

// TestAllgather: every rank's rows concatenated on dim 0 in rank order, for
// float32 [2,3], int64 [3] and a 0-d tensor.
func TestAllgather(t *testing.T) {
	w, ok := asWorker(t)
	if !ok {
		runRanks(t, passes, passes)
		return
	}
	g := w.join(t, testTimeout)
	defer g.Close()
	vals := make([]float32, 6)
	for i := range vals {
		vals[i] = float32(10*w.rank+i) + 0.125
	}
	x := tensor(t, vals, 2, 3)
	defer x.MustDrop()
	all, err := g.Allgather(x)
	if err != nil {
		t.Fatal(err)
	}
	defer all.MustDrop()
	if got := shape(t, all); !slices.Equal(got, []int64{4, 3}) {
		t.Fatalf("gathered shape %v, want [4 3]", got)
	}
	for j, got := range float32s(t, all) {
		r, i := j/6, j%6
		if want := float32(10*r+i) + 0.125; got != want {
			t.Errorf("gathered[%d] = %v, want %v (rank %d element %d)", j, got, want, r, i)
		}
	}

	n := ofSlice(t, []int64{int64(w.rank), int64(w.rank) + 100, -1})
	defer n.MustDrop()
	ng, err := g.Allgather(n)
	if err != nil {
		t.Fatal(err)
	}
	defer ng.MustDrop()
	if got := int64s(t, ng); !slices.Equal(got, []int64{0, 100, -1, 1, 101, -1}) {
		t.Errorf("gathered int64 = %v", got)
	}

	s, err := ts.OfSlice([]float32{float32(w.rank) + 0.5})
	if err != nil {
		t.Fatal(err)
	}
	s0, err := s.Sum(s.DType(), true) // 0-d (gotch's View panics on an empty shape)
	if err != nil {
		t.Fatal(err)
	}
	defer s0.MustDrop()
	sg, err := g.Allgather(s0)
	if err != nil {
		t.Fatal(err)
	}
	defer sg.MustDrop()
	if got := float32s(t, sg); !slices.Equal(got, []float32{0.5, 1.5}) {
		t.Errorf("gathered scalars = %v, want [0.5 1.5]", got)
	}
}

// TestBroadcast: a parameter (a leaf that requires grad), an int64
// permutation, a float64 tensor and a second float32 tensor take the root's
// values: grouped by dtype in one bucket each from rank 0, then in 16-byte
// buckets (four collectives) from rank 1.
func TestBroadcast(t *testing.T) {
	w, ok := asWorker(t)
	if !ok {
		runRanks(t, passes, passes)
		return
	}
	g := w.join(t, testTimeout)
	defer g.Close()
	// tensors returns the list as rank r holds it before a broadcast.
	tensors := func(r int) []*ts.Tensor {
		v := float32(r)
		p, err := tensor(t, []float32{v, v + 1, v + 2, v + 3}, 2, 2).SetRequiresGrad(true, true)
		if err != nil {
			t.Fatal(err)
		}
		return []*ts.Tensor{p, ofSlice(t, []int64{int64(r), 4, 3, 2, 1}), ofSlice(t, []float64{float64(r) * 0.1, 2, 3}), tensor(t, []float32{-v, 0.5})}
	}
	for _, tc := range []struct {
		root   int
		bucket int64
	}{{0, BroadcastBucketBytes}, {1, 16}} {
		list := tensors(w.rank)
		if err := g.BroadcastBuckets(list, tc.root, tc.bucket); err != nil {
			t.Fatal(err)
		}
		want := tensors(tc.root)
		if got, exp := float32s(t, list[0]), float32s(t, want[0]); !slices.Equal(got, exp) {
			t.Errorf("root %d: parameter = %v, want %v", tc.root, got, exp)
		}
		if got, exp := int64s(t, list[1]), int64s(t, want[1]); !slices.Equal(got, exp) {
			t.Errorf("root %d: permutation = %v, want %v", tc.root, got, exp)
		}
		if got, exp := float64s(t, list[2]), float64s(t, want[2]); !slices.Equal(got, exp) {
			t.Errorf("root %d: float64 = %v, want %v", tc.root, got, exp)
		}
		if got, exp := float32s(t, list[3]), float32s(t, want[3]); !slices.Equal(got, exp) {
			t.Errorf("root %d: second float32 = %v, want %v", tc.root, got, exp)
		}
		if rg, err := list[0].RequiresGrad(); err != nil || !rg {
			t.Errorf("root %d: the parameter lost requires_grad (%v)", tc.root, err)
		}
		for _, x := range append(list, want...) {
			x.MustDrop()
		}
	}
}

// TestReduceSumAndBarrier: the validation loss sums reach rank 0; a barrier
// passes; a root outside the group is refused before anything is sent.
func TestReduceSumAndBarrier(t *testing.T) {
	w, ok := asWorker(t)
	if !ok {
		runRanks(t, passes, passes)
		return
	}
	g := w.join(t, testTimeout)
	defer g.Close()
	sums := ofSlice(t, []float64{0.25 + float64(w.rank), 10})
	defer sums.MustDrop()
	if err := g.ReduceSum(sums, 0); err != nil {
		t.Fatal(err)
	}
	if w.rank == 0 {
		if got := float64s(t, sums); !slices.Equal(got, []float64{1.5, 20}) {
			t.Errorf("reduced sums on rank 0 = %v, want [1.5 20]", got)
		}
	}
	if err := g.ReduceSum(sums, 2); err == nil || !strings.Contains(err.Error(), "root 2") {
		t.Errorf("root 2 of 2: error %v", err)
	}
	if err := g.Barrier(); err != nil {
		t.Fatal(err)
	}
}

// TestTimeout: rank 1 joins the group but never joins the all-reduce; rank 0
// gets an error naming the operation, marked ErrTimeout, within the timeout
// plus the grace, and then leaves the group without hanging.
func TestTimeout(t *testing.T) {
	w, ok := asWorker(t)
	if !ok {
		runRanks(t, passes, passes)
		return
	}
	const timeout = 2 * time.Second
	g := w.join(t, timeout)
	finished := filepath.Join(w.dir, "rank0-finished")
	if w.rank == 1 {
		// Stay in the group, without calling anything, until rank 0 is done.
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if _, err := os.Stat(finished); err == nil {
				g.Close()
				return
			}
		}
		t.Fatal("rank 0 did not finish within a minute")
	}
	x := tensor(t, []float32{1, 2, 3})
	defer x.MustDrop()
	start := time.Now()
	err := g.Allreduce(x, Sum)
	took := time.Since(start)
	t.Logf("allreduce with no partner: %v after %v", err, took)
	if err == nil || !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "allreduce") {
		t.Errorf("error %v, want an allreduce error marked ErrTimeout", err)
	}
	// Rank 1 is alive, only absent from the collective: its heartbeat says so.
	if err != nil && !strings.Contains(err.Error(), "every other rank is still alive") {
		t.Errorf("error %v does not say that rank 1 is alive", err)
	}
	// Gloo's own deadline is the timeout; the wait gives up a grace later.
	if limit := timeout + time.Second + 5*time.Second; took > limit {
		t.Errorf("the error took %v, more than %v", took, limit)
	}
	start = time.Now()
	g.Close()
	t.Logf("close after the timeout: %v", time.Since(start))
	if err := os.WriteFile(finished, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestKilledPeer: rank 1 dies of SIGKILL after a barrier; rank 0's next
// all-reduce fails with ErrPeerLost well within the timeout, a second call
// fails as well instead of hanging, and Close returns.
func TestKilledPeer(t *testing.T) {
	w, ok := asWorker(t)
	if !ok {
		runRanks(t, passes, killed)
		return
	}
	const timeout = time.Minute
	g := w.join(t, timeout)
	if err := g.Barrier(); err != nil {
		t.Fatal(err)
	}
	if w.rank == 1 {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		time.Sleep(time.Minute)
		t.Fatal("not killed")
	}
	x := tensor(t, []float32{1, 2, 3})
	defer x.MustDrop()
	for i := range 2 {
		start := time.Now()
		err := g.Allreduce(x, Sum)
		took := time.Since(start)
		t.Logf("allreduce %d after the peer died: %v after %v", i, err, took)
		if err == nil || !errors.Is(err, ErrPeerLost) || !strings.Contains(err.Error(), "allreduce") {
			t.Errorf("call %d: error %v, want an allreduce error marked ErrPeerLost", i, err)
		}
		if err != nil && !strings.Contains(err.Error(), "rank 1 is lost (no heartbeat for") {
			t.Errorf("call %d: error %v does not name the lost rank 1", i, err)
		}
		if took > timeout/2 {
			t.Errorf("call %d: the error took %v with a timeout of %v", i, took, timeout)
		}
	}
	start := time.Now()
	g.Close()
	t.Logf("close after the peer died: %v", time.Since(start))
}

// TestJoinTimeout: rank 0 of 2 alone gives up joining after the timeout with
// an error marked ErrTimeout that says where it waited.
func TestJoinTimeout(t *testing.T) {
	if _, ok := asWorker(t); ok {
		t.Fatal("not a multi-process test")
	}
	port := freePort(t)
	start := time.Now()
	_, err := New(Config{Addr: "127.0.0.1", Port: port, Rank: 0, WorldSize: 2, ServeStore: true, Timeout: time.Second})
	t.Logf("join alone: %v after %v", err, time.Since(start))
	if err == nil || !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "join gloo group at 127.0.0.1:") {
		t.Errorf("error %v, want a join error marked ErrTimeout naming the address", err)
	}
}

// TestConfigErrors: every problem of a bad Config is reported before any
// connection is tried.
func TestConfigErrors(t *testing.T) {
	_, err := New(Config{Backend: "mpi", Port: 70000, Rank: 2, WorldSize: 2, Timeout: time.Second, Interfaces: []string{""}})
	if err == nil {
		t.Fatal("a bad config was accepted")
	}
	for _, want := range []string{`backend must be "gloo" or "nccl", got "mpi"`, "store address is empty", "port must be in 1..65535, got 70000", "rank must be in 0..1, got 2", `bad network interface name ""`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// TestAvailable: this libtorch has Gloo; without NCCL, the nccl backend is
// refused by name.
func TestAvailable(t *testing.T) {
	c := Available()
	t.Logf("available: %v", c)
	if !c.Gloo {
		t.Error("gloo reported missing, yet the package linked ProcessGroupGloo")
	}
	if !c.NCCL {
		_, err := New(Config{Backend: NCCL, Addr: "127.0.0.1", Port: 1, WorldSize: 1, Timeout: time.Second})
		if err == nil || !strings.Contains(err.Error(), "nccl is not available") {
			t.Errorf("nccl without NCCL: error %v", err)
		}
	}
	if c.CUDA != (c.CUDADevices > 0) {
		t.Errorf("cuda %v with %d devices", c.CUDA, c.CUDADevices)
	}
	if got := (Capabilities{Gloo: true}).String(); got != "gloo yes, nccl no, cuda no (0 devices), cudnn no" {
		t.Errorf("String() = %q", got)
	}
}
