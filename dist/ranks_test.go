package dist

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"dira/internal/torch/torchtest"
)

// The multi-process tests re-run the test binary, once per rank, with the
// rank in the environment (as stages' kill-and-resume test re-runs itself).
// A test function is both: in the parent it calls runRanks; in a child,
// asWorker returns its rank and the function plays that rank.
const (
	envRank  = "DIRA_DIST_TEST_RANK"
	envWorld = "DIRA_DIST_TEST_WORLD"
	envPort  = "DIRA_DIST_TEST_PORT"
	envDir   = "DIRA_DIST_TEST_DIR"
)

// childDeadline bounds a whole multi-process test: a rank still running
// then is a hang, and is killed.
const childDeadline = 3 * time.Minute

type worker struct {
	rank, world, port int
	dir               string // a folder shared by the ranks of one test
}

// asWorker reports whether this process is a rank started by runRanks. It
// pins the test goroutine's OS thread for tensor work (torchtest.Pin), as
// every gotch user must.
func asWorker(t *testing.T) (worker, bool) {
	torchtest.Pin(t)
	r, ok := os.LookupEnv(envRank)
	if !ok {
		return worker{}, false
	}
	w := worker{dir: os.Getenv(envDir)}
	var err error
	if w.rank, err = strconv.Atoi(r); err == nil {
		if w.world, err = strconv.Atoi(os.Getenv(envWorld)); err == nil {
			w.port, err = strconv.Atoi(os.Getenv(envPort))
		}
	}
	if err != nil {
		t.Fatalf("worker environment: %v", err)
	}
	return w, true
}

// join makes the rank's group; rank 0 serves the store.
func (w worker) join(t *testing.T, timeout time.Duration) *Group {
	t.Helper()
	g, err := New(Config{Addr: "127.0.0.1", Port: w.port, Rank: w.rank, WorldSize: w.world, ServeStore: w.rank == 0, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// freePort returns a TCP port nobody listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// outcome is how a child rank is expected to end.
type outcome int

const (
	passes outcome = iota // its test passes
	killed                // it dies of SIGKILL (sent by itself)
)

// runRanks re-runs the calling test as len(want) ranks and fails unless rank
// r ends as want[r] says. Each child's output is logged.
func runRanks(t *testing.T, want ...outcome) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), childDeadline)
	defer cancel()
	port, dir := freePort(t), t.TempDir()
	type result struct {
		out []byte
		err error
	}
	done := make([]chan result, len(want))
	for r := range want {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+regexp.QuoteMeta(t.Name())+"$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", envRank, r), fmt.Sprintf("%s=%d", envWorld, len(want)),
			fmt.Sprintf("%s=%d", envPort, port), envDir+"="+dir)
		done[r] = make(chan result, 1)
		go func() {
			out, err := cmd.CombinedOutput()
			done[r] <- result{out, err}
		}()
	}
	for r, w := range want {
		res := <-done[r]
		t.Logf("rank %d output:\n%s", r, indent(res.out))
		if ctx.Err() != nil {
			t.Errorf("rank %d: still running after %v (a hang); killed", r, childDeadline)
			continue
		}
		switch w {
		case passes:
			if res.err != nil || !strings.Contains(string(res.out), "--- PASS: "+t.Name()) {
				t.Errorf("rank %d did not pass: %v", r, res.err)
			}
		case killed:
			var ee *exec.ExitError
			if !errors.As(res.err, &ee) || !ee.Sys().(syscall.WaitStatus).Signaled() || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Errorf("rank %d did not die of SIGKILL: %v", r, res.err)
			}
		}
	}
}

func indent(b []byte) string {
	return "\t" + strings.ReplaceAll(strings.TrimRight(string(b), "\n"), "\n", "\n\t")
}

// tensor makes a float32 tensor with the given values and shape.
func tensor(t *testing.T, values []float32, shape ...int64) *ts.Tensor {
	t.Helper()
	x, err := ts.OfSlice(values)
	if err != nil {
		t.Fatal(err)
	}
	if len(shape) > 0 {
		if x, err = x.View(shape, true); err != nil {
			t.Fatal(err)
		}
	}
	return x
}

// ofSlice makes a 1-D tensor of any slice type gotch knows.
func ofSlice(t *testing.T, values any) *ts.Tensor {
	t.Helper()
	x, err := ts.OfSlice(values)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// float32s copies a float32 tensor's elements.
func float32s(t *testing.T, x *ts.Tensor) []float32 {
	t.Helper()
	if x.DType() != gotch.Float {
		t.Fatalf("dtype %v, want float32", x.DType())
	}
	c, err := x.Contiguous(false)
	if err != nil {
		t.Fatal(err)
	}
	defer c.MustDrop()
	out := make([]float32, c.Numel())
	if err := c.CopyData(out, uint(len(out))); err != nil {
		t.Fatal(err)
	}
	return out
}

// float64s copies a float64 tensor's elements.
func float64s(t *testing.T, x *ts.Tensor) []float64 {
	t.Helper()
	out := make([]float64, x.Numel())
	if err := x.CopyData(out, uint(len(out))); err != nil {
		t.Fatal(err)
	}
	return out
}

// int64s copies an int64 tensor's elements.
func int64s(t *testing.T, x *ts.Tensor) []int64 {
	t.Helper()
	out := make([]int64, x.Numel())
	if err := x.CopyData(out, uint(len(out))); err != nil {
		t.Fatal(err)
	}
	return out
}

func shape(t *testing.T, x *ts.Tensor) []int64 {
	t.Helper()
	s, err := x.Size()
	if err != nil {
		t.Fatal(err)
	}
	return s
}
