package infer

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"

	ort "github.com/yalue/onnxruntime_go"
)

// Tensor is a dense float32 array in C order, the only element type the
// exported models take and give.
type Tensor struct {
	Shape []int64
	Data  []float32
}

// Devices a Session can be asked for.
const (
	DeviceCPU  = "cpu"
	DeviceCUDA = "cuda"
	// DeviceAuto takes CUDA when it can be had and the CPU otherwise.
	DeviceAuto = "auto"
)

// Devices lists the accepted SessionOptions.Device values.
var Devices = []string{DeviceAuto, DeviceCPU, DeviceCUDA}

// ErrNoCUDA reports that a session could not run on CUDA (the provider
// libraries are missing, there is no GPU, or session creation failed there).
// NewSession returns it only with SessionOptions.Strict; otherwise it falls
// back to the CPU and says why in Session.Fallback.
var ErrNoCUDA = errors.New("CUDA is not available")

// SessionOptions chooses where and how a Session runs.
type SessionOptions struct {
	// Device is "cpu" (or empty, the same), "cuda" or "auto". With "cuda"
	// or "auto" a session that cannot get CUDA runs on the CPU instead and
	// Session.Fallback says why; with "cuda" and Strict it fails instead.
	Device string
	// DeviceID is the CUDA device ordinal.
	DeviceID int
	// Strict makes Device "cuda" fail with ErrNoCUDA rather than fall back.
	Strict bool
	// CUDA sets further CUDA provider options by ONNX Runtime's names
	// (https://onnxruntime.ai/docs/execution-providers/CUDA-ExecutionProvider.html).
	// cudnn_conv_algo_search defaults to HEURISTIC: with ONNX Runtime >= 1.20
	// and cuDNN 9 the library default (DEFAULT) runs convolutions in a very
	// slow fallback (toolchain.md).
	CUDA map[string]string
	// Threads is ONNX Runtime's intra-op thread count; 0 lets it choose
	// (one per physical core).
	Threads int
	// InterOpThreads is the inter-op thread count; 0 lets ONNX Runtime choose.
	InterOpThreads int
	// OptimizedModelPath, when set, makes ONNX Runtime write the graph it
	// actually runs (after its fusions and layout changes) to that file when
	// the session is created: the evidence of which kernels a model runs as
	// (for a quantized model, QLinearConv rather than Conv).
	OptimizedModelPath string
	// Unoptimized runs the graph as written, with ONNX Runtime's graph
	// optimisations (fusions, constant folding, layout changes) off: a
	// reference for what a graph means, against which the fused kernels
	// of the default level can be checked. Slow; not for production runs.
	Unoptimized bool
	// ProfilePrefix, when set, turns on ONNX Runtime's profiler: it writes
	// <prefix>_<timestamp>.json, one event per node run, when the session
	// is closed.
	ProfilePrefix string
}

// MaxThreads bounds SessionOptions.Threads and InterOpThreads. ONNX
// Runtime starts every thread it is asked for, and a count far beyond the
// machine's cores (100000) made it run out of memory and crash inside its
// thread pool; more threads than cores never makes a session faster.
// 1024 is above the hardware threads of any current machine.
const MaxThreads = 1024

// TensorInfo describes one model input or output. Dynamic dimensions
// (the batch "N") are -1.
type TensorInfo struct {
	Name  string
	Shape []int64
	// Float is true for float32 tensors, the only type dira's models use.
	Float bool
}

// Session is one ONNX model opened in ONNX Runtime, run on float32 batches.
// The runtime must be started (Start) before NewSession and stopped only
// after Close. A Session is not safe for concurrent Runs.
type Session struct {
	path     string
	s        *ort.DynamicAdvancedSession
	inputs   []string
	outputs  []string
	inInfo   []TensorInfo
	outInfo  []TensorInfo
	device   string
	fallback string
}

// NewSession opens the ONNX model at path on the device opts asks for.
// Its inputs and outputs are read by Inspect before ONNX Runtime loads it.
// Every error names the file.
func NewSession(path string, opts SessionOptions) (*Session, error) {
	switch opts.Device {
	case "", DeviceCPU, DeviceCUDA, DeviceAuto:
	default:
		return nil, fmt.Errorf("infer: open %s: unknown device %q (want one of %v)", path, opts.Device, Devices)
	}
	if opts.Threads < 0 || opts.InterOpThreads < 0 || opts.Threads > MaxThreads || opts.InterOpThreads > MaxThreads {
		return nil, fmt.Errorf("infer: open %s: thread counts must be in [0, %d], got %d and %d", path, MaxThreads, opts.Threads, opts.InterOpThreads)
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("infer: open %s: %w", path, err)
	}
	mi, err := InspectFile(path)
	if err != nil {
		return nil, err
	}
	return newSession(path, mi, opts)
}

// newSession opens the model at path, whose inputs and outputs Inspect
// read, in ONNX Runtime.
func newSession(path string, mi ModelInfo, opts SessionOptions) (*Session, error) {
	var err error
	s := &Session{path: path, device: DeviceCPU}
	for _, i := range mi.Inputs {
		s.inputs = append(s.inputs, i.Name)
		s.inInfo = append(s.inInfo, i)
	}
	for _, o := range mi.Outputs {
		s.outputs = append(s.outputs, o.Name)
		s.outInfo = append(s.outInfo, o)
	}
	if opts.Device == DeviceCUDA || opts.Device == DeviceAuto {
		var why error
		s.s, why = s.open(opts, true)
		if why == nil {
			s.device = DeviceCUDA
			return s, nil
		}
		if opts.Strict && opts.Device == DeviceCUDA {
			return nil, fmt.Errorf("infer: open %s on cuda (strict): %w: %w", path, ErrNoCUDA, why)
		}
		s.fallback = why.Error()
	}
	if s.s, err = s.open(opts, false); err != nil {
		return nil, fmt.Errorf("infer: open %s: %w", path, err)
	}
	return s, nil
}

// open creates the ONNX Runtime session, with the CUDA provider when cuda
// is set; the error says what failed.
func (s *Session) open(opts SessionOptions, cuda bool) (*ort.DynamicAdvancedSession, error) {
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, err
	}
	defer so.Destroy()
	if opts.Threads > 0 {
		if err := so.SetIntraOpNumThreads(opts.Threads); err != nil {
			return nil, fmt.Errorf("threads %d: %w", opts.Threads, err)
		}
	}
	if opts.InterOpThreads > 0 {
		if err := so.SetInterOpNumThreads(opts.InterOpThreads); err != nil {
			return nil, fmt.Errorf("inter-op threads %d: %w", opts.InterOpThreads, err)
		}
	}
	if opts.Unoptimized {
		if err := so.SetGraphOptimizationLevel(ort.GraphOptimizationLevelDisableAll); err != nil {
			return nil, fmt.Errorf("graph optimisations off: %w", err)
		}
	}
	if opts.OptimizedModelPath != "" {
		if err := so.SetOptimizedModelFilePath(opts.OptimizedModelPath); err != nil {
			return nil, fmt.Errorf("optimized model path %s: %w", opts.OptimizedModelPath, err)
		}
	}
	if opts.ProfilePrefix != "" {
		if err := so.EnableProfiling(opts.ProfilePrefix); err != nil {
			return nil, fmt.Errorf("profile prefix %s: %w", opts.ProfilePrefix, err)
		}
	}
	if cuda {
		co, err := ort.NewCUDAProviderOptions()
		if err != nil {
			return nil, fmt.Errorf("CUDA provider options: %w", err)
		}
		defer co.Destroy()
		set := map[string]string{"device_id": strconv.Itoa(opts.DeviceID), "cudnn_conv_algo_search": "HEURISTIC"}
		maps.Copy(set, opts.CUDA)
		// ONNX Runtime loads libonnxruntime_providers_cuda.so (from the
		// folder of libonnxruntime.so) on the first call that needs it.
		if err := co.Update(set); err != nil {
			return nil, fmt.Errorf("loading the CUDA provider: %s", ortMessage(err))
		}
		if err := so.AppendExecutionProviderCUDA(co); err != nil {
			return nil, fmt.Errorf("adding the CUDA provider: %s", ortMessage(err))
		}
	}
	sess, err := ort.NewDynamicAdvancedSession(s.path, s.inputs, s.outputs, so)
	if err != nil && cuda {
		return nil, fmt.Errorf("creating the session with CUDA: %s", ortMessage(err))
	}
	return sess, err
}

// ortMessage drops the source location ONNX Runtime puts before its
// message ("/onnxruntime_src/...cc:1988 ... [ONNXRuntimeError] : 1 : FAIL : "),
// so that the fallback fits one readable line.
func ortMessage(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, "[ONNXRuntimeError] : "); i >= 0 {
		rest := msg[i+len("[ONNXRuntimeError] : "):]
		// "1 : FAIL : message"
		if parts := strings.SplitN(rest, " : ", 3); len(parts) == 3 {
			return parts[2]
		}
		return rest
	}
	return msg
}

// Path is the model file.
func (s *Session) Path() string { return s.path }

// Device is where the session runs: "cpu" or "cuda".
func (s *Session) Device() string { return s.device }

// Fallback says why a session asked for CUDA (or auto) runs on the CPU;
// empty when it got what it asked for.
func (s *Session) Fallback() string { return s.fallback }

// Inputs describes the model's inputs in graph order.
func (s *Session) Inputs() []TensorInfo { return slices.Clone(s.inInfo) }

// Outputs describes the model's outputs in graph order.
func (s *Session) Outputs() []TensorInfo { return slices.Clone(s.outInfo) }

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

// Metadata is the model's custom metadata (ONNX metadata_props).
func (s *Session) Metadata() (map[string]string, error) {
	md, err := s.s.GetModelMetadata()
	if err != nil {
		return nil, fmt.Errorf("infer: model %s: metadata: %w", s.path, err)
	}
	defer md.Destroy()
	keys, err := md.GetCustomMetadataMapKeys()
	if err != nil {
		return nil, fmt.Errorf("infer: model %s: metadata: %w", s.path, err)
	}
	out := map[string]string{}
	for _, k := range keys {
		v, ok, err := md.LookupCustomMetadataMap(k)
		if err != nil {
			return nil, fmt.Errorf("infer: model %s: metadata %s: %w", s.path, k, err)
		}
		if ok {
			out[k] = v
		}
	}
	return out, nil
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
