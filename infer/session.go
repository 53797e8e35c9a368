package infer

import (
	"errors"
	"fmt"
	"os"
	"slices"

	ort "github.com/yalue/onnxruntime_go"
)

// Tensor is a dense float32 array in C order, the only element type the
// exported models take and give.
type Tensor struct {
	Shape []int64
	Data  []float32
}

// SessionOptions chooses where and how a Session runs.
type SessionOptions struct {
	// Device is "cpu" (or empty, the same). CUDA is not wired yet; asking for
	// it is an error rather than a silent CPU run.
	Device string
	// Threads is ONNX Runtime's intra-op thread count; 0 lets it choose
	// (one per physical core).
	Threads int
}

// Session is one ONNX model opened in ONNX Runtime, run on float32 batches.
// The runtime must be started (Start) before NewSession and stopped only
// after Close. A Session is not safe for concurrent Runs.
type Session struct {
	path    string
	s       *ort.DynamicAdvancedSession
	inputs  []string
	outputs []string
}

// NewSession opens the ONNX model at path. Every error names the file.
func NewSession(path string, opts SessionOptions) (*Session, error) {
	switch opts.Device {
	case "", "cpu":
	case "cuda":
		return nil, fmt.Errorf("infer: open %s: device %q is not supported yet (use cpu)", path, opts.Device)
	default:
		return nil, fmt.Errorf("infer: open %s: unknown device %q (want cpu)", path, opts.Device)
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("infer: open %s: %w", path, err)
	}
	ins, outs, err := ort.GetInputOutputInfo(path)
	if err != nil {
		return nil, fmt.Errorf("infer: read model %s: %w", path, err)
	}
	s := &Session{path: path}
	for _, i := range ins {
		s.inputs = append(s.inputs, i.Name)
	}
	for _, o := range outs {
		s.outputs = append(s.outputs, o.Name)
	}
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("infer: open %s: %w", path, err)
	}
	defer so.Destroy()
	if opts.Threads > 0 {
		if err := so.SetIntraOpNumThreads(opts.Threads); err != nil {
			return nil, fmt.Errorf("infer: open %s: threads %d: %w", path, opts.Threads, err)
		}
	}
	s.s, err = ort.NewDynamicAdvancedSession(path, s.inputs, s.outputs, so)
	if err != nil {
		return nil, fmt.Errorf("infer: open %s: %w", path, err)
	}
	return s, nil
}

// InputNames lists the model's inputs in graph order.
func (s *Session) InputNames() []string { return slices.Clone(s.inputs) }

// OutputNames lists the model's outputs in graph order.
func (s *Session) OutputNames() []string { return slices.Clone(s.outputs) }

// Run feeds one tensor per model input (by name) and returns every output by
// name. Outputs must be float32.
func (s *Session) Run(inputs map[string]Tensor) (map[string]Tensor, error) {
	if s.s == nil {
		return nil, fmt.Errorf("infer: run %s: session closed", s.path)
	}
	in := make([]ort.Value, len(s.inputs))
	defer func() {
		for _, v := range in {
			if v != nil {
				v.Destroy()
			}
		}
	}()
	for i, name := range s.inputs {
		t, ok := inputs[name]
		if !ok {
			return nil, fmt.Errorf("infer: run %s: no value for input %q", s.path, name)
		}
		n := int64(1)
		for _, d := range t.Shape {
			n *= d
		}
		if n != int64(len(t.Data)) {
			return nil, fmt.Errorf("infer: run %s: input %q: shape %v needs %d values, got %d", s.path, name, t.Shape, n, len(t.Data))
		}
		v, err := ort.NewTensor(ort.NewShape(t.Shape...), t.Data)
		if err != nil {
			return nil, fmt.Errorf("infer: run %s: input %q: %w", s.path, name, err)
		}
		in[i] = v
	}
	for name := range inputs {
		if !slices.Contains(s.inputs, name) {
			return nil, fmt.Errorf("infer: run %s: model has no input %q (inputs %v)", s.path, name, s.inputs)
		}
	}
	out := make([]ort.Value, len(s.outputs))
	defer func() {
		for _, v := range out {
			if v != nil {
				v.Destroy()
			}
		}
	}()
	if err := s.s.Run(in, out); err != nil {
		return nil, fmt.Errorf("infer: run %s: %w", s.path, err)
	}
	res := make(map[string]Tensor, len(out))
	for i, v := range out {
		t, ok := v.(*ort.Tensor[float32])
		if !ok {
			return nil, fmt.Errorf("infer: run %s: output %q is %T, want a float32 tensor", s.path, s.outputs[i], v)
		}
		res[s.outputs[i]] = Tensor{Shape: slices.Clone([]int64(t.GetShape())), Data: slices.Clone(t.GetData())}
	}
	return res, nil
}

// Close releases the session; later Runs fail.
func (s *Session) Close() error {
	if s.s == nil {
		return errors.New("infer: session already closed")
	}
	err := s.s.Destroy()
	s.s = nil
	return err
}
