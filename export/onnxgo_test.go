package export

import (
	"os"
	"slices"
	"testing"

	onnxgo "github.com/owulveryck/onnx-go"
	"github.com/owulveryck/onnx-go/backend/x/gorgonnx"
	"gorgonia.org/tensor"

	"dira/infer"
	"dira/internal/torch/torchtest"
)

// TestOnnxGoRunsEncoder: a second, independent engine. onnx-go (v0.5.0,
// pure Go on gorgonia) decodes encoder.onnx and its run matches ONNX
// Runtime. onnx-go has no Resize, so unet.onnx is out of its reach. It is
// about 100x slower than ONNX Runtime (ResNet-50 at 224x224, batch 2: about
// 13 s on 2 cores).
func TestOnnxGoRunsEncoder(t *testing.T) {
	torchtest.Pin(t)
	for _, c := range []netCase{small, resnet50} {
		t.Run(c.name, func(t *testing.T) {
			torchtest.Pin(t)
			onnxGoCase(t, c)
		})
	}
}

func onnxGoCase(t *testing.T, c netCase) {
	e := fixture(t, c)
	b, err := os.ReadFile(e.encoderONNX)
	if err != nil {
		t.Fatal(err)
	}
	backend := gorgonnx.NewGraph()
	m := onnxgo.NewModel(backend)
	if err := m.UnmarshalBinary(b); err != nil {
		t.Fatalf("onnx-go decode %s: %v", e.encoderONNX, err)
	}
	x := tensor.New(tensor.WithShape(intShape(e.input.Shape)...), tensor.Of(tensor.Float32), tensor.WithBacking(slices.Clone(e.input.Data)))
	if err := m.SetInput(0, x); err != nil {
		t.Fatal(err)
	}
	if err := backend.Run(); err != nil {
		t.Fatalf("onnx-go run: %v", err)
	}
	outs, err := m.GetOutputTensors()
	if err != nil {
		t.Fatal(err)
	}
	got, ok := outs[0].Data().([]float32)
	if !ok {
		t.Fatalf("onnx-go output is %T", outs[0].Data())
	}

	s, err := infer.NewSession(e.encoderONNX, infer.SessionOptions{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	res, err := s.Run(map[string]infer.Tensor{InputName: e.input})
	if err != nil {
		t.Fatal(err)
	}
	want := res[FeaturesName]
	if !slices.Equal(int64Shape(outs[0].Shape()), want.Shape) {
		t.Fatalf("onnx-go output shape %v, ONNX Runtime %v", outs[0].Shape(), want.Shape)
	}
	d, scale := maxAbsDiff(got, want.Data)
	within(t, c.name+" encoder features: onnx-go vs ONNX Runtime", d, scale, Tolerance)
}

func intShape(s []int64) []int {
	out := make([]int, len(s))
	for i, d := range s {
		out[i] = int(d)
	}
	return out
}

func int64Shape(s []int) []int64 {
	out := make([]int64, len(s))
	for i, d := range s {
		out[i] = int64(d)
	}
	return out
}
