package export

import (
	"encoding/json"
	"image/png"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"dira/data"
	"dira/export/onnxpb"
	"dira/infer"
	"dira/internal/atomicfile"
)

// Quantization test floors for the ResNet-18 test network at 64x64 with
// random weights (export_test.go's fixture), calibrated on 8 synthetic
// radiographs and compared on 4 others. Measured (2 threads, ONNX Runtime
// 1.27, AVX-512 VNNI): features cosine 0.99992 (min over images, min-max and
// percentile 99.99 alike), mask IoU 0.989 at the fp32 median.
const (
	// int8EncoderCosineFloor is the lowest per-image cosine similarity of
	// int8 and fp32 features accepted.
	int8EncoderCosineFloor = 0.999
	// int8MaskIoUFloor is the lowest mask IoU accepted.
	int8MaskIoUFloor = 0.97
)

// calibrationImages and heldOutImages are disjoint synthetic radiographs at
// the test size.
func calibrationImages(size int) data.Source { return data.NewSynthetic(8, size, 3, 0) }
func heldOutImages(size int) data.Source     { return data.NewSynthetic(4, size, 3, 100) }

// quantizedFile quantizes the fp32 model at src and writes it to dst.
func quantizedFile(t *testing.T, src, dst string, opts QuantOptions) QuantSummary {
	t.Helper()
	m, err := ReadModel(src)
	if err != nil {
		t.Fatal(err)
	}
	opts.Session = infer.SessionOptions{Threads: 2}
	q, sum, err := QuantizeInt8(m, calibrationImages(64), opts)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, dst, func(w io.Writer) error { return WriteModel(w, q) })
	return sum
}

func heldOutBatch(t *testing.T, size int) infer.Tensor {
	t.Helper()
	src := heldOutImages(size)
	x, err := loadBatch(src, 0, src.Len(), size, size)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// TestQuantizeInt8 quantizes the test network's encoder and U-Net (min-max
// and percentile calibration) and checks: Debian's onnx checker accepts the
// files (full_check) with the fp32 files' input/output names, dims and
// float32 types; `dira infer`'s model check opens them; ONNX Runtime runs
// every convolution but the U-Net's head as QLinearConv (from its optimised
// graph); the outputs agree with fp32 on held-out images above the floors.
func TestQuantizeInt8(t *testing.T) {
	runtime.LockOSThread() // gotch: grad mode and the error slot are per OS thread
	e := fixture(t, small)
	dir := t.TempDir()
	x := heldOutBatch(t, small.size)
	so := infer.SessionOptions{Threads: 2}
	for _, method := range []string{CalibMinMax, CalibPercentile} {
		t.Run(method, func(t *testing.T) {
			runtime.LockOSThread() // subtests run on their own goroutines
			files := map[Kind]string{
				KindEncoder: filepath.Join(dir, method+"-encoder.int8.onnx"),
				KindUNet:    filepath.Join(dir, method+"-unet.int8.onnx"),
			}
			fp32 := map[Kind]string{KindEncoder: e.encoderONNX, KindUNet: e.unetONNX}
			for _, kind := range []Kind{KindEncoder, KindUNet} {
				sum := quantizedFile(t, fp32[kind], files[kind], QuantOptions{Method: method})
				t.Logf("%s: %+v", kind, sum)
				if sum.Images != 8 || sum.Method != method {
					t.Errorf("%s: summary says %d images, method %s", kind, sum.Images, sum.Method)
				}
				// ResNet-18: 20 convolutions in the encoder, 8 Adds; the
				// U-Net adds 10 decoder convolutions, 5 Resizes, 4 Concats
				// and leaves its head in float.
				want := map[string]int{"Conv": 20, "Add": 8, "MaxPool": 1}
				wantFloat := []string(nil)
				if kind == KindUNet {
					want = map[string]int{"Conv": 30, "Add": 8, "MaxPool": 1, "Resize": 5, "Concat": 4}
					wantFloat = []string{"segmentation_head.0"}
				}
				if !mapsEqual(sum.Quantized, want) || !slices.Equal(sum.Float, wantFloat) {
					t.Errorf("%s: quantized %v, float %v; want %v, %v", kind, sum.Quantized, sum.Float, want, wantFloat)
				}

				ops, floatConvs, err := RuntimeOps(files[kind], so)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("%s: ONNX Runtime runs %v", kind, ops)
				qconvs := ops["QLinearConv"] + ops["com.microsoft.QLinearConv"]
				wantFloatConvs := map[Kind]int{KindEncoder: 0, KindUNet: 1}[kind]
				if qconvs != want["Conv"] || floatConvs != wantFloatConvs {
					t.Errorf("%s: ONNX Runtime runs %d QLinearConv and %d float Conv, want %d and %d", kind, qconvs, floatConvs, want["Conv"], wantFloatConvs)
				}

				a, b, err := compareOutputs(fp32[kind], files[kind], kind, x, so, so)
				if err != nil {
					t.Fatal(err)
				}
				g := agreement(a, b, kind)
				switch kind {
				case KindEncoder:
					t.Logf("encoder int8 vs fp32 (%s): cosine mean %.5f, min %.5f (floor %g); max |diff| %.3g of max |fp32| %.3g",
						method, g.Features.CosineMean, g.Features.CosineMin, int8EncoderCosineFloor, g.MaxAbsDiff, g.MaxAbsFP32)
					if !(g.Features.CosineMin >= int8EncoderCosineFloor) {
						t.Errorf("encoder cosine %.5f < %g", g.Features.CosineMin, int8EncoderCosineFloor)
					}
				case KindUNet:
					// The test network's head is linear with outputs far
					// below 0.5, so the report's IoU at 0.5 compares two
					// empty masks; the fp32 output's median splits the
					// pixels in halves and makes the overlap a real test.
					thr := slices.Sorted(slices.Values(a.Data))[len(a.Data)/2]
					iou, dice := maskOverlap(a.Data, b.Data, thr)
					t.Logf("U-Net int8 vs fp32 (%s): mask IoU %.4f, Dice %.4f at the fp32 median %.4g (floor %g); at 0.5: %.4f; max |diff| %.3g of max |fp32| %.3g",
						method, iou, dice, thr, int8MaskIoUFloor, g.Mask.IoU, g.MaxAbsDiff, g.MaxAbsFP32)
					if !(iou >= int8MaskIoUFloor) {
						t.Errorf("mask IoU %.4f < %g", iou, int8MaskIoUFloor)
					}
				}
				// The QDQ graph run as written (DequantizeLinear, float
				// Conv, QuantizeLinear) is the reference for what ONNX
				// Runtime's integer kernels compute. QLinearAdd rounds one
				// step differently in a few percent of the values
				// (TestIntegerKernelsComputeTheQDQGraph), and that spreads
				// through the residual blocks; it stays below the
				// quantization error itself.
				asWritten, fused, err := compareOutputs(files[kind], files[kind], kind, x, infer.SessionOptions{Threads: 2, Unoptimized: true}, so)
				if err != nil {
					t.Fatal(err)
				}
				k := agreement(asWritten, fused, kind)
				t.Logf("%s: integer kernels vs the QDQ graph as written: max |diff| %.3g, mean %.3g (int8 vs fp32: max %.3g, mean %.3g)",
					kind, k.MaxAbsDiff, k.MeanAbsDiff, g.MaxAbsDiff, g.MeanAbsDiff)
				if !(k.MeanAbsDiff < g.MeanAbsDiff) {
					t.Errorf("%s: the integer kernels differ from the QDQ graph (mean %.3g) more than int8 from fp32 (%.3g)", kind, k.MeanAbsDiff, g.MeanAbsDiff)
				}
				m, err := infer.OpenModel(files[kind], so)
				if err != nil {
					t.Fatalf("dira infer's model check: %v", err)
				}
				if m.Kind != infer.Kind(kind) {
					t.Errorf("opened as %s", m.Kind)
				}
				m.Close()
			}
			checkDerived(t, e, files[KindEncoder], files[KindUNet], "int8",
				[]string{"Add", "Conv", "DequantizeLinear", "Flatten", "GlobalAveragePool", "MaxPool", "QuantizeLinear"},
				[]string{"Concat", "Conv", "DequantizeLinear", "QuantizeLinear", "Resize"})
		})
	}
}

// TestToFP16 converts both networks and checks the files with the onnx
// checker and against fp32 in ONNX Runtime on the CPU, within FP16Tolerance
// of the largest output.
func TestToFP16(t *testing.T) {
	runtime.LockOSThread() // gotch: grad mode and the error slot are per OS thread
	e := fixture(t, small)
	dir := t.TempDir()
	x := heldOutBatch(t, small.size)
	files := map[Kind]string{KindEncoder: filepath.Join(dir, "encoder.fp16.onnx"), KindUNet: filepath.Join(dir, "unet.fp16.onnx")}
	fp32 := map[Kind]string{KindEncoder: e.encoderONNX, KindUNet: e.unetONNX}
	for _, kind := range []Kind{KindEncoder, KindUNet} {
		m, err := ReadModel(fp32[kind])
		if err != nil {
			t.Fatal(err)
		}
		h, err := ToFP16(m)
		if err != nil {
			t.Fatal(err)
		}
		var fp16, float32s int
		for _, in := range h.GetGraph().GetInitializer() {
			switch onnxpb.TensorProto_DataType(in.GetDataType()) {
			case onnxpb.TensorProto_FLOAT16:
				fp16++
			case onnxpb.TensorProto_FLOAT:
				float32s++
				if in.GetName() != "decoder.upsample_scales" {
					t.Errorf("%s: initializer %s stayed float32", kind, in.GetName())
				}
			}
		}
		t.Logf("%s: %d float16 initializers, %d float32 (Resize scales)", kind, fp16, float32s)
		mustWrite(t, files[kind], func(w io.Writer) error { return WriteModel(w, h) })
		g, err := Compare(fp32[kind], files[kind], kind, x, infer.SessionOptions{Threads: 2})
		if err != nil {
			t.Fatal(err)
		}
		within(t, string(kind)+" fp16 vs fp32 (ONNX Runtime, CPU)", g.MaxAbsDiff, g.MaxAbsFP32, FP16Tolerance*g.MaxAbsFP32)
		if g.Features != nil && g.Features.CosineMin < 0.9999 {
			t.Errorf("fp16 features cosine %.6f", g.Features.CosineMin)
		}
	}
	checkDerived(t, e, files[KindEncoder], files[KindUNet], "fp16",
		[]string{"Add", "Cast", "Conv", "Flatten", "GlobalAveragePool", "MaxPool", "Relu"},
		[]string{"Add", "Cast", "Concat", "Conv", "MaxPool", "Relu", "Resize"})
}

// checkDerived runs Debian's onnx checker (full_check) on an int8 or fp16
// pair of files and compares their interface with the fp32 files': same
// input and output names, dims and (float32) types, the metadata plus
// "precision", and at least the listed op types.
func checkDerived(t *testing.T, e *exported, encoder, unet, precision string, encoderOps, unetOps []string) {
	t.Helper()
	type report struct {
		IRVersion int               `json:"ir_version"`
		Opsets    map[string]int    `json:"opsets"`
		Inputs    map[string][]any  `json:"inputs"`
		Outputs   map[string][]any  `json:"outputs"`
		Types     map[string]int    `json:"types"`
		Metadata  map[string]string `json:"metadata"`
		Ops       []string          `json:"ops"`
	}
	var ref, got map[string]report
	python(t, &ref, "onnx", e.encoderONNX, e.unetONNX)
	python(t, &got, "onnx", encoder, unet)
	for file, refName := range map[string]string{filepath.Base(encoder): "encoder.onnx", filepath.Base(unet): "unet.onnx"} {
		g, r := got[file], ref[refName]
		if g.IRVersion != r.IRVersion || !mapsEqual(g.Opsets, r.Opsets) {
			t.Errorf("%s: IR %d opsets %v; fp32 IR %d opsets %v", file, g.IRVersion, g.Opsets, r.IRVersion, r.Opsets)
		}
		if !jsonEqual(g.Inputs, r.Inputs) || !jsonEqual(g.Outputs, r.Outputs) || !mapsEqual(g.Types, r.Types) {
			t.Errorf("%s: inputs %v outputs %v types %v; fp32 %v %v %v", file, g.Inputs, g.Outputs, g.Types, r.Inputs, r.Outputs, r.Types)
		}
		for k, v := range r.Metadata {
			if g.Metadata[k] != v {
				t.Errorf("%s: metadata %s = %q, fp32 %q", file, k, g.Metadata[k], v)
			}
		}
		if g.Metadata["precision"] != precision {
			t.Errorf("%s: metadata precision %q", file, g.Metadata["precision"])
		}
		want := encoderOps
		if strings.HasPrefix(refName, "unet") {
			want = unetOps
		}
		for _, op := range want {
			if !slices.Contains(g.Ops, op) {
				t.Errorf("%s: ops %v lack %s", file, g.Ops, op)
			}
		}
	}
}

// TestWriteQuantized: the CLI's entry point writes the int8 and fp16 files
// and the reports beside the fp32 files, from image files on disk.
func TestWriteQuantized(t *testing.T) {
	runtime.LockOSThread() // gotch: grad mode and the error slot are per OS thread
	e := fixture(t, small)
	dir := t.TempDir()
	for _, f := range []string{e.encoderONNX, e.unetONNX} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// 6 calibration images and 3 held-out ones as PNG files, at 96x80 so
	// that they are resized to the model's 64x64 as `dira infer` does.
	imgDir := t.TempDir()
	var paths []string
	for i := range 9 {
		img := data.DrawRadiograph(96, 9, uint64(i))
		p := filepath.Join(imgDir, "img"+string(rune('a'+i))+".png")
		if err := atomicfile.Write(p, 0o644, func(w io.Writer) error { return png.Encode(w, img) }); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	opts := QuantizedOptions{Quant: QuantOptions{Count: 6, Method: CalibPercentile}, HeldOut: 5, LatencyRuns: 1, Threads: 2}
	rep, err := WriteQuantized(dir, PrecisionInt8, paths, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Files, []string{"encoder.int8.onnx", "unet.int8.onnx", "quantization-report.json"}) {
		t.Errorf("files %v", rep.Files)
	}
	var onDisk QuantReport
	b, err := os.ReadFile(filepath.Join(dir, "quantization-report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &onDisk); err != nil {
		t.Fatal(err)
	}
	t.Logf("quantization-report.json:\n%s", b)
	c := onDisk.Calibration
	if c == nil || c.Images != 6 || c.Method != CalibPercentile || c.Percentile != DefaultPercentile || c.First != paths[0] {
		t.Errorf("calibration %+v", c)
	}
	if onDisk.HeldOut.Images != 3 || !strings.Contains(onDisk.HeldOut.Source, "images 7-9") {
		t.Errorf("held out %+v", onDisk.HeldOut)
	}
	if len(onDisk.Models) != 2 {
		t.Fatalf("%d models in the report", len(onDisk.Models))
	}
	for _, m := range onDisk.Models {
		if m.Images != 3 || m.MaxAbsFP32 == 0 || m.Quantization == nil || m.RuntimeOps == nil {
			t.Errorf("%s: %+v", m.Kind, m)
		}
		if (m.Kind == KindEncoder) != (m.Features != nil) || (m.Kind == KindUNet) != (m.Mask != nil) {
			t.Errorf("%s: features %v, mask %v", m.Kind, m.Features, m.Mask)
		}
		for _, prec := range []string{"fp32", "int8"} {
			for _, batch := range []string{"batch1", "batch16"} {
				if !(m.LatencyMS[prec][batch] > 0) {
					t.Errorf("%s: latency %s %s = %v", m.Kind, prec, batch, m.LatencyMS[prec][batch])
				}
			}
		}
	}

	rep, err = WriteQuantized(dir, PrecisionFP16, nil, QuantizedOptions{HeldOut: 2, LatencyRuns: -1, Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Passed || !slices.Equal(rep.Files, []string{"encoder.fp16.onnx", "unet.fp16.onnx", "fp16-report.json"}) {
		t.Errorf("fp16: passed %v, files %v", rep.Passed, rep.Files)
	}
	if !strings.Contains(rep.HeldOut.Source, "synthetic") || rep.HeldOut.Images != 2 || rep.Models[0].LatencyMS != nil {
		t.Errorf("fp16 without images: held out %+v, latency %v", rep.HeldOut, rep.Models[0].LatencyMS)
	}
	for _, f := range []string{"encoder.int8.onnx", "unet.int8.onnx", "encoder.fp16.onnx", "unet.fp16.onnx", "fp16-report.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*.unchecked")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}

	for _, tc := range []struct {
		name, precision string
		paths           []string
		opts            QuantizedOptions
		want            string
	}{
		{"fp32", PrecisionFP32, paths, QuantizedOptions{}, `precision "fp32"`},
		{"int8_without_images", PrecisionInt8, nil, QuantizedOptions{}, "int8 needs calibration images"},
		{"bad_method", PrecisionInt8, paths, QuantizedOptions{Quant: QuantOptions{Method: "entropy"}}, `unknown calibration method "entropy"`},
		{"missing_image", PrecisionInt8, []string{filepath.Join(imgDir, "nope.png")}, QuantizedOptions{}, "nope.png"},
		{"no_models", PrecisionFP16, nil, QuantizedOptions{}, "encoder.onnx"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runtime.LockOSThread() // subtests run on their own goroutines
			d := dir
			if tc.name == "no_models" {
				d = t.TempDir()
			}
			_, err := WriteQuantized(d, tc.precision, tc.paths, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func mapsEqual[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// tinyConvGraph is image [N,8,12,12] -> Conv 3x3 -> ReLU -> Conv 3x3 (->
// Add with the first ReLU's output when add) -> ReLU -> GlobalAveragePool
// -> Flatten -> features [N,8], with random weights and biases.
func tinyConvGraph(add bool) *onnxpb.ModelProto {
	const c, hw = 8, 12
	r := rand.New(rand.NewPCG(1, 1))
	vals := func(n int, std float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(r.NormFloat64() * std)
		}
		return v
	}
	g := &graph{g: &onnxpb.GraphProto{Name: proto.String("tiny")}}
	g.g.Input = []*onnxpb.ValueInfoProto{valueInfo(InputName, "N", int64(c), int64(hw), int64(hw))}
	conv := func(name, x string) string {
		w := g.initializer(name+".weight", []int64{c, c, 3, 3}, vals(c*c*9, 0.2))
		b := g.initializer(name+".bias", []int64{c}, vals(c, 0.1))
		g.g.Node = append(g.g.Node, &onnxpb.NodeProto{OpType: proto.String("Conv"), Name: proto.String(name),
			Input: []string{x, w, b}, Output: []string{name},
			Attribute: []*onnxpb.AttributeProto{attrInts("kernel_shape", 3, 3), attrInts("pads", 1, 1, 1, 1)}})
		return name
	}
	r1 := g.relu(conv("conv1", InputName))
	h := conv("conv2", r1)
	if add {
		h = g.node("Add", "add", []string{h, r1})
	}
	pooled := g.node("GlobalAveragePool", "pool", []string{g.relu(h)})
	g.node("Flatten", FeaturesName, []string{pooled}, attrInt("axis", 1))
	g.g.Output = []*onnxpb.ValueInfoProto{valueInfo(FeaturesName, "N", int64(c))}
	return &onnxpb.ModelProto{IrVersion: proto.Int64(irVersion), Graph: g.g,
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(opset)}}}
}

// TestIntegerKernelsComputeTheQDQGraph: the rewrite's QDQ graph, run as
// written (DequantizeLinear, float Conv, QuantizeLinear: ONNX's meaning of
// the file) and run by ONNX Runtime's fused integer kernels, gives the same
// features: exactly for Conv-ReLU-Conv-ReLU (so the int32 bias and the
// per-channel weight scales are what QLinearConv assumes), and within one
// quantization step of the last ReLU's output with the Add, whose
// QLinearAdd kernel rounds differently from Q(DQ(a)+DQ(b)) in a few percent
// of the elements.
func TestIntegerKernelsComputeTheQDQGraph(t *testing.T) {
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(2, 2))
	x := infer.Tensor{Shape: []int64{4, 8, 12, 12}, Data: make([]float32, 4*8*12*12)}
	for i := range x.Data {
		x.Data[i] = float32(r.IntN(256)) / 255 // 8-bit pixels: the input's quantization is exact
	}
	for _, tc := range []struct {
		name     string
		add      bool
		ranges   map[string][2]float32
		qconv    int
		maxSteps float64
	}{
		{"conv_relu_conv_relu", false, map[string][2]float32{"conv1.relu": {0, 3}, "conv2.relu": {0, 5}}, 2, 0},
		{"with_add", true, map[string][2]float32{"conv1.relu": {0, 3}, "conv2": {-4, 4}, "add.relu": {0, 6}}, 2, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := tinyConvGraph(tc.add)
			p, err := planQuant(m.GetGraph(), nil)
			if err != nil {
				t.Fatal(err)
			}
			want := slices.Sorted(maps.Keys(tc.ranges))
			if got := slices.Sorted(slices.Values(p.calibrate)); !slices.Equal(got, want) || !slices.Equal(p.inputs, []string{InputName}) {
				t.Fatalf("calibrates %v and inputs %v, want %v and [%s]", got, p.inputs, want, InputName)
			}
			ranges := maps.Clone(tc.ranges)
			ranges[InputName] = [2]float32{0, 1}
			q, sum, err := p.rewrite(m, ranges)
			if err != nil {
				t.Fatal(err)
			}
			if sum.FoldedReLUs != 2 {
				t.Errorf("%d ReLUs folded, want 2", sum.FoldedReLUs)
			}
			path := filepath.Join(dir, tc.name+".onnx")
			mustWrite(t, path, func(w io.Writer) error { return WriteModel(w, q) })
			so := infer.SessionOptions{Threads: 1}
			ops, floatConvs, err := RuntimeOps(path, so)
			if err != nil {
				t.Fatal(err)
			}
			if ops["com.microsoft.QLinearConv"]+ops["QLinearConv"] != tc.qconv || floatConvs != 0 || tc.add != (ops["com.microsoft.QLinearAdd"] == 1) {
				t.Errorf("ONNX Runtime runs %v", ops)
			}
			asWritten, fused, err := compareOutputs(path, path, KindEncoder, x, infer.SessionOptions{Threads: 1, Unoptimized: true}, so)
			if err != nil {
				t.Fatal(err)
			}
			last := tc.ranges["conv2.relu"]
			if tc.add {
				last = tc.ranges["add.relu"]
			}
			step := float64(activationParams(last[0], last[1]).Scale)
			g := agreement(asWritten, fused, KindEncoder)
			t.Logf("fused vs as written: max |diff| %.3g = %.2f steps of the last ReLU's output (%d values)", g.MaxAbsDiff, g.MaxAbsDiff/step, len(fused.Data))
			if g.MaxAbsDiff > tc.maxSteps*step+1e-6 {
				t.Errorf("fused integer kernels differ from the QDQ graph by %.3g, more than %g steps of %.3g", g.MaxAbsDiff, tc.maxSteps, step)
			}
		})
	}
}
