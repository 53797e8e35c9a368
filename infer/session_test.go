package infer

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// startRuntime starts ONNX Runtime for one test.
func startRuntime(t *testing.T) {
	t.Helper()
	lib, err := FindLibrary("", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := Start(lib); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Stop() })
}

// testdata/tiny.onnx comes from testdata/gen_tiny.py: x [N,3] -> relu, double.
func TestSessionRunsTinyModel(t *testing.T) {
	startRuntime(t)
	s, err := NewSession("testdata/tiny.onnx", SessionOptions{Device: "cpu", Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.InputNames(); !slices.Equal(got, []string{"x"}) {
		t.Errorf("inputs %v, want [x]", got)
	}
	if got := s.OutputNames(); !slices.Equal(got, []string{"relu", "double"}) {
		t.Errorf("outputs %v, want [relu double]", got)
	}
	for _, n := range []int64{1, 2} { // the batch dimension is dynamic
		x := Tensor{Shape: []int64{n, 3}, Data: []float32{-1, 0, 2, 3, -4, 5}[:3*n]}
		out, err := s.Run(map[string]Tensor{"x": x})
		if err != nil {
			t.Fatal(err)
		}
		wantRelu := []float32{0, 0, 2, 3, 0, 5}[:3*n]
		wantDouble := []float32{-2, 0, 4, 6, -8, 10}[:3*n]
		if r := out["relu"]; !slices.Equal(r.Data, wantRelu) || !slices.Equal(r.Shape, []int64{n, 3}) {
			t.Errorf("batch %d: relu = %v %v, want %v", n, r.Shape, r.Data, wantRelu)
		}
		if d := out["double"]; !slices.Equal(d.Data, wantDouble) {
			t.Errorf("batch %d: double = %v, want %v", n, d.Data, wantDouble)
		}
	}
}

func TestSessionErrors(t *testing.T) {
	startRuntime(t)
	dir := t.TempDir()
	tiny, err := os.ReadFile("testdata/tiny.onnx")
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.onnx")
	if err := os.WriteFile(truncated, tiny[:len(tiny)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.onnx")
	if err := os.WriteFile(garbage, []byte("this is not a protobuf"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path string
		opts       SessionOptions
		want       string
	}{
		{"missing", filepath.Join(dir, "nope.onnx"), SessionOptions{}, "nope.onnx"},
		{"truncated", truncated, SessionOptions{}, truncated},
		{"garbage", garbage, SessionOptions{}, garbage},
		{"cuda_strict", "testdata/tiny.onnx", SessionOptions{Device: "cuda", Strict: true}, "CUDA is not available"},
		{"negative_threads", "testdata/tiny.onnx", SessionOptions{Threads: -1}, "thread counts must be in [0, 1024], got -1 and 0"},
		// 100000 threads ran ONNX Runtime out of memory, then crashed it.
		{"too_many_threads", "testdata/tiny.onnx", SessionOptions{Threads: 100000}, "thread counts must be in [0, 1024], got 100000 and 0"},
		{"too_many_inter_op_threads", "testdata/tiny.onnx", SessionOptions{InterOpThreads: 5000}, "got 0 and 5000"},
		{"unknown_device", "testdata/tiny.onnx", SessionOptions{Device: "tpu"}, "unknown device"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewSession(tc.path, tc.opts)
			if err == nil {
				s.Close()
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name %q", err, tc.want)
			}
		})
	}

	s, err := NewSession("testdata/tiny.onnx", SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		in   map[string]Tensor
		want string
	}{
		{"no_input", map[string]Tensor{}, `no value for input "x"`},
		{"short_data", map[string]Tensor{"x": {Shape: []int64{2, 3}, Data: make([]float32, 5)}}, "needs 6 values"},
		{"extra_input", map[string]Tensor{"x": {Shape: []int64{1, 3}, Data: make([]float32, 3)}, "y": {}}, `no input "y"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Run(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Run(nil); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("run after close: %v", err)
	}
}

// TestCUDAFallsBack: this machine has no CUDA provider (and no GPU), so
// "cuda" and "auto" run on the CPU and say why; "cpu" has nothing to say.
// On a GPU machine with the provider, "cuda" and "auto" must run on CUDA
// without a fallback line, and strict CUDA must succeed.
func TestCUDAFallsBack(t *testing.T) {
	startRuntime(t)
	cudaHere := false
	for _, dev := range []string{"cuda", "auto", "cpu", ""} {
		s, err := NewSession("testdata/tiny.onnx", SessionOptions{Device: dev, Threads: 1})
		if err != nil {
			t.Fatalf("%q: %v", dev, err)
		}
		t.Logf("device %q: runs on %s; fallback: %s", dev, s.Device(), s.Fallback())
		wantFallback := dev == "cuda" || dev == "auto"
		if s.Device() == DeviceCUDA {
			cudaHere, wantFallback = true, false
		}
		if got := s.Fallback() != ""; got != wantFallback {
			t.Errorf("%q: fallback %q", dev, s.Fallback())
		}
		out, err := s.Run(map[string]Tensor{"x": {Shape: []int64{1, 3}, Data: []float32{-1, 0, 2}}})
		if err != nil || !slices.Equal(out["relu"].Data, []float32{0, 0, 2}) {
			t.Errorf("%q: run %v %v", dev, out, err)
		}
		s.Close()
	}
	s, err := NewSession("testdata/tiny.onnx", SessionOptions{Device: "cuda", Strict: true})
	switch {
	case cudaHere && err != nil:
		t.Errorf("strict cuda with CUDA available: %v", err)
	case !cudaHere && (!errors.Is(err, ErrNoCUDA) || !strings.Contains(err.Error(), "testdata/tiny.onnx")):
		t.Errorf("strict cuda: %v, want ErrNoCUDA naming the file", err)
	}
	if err == nil {
		s.Close()
	}
}

func TestSessionDescribesTensors(t *testing.T) {
	startRuntime(t)
	s, err := NewSession("testdata/tiny.onnx", SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	in := s.Inputs()
	if len(in) != 1 || in[0].Name != "x" || !slices.Equal(in[0].Shape, []int64{-1, 3}) || !in[0].Float {
		t.Errorf("inputs %+v, want x [-1 3] float", in)
	}
	if out := s.Outputs(); len(out) != 2 || out[1].Name != "double" {
		t.Errorf("outputs %+v", out)
	}
}

// TestSessionWritesOptimizedModelAndProfile: OptimizedModelPath makes ONNX
// Runtime write the graph it runs when the session opens, ProfilePrefix a
// JSON profile with one event per node run when it closes.
func TestSessionWritesOptimizedModelAndProfile(t *testing.T) {
	startRuntime(t)
	dir := t.TempDir()
	opt := filepath.Join(dir, "optimized.onnx")
	s, err := NewSession("testdata/tiny.onnx", SessionOptions{Device: "cpu", Threads: 1,
		OptimizedModelPath: opt, ProfilePrefix: filepath.Join(dir, "profile")})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(opt); err != nil || st.Size() == 0 {
		t.Errorf("optimized model: %v", err)
	}
	if _, err := s.Run(map[string]Tensor{"x": {Shape: []int64{1, 3}, Data: []float32{-1, 0, 2}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	profiles, err := filepath.Glob(filepath.Join(dir, "profile*.json"))
	if err != nil || len(profiles) != 1 {
		t.Fatalf("profiles %v (%v), want one", profiles, err)
	}
	b, err := os.ReadFile(profiles[0])
	if err != nil {
		t.Fatal(err)
	}
	var events []struct {
		Cat  string `json:"cat"`
		Args struct {
			OpName string `json:"op_name"`
		} `json:"args"`
	}
	if err := json.Unmarshal(b, &events); err != nil {
		t.Fatalf("profile %s: %v", profiles[0], err)
	}
	ran := map[string]bool{}
	for _, e := range events {
		if e.Cat == "Node" {
			ran[e.Args.OpName] = true
		}
	}
	if !ran["Relu"] || !ran["Add"] {
		t.Errorf("profile's node events name ops %v, want Relu and Add", ran)
	}
}
