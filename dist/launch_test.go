package dist

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sugarme/gotch/ts"

	"dira/internal/torch/torchtest"
)

const envTorchrun = "DIRA_DIST_TEST_TORCHRUN"

// TestTorchrun starts 2 copies of the test binary with PyTorch's launcher,
// python3 -m torch.distributed.run --no_python: the workers recognise it from
// the environment, join the agent's store as clients under the
// /worker/attempt_0 prefix, and all-reduce and all-gather correctly.
func TestTorchrun(t *testing.T) {
	torchtest.Pin(t)
	if os.Getenv(envTorchrun) == "1" {
		torchrunWorker(t)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), childDeadline)
	defer cancel()
	// PyTorch 1.13's launcher takes underscores only (--nproc_per_node). On
	// Python 3.11 its default "--redirects 0 --tee 0" fails (Std.from_str
	// looks the value up by iterating an IntFlag, which no longer yields
	// NONE), so stderr is redirected and teed back explicitly; stdout stays
	// the console's.
	cmd := exec.CommandContext(ctx, "/usr/bin/python3", "-m", "torch.distributed.run", "--no_python",
		"--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", strconv.Itoa(freePort(t)),
		"--redirects", "2", "--tee", "2", "--log_dir", t.TempDir(),
		os.Args[0], "-test.run=^TestTorchrun$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), envTorchrun+"=1", "OMP_NUM_THREADS=1")
	out, err := cmd.CombinedOutput()
	t.Logf("torchrun output:\n%s", indent(out))
	if err != nil {
		t.Fatalf("torchrun: %v", err)
	}
	if n := strings.Count(string(out), "--- PASS: TestTorchrun"); n != 2 {
		t.Errorf("%d workers passed, want 2", n)
	}
}

func torchrunWorker(t *testing.T) {
	e, ok, err := FromEnv()
	if err != nil || !ok {
		t.Fatalf("FromEnv under torchrun: ok %v, %v", ok, err)
	}
	if e.Launcher != Torchrun || !e.AgentStore || e.WorldSize != 2 || e.LocalRank != e.Rank || e.LocalWorldSize != 2 {
		t.Fatalf("env %+v: want torchrun with the agent store, 2 ranks on this machine", e)
	}
	cfg := e.Config(testTimeout)
	if cfg.ServeStore || cfg.Prefix != "/worker/attempt_0" {
		t.Fatalf("config %+v: want a store client under /worker/attempt_0", cfg)
	}
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	x := tensor(t, []float32{float32(e.Rank + 1)})
	defer x.MustDrop()
	if err := g.Allreduce(x, Sum); err != nil {
		t.Fatal(err)
	}
	if got := float32s(t, x); got[0] != 3 {
		t.Errorf("sum of 1 and 2 = %v", got[0])
	}
	r := ofSlice(t, []int64{int64(e.Rank)})
	defer r.MustDrop()
	all, err := g.Allgather(r)
	if err != nil {
		t.Fatal(err)
	}
	defer all.MustDrop()
	if got := int64s(t, all); !slices.Equal(got, []int64{0, 1}) {
		t.Errorf("gathered ranks %v, want [0 1]", got)
	}
}

// peerResult is what testdata/peer.py prints.
type peerResult struct {
	AllreduceInput []float64 `json:"allreduce_input"`
	Allreduce      []float64 `json:"allreduce"`
	AllgatherInput []float64 `json:"allgather_input"`
	Allgather      []float64 `json:"allgather"`
	Broadcast      []int64   `json:"broadcast"`
}

// TestPythonPeer: this test process is rank 0 and serves the store; rank 1
// is a Python process (torch.distributed, gloo, init_process_group with
// tcp://). The all-reduce and all-gather results are bit-identical on both
// sides and equal the float32 sums and the concatenation; the broadcast
// permutation arrives. Proves the Go group is wire-compatible with PyTorch's.
func TestPythonPeer(t *testing.T) {
	if _, ok := asWorker(t); ok {
		t.Fatal("not a re-executed test")
	}
	const timeout = 30 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), childDeadline)
	defer cancel()
	port := freePort(t)
	var stdout, stderr bytes.Buffer
	py := exec.CommandContext(ctx, "/usr/bin/python3", "testdata/peer.py", strconv.Itoa(port), strconv.Itoa(int(timeout.Seconds())))
	py.Stdout, py.Stderr = &stdout, &stderr
	if err := py.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if py.ProcessState == nil {
			py.Process.Kill()
			py.Wait()
		}
	}()
	g, err := New(Config{Addr: "127.0.0.1", Port: port, Rank: 0, WorldSize: 2, ServeStore: true, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	x0 := make([]float32, 6)
	for i := range x0 {
		x0[i] = float32(i)*0.25 - float32(1.0/7.0)
	}
	x := tensor(t, x0)
	defer x.MustDrop()
	y0 := []float32{-1.5, 2.25, 1e-3, 7, -0.1, 3.3}
	y := tensor(t, y0, 2, 3)
	defer y.MustDrop()
	perm := ofSlice(t, []int64{4, 0, 3, 1, 2})
	defer perm.MustDrop()
	err = g.Allreduce(x, Sum)
	var all *ts.Tensor
	if err == nil {
		all, err = g.Allgather(y)
	}
	if err == nil {
		defer all.MustDrop()
		err = g.Broadcast([]*ts.Tensor{perm}, 0)
	}
	if err == nil {
		err = g.Barrier()
	}
	g.Close()
	werr := py.Wait()
	t.Logf("python rank 1: %s%s", stdout.String(), stderr.String())
	if err != nil {
		t.Fatal(err)
	}
	if werr != nil {
		t.Fatalf("python rank 1: %v", werr)
	}
	var res peerResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("python output: %v", err)
	}
	sum := float32s(t, x)
	for i := range sum {
		if want := x0[i] + float32(res.AllreduceInput[i]); sum[i] != want || float32(res.Allreduce[i]) != sum[i] {
			t.Errorf("allreduce[%d]: go %v, python %v, want %v", i, sum[i], res.Allreduce[i], want)
		}
	}
	gathered := float32s(t, all)
	want := append(slices.Clone(y0), make([]float32, 6)...)
	for i, v := range res.AllgatherInput {
		want[6+i] = float32(v)
	}
	if len(gathered) != 12 || len(res.Allgather) != 12 {
		t.Fatalf("gathered %d elements in go, %d in python, want 12", len(gathered), len(res.Allgather))
	}
	for i := range gathered {
		if gathered[i] != want[i] || float32(res.Allgather[i]) != gathered[i] {
			t.Errorf("allgather[%d]: go %v, python %v, want %v", i, gathered[i], res.Allgather[i], want[i])
		}
	}
	if !slices.Equal(res.Broadcast, []int64{4, 0, 3, 1, 2}) {
		t.Errorf("python received permutation %v", res.Broadcast)
	}
}
