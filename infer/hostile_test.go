package infer

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"dira/data"
	"dira/internal/memtest"
	"dira/internal/npy"
)

// TestHugeInputMemory: refusing a 200-byte model whose input declares
// [N,3,100000,100000] takes under 200 MB at the peak, ONNX Runtime
// included (measured in a child process; issue 13: `dira infer` died with
// Go's out-of-memory error).
func TestHugeInputMemory(t *testing.T) {
	if memtest.Child(t) {
		startRuntime(t)
		_, err := OpenModel("testdata/huge.onnx", SessionOptions{Device: "cpu", Threads: 1})
		if err == nil || !strings.Contains(err.Error(), "10000000000 pixels per image") {
			t.Fatalf("error %v, want the input refused", err)
		}
		return
	}
	peak := memtest.PeakRSS(t)
	t.Logf("peak RSS while refusing testdata/huge.onnx: %s", memtest.MB(peak))
	if peak > 200<<20 {
		t.Fatalf("peak RSS %s, want under 200 MB", memtest.MB(peak))
	}
}

// TestRunFixedBatch: a model that takes batches of exactly 2 runs three
// images (the last batch padded) with the features of the dynamic-batch
// model, and says so at the start (issue 13: it failed on the last,
// partial batch).
func TestRunFixedBatch(t *testing.T) {
	fixed := openModel(t, "testdata/batch2.onnx")
	if fixed.FixedBatch != 2 {
		t.Fatalf("FixedBatch %d, want 2", fixed.FixedBatch)
	}
	dyn := openModel(t, "testdata/encoder32.onnx")
	if dyn.FixedBatch != 0 {
		t.Fatalf("FixedBatch %d, want 0", dyn.FixedBatch)
	}
	ins, err := ListInputs(imageSet(t), "")
	if err != nil {
		t.Fatal(err)
	}
	features := func(m *Model, batch int, log *strings.Builder) []float32 {
		out := t.TempDir()
		sum, err := m.Run(context.Background(), ins, out, RunOptions{Batch: batch, BadImages: data.BadImagesSkip, Log: log})
		if err != nil {
			t.Fatal(err)
		}
		if sum.Images != 3 {
			t.Fatalf("%d images", sum.Images)
		}
		f, err := os.Open(filepath.Join(out, "features.npy"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		a, err := npy.Read(f)
		if err != nil || !slices.Equal(a.Shape, []int{3, 3}) {
			t.Fatalf("features %v %v", a.Shape, err)
		}
		return a.Float32()
	}
	var log strings.Builder
	got := features(fixed, 8, &log)
	want := features(dyn, 8, &strings.Builder{})
	if !strings.Contains(log.String(), "takes batches of exactly 2 images: running batches of 2 (the last one padded), not 8") {
		t.Errorf("log:\n%s", log.String())
	}
	for i := range want {
		if math.Abs(float64(got[i]-want[i])) > 1e-6 {
			t.Fatalf("fixed-batch features %v, want %v", got, want)
		}
	}
}

// TestRunRefusesHugeBatch: a batch whose input tensor would pass
// MaxBatchBytes is refused before anything is decoded.
func TestRunRefusesHugeBatch(t *testing.T) {
	m := openModel(t, "testdata/encoder256.onnx")
	_, err := m.Run(context.Background(), []Input{{Path: "a.png", Name: "a.png"}}, t.TempDir(), RunOptions{Batch: MaxBatch, BadImages: data.BadImagesSkip})
	if err == nil || !strings.Contains(err.Error(), "a batch of 4096 images of 3x256x256 needs 3072 MiB of input, more than 1024 MiB: lower the batch size") {
		t.Fatalf("error %v", err)
	}
}

// TestInspectMatchesRuntime: Inspect reads every test model's inputs and
// outputs as ONNX Runtime does.
func TestInspectMatchesRuntime(t *testing.T) {
	startRuntime(t)
	paths, _ := filepath.Glob("testdata/*.onnx")
	if len(paths) < 5 {
		t.Fatalf("%d models", len(paths))
	}
	for _, p := range paths {
		mi, err := InspectFile(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		ins, outs, err := ort.GetInputOutputInfo(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		for k, pair := range []struct {
			ours []TensorInfo
			ort  []ort.InputOutputInfo
		}{{mi.Inputs, ins}, {mi.Outputs, outs}} {
			if len(pair.ours) != len(pair.ort) {
				t.Fatalf("%s: %d tensors, ONNX Runtime %d", p, len(pair.ours), len(pair.ort))
			}
			for i, o := range pair.ort {
				got := pair.ours[i]
				float := o.OrtValueType == ort.ONNXTypeTensor && o.DataType == ort.TensorElementDataTypeFloat
				if got.Name != o.Name || !slices.Equal(got.Shape, []int64(o.Dimensions)) || got.Float != float {
					t.Errorf("%s: %s %d: %+v, ONNX Runtime %s %v float %v", p, []string{"input", "output"}[k], i, got, o.Name, o.Dimensions, float)
				}
			}
		}
	}
}

// FuzzInspect: reading a model's declared inputs and outputs never panics
// or reads beyond the bytes, on any input; what it reads describes or is
// refused without panicking either.
func FuzzInspect(f *testing.F) {
	paths, _ := filepath.Glob("testdata/*.onnx")
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		mi, err := Inspect(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		for _, ti := range append(slices.Clone(mi.Inputs), mi.Outputs...) {
			if len(ti.Shape) > maxRank || len(ti.Name) > maxNameLen {
				t.Fatalf("tensor %q of rank %d", ti.Name, len(ti.Shape))
			}
		}
		if m, err := describe("fuzz.onnx", mi); err == nil {
			if int64(m.Height)*int64(m.Width) > MaxInputPixels || m.Height <= 0 || m.Width <= 0 {
				t.Fatalf("accepted input %dx%d", m.Height, m.Width)
			}
		}
	})
}
