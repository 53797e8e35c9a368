package export

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"dira/data"
	"dira/export/onnxpb"
	"dira/infer"
	"dira/internal/atomicfile"
)

// Precisions of the exported ONNX files. fp32 is what WriteEncoder and
// WriteUNet write; WriteQuantized derives the others from those files.
const (
	PrecisionFP32 = "fp32"
	PrecisionInt8 = "int8"
	PrecisionFP16 = "fp16"
)

// Precisions lists the accepted precision names.
var Precisions = []string{PrecisionFP32, PrecisionInt8, PrecisionFP16}

// FP16Tolerance is the largest difference between the fp16 and the fp32
// model's outputs that WriteQuantized accepts, relative to the largest fp32
// output value (max |fp16 - fp32| <= FP16Tolerance x max |fp32|). Measured
// in ONNX Runtime 1.27 on the CPU, relative to the largest output: ResNet-50
// at 224x224 from seed 1, encoder 5.2e-4 and U-Net 3.2e-3 (bench/infer);
// the demo config's trained ResNet-18 at 64x64, 1.7e-3 and 4.9e-4; the
// ResNet-18 test network, 4.5e-4 and 1.0e-3. ONNX Runtime's x86 CPU
// provider has no float16 convolution: it inserts Casts, folds them away,
// and runs the whole graph in float32 with the float16-rounded weights (its
// optimised graph has one Cast left and float32 NCHWc convolutions), so the
// CPU check measures float16's rounding of the weights and input, not
// float16 arithmetic. A GPU computing in float16 differs more; not
// measured here.
const FP16Tolerance = 1e-2

// MaskThreshold binarises U-Net masks for the IoU and Dice of the report.
const MaskThreshold = 0.5

// QuantizedOptions tunes WriteQuantized.
type QuantizedOptions struct {
	// Quant is the int8 calibration: Quant.Count images are taken from the
	// start of the image list (default 32, capped at the list's length).
	Quant QuantOptions
	// HeldOut is the number of images the report compares the models on,
	// taken from the list after the calibration images; 0 means 16. When
	// the list has none left, synthetic radiographs (data.DrawRadiograph)
	// are used and the report says so.
	HeldOut int
	// LatencyRuns is the number of timed runs per batch size (after one
	// untimed run); 0 means 5, negative skips the latency measurement.
	LatencyRuns int
	// ORTLib is the ONNX Runtime library ("" = infer.FindLibrary's search).
	ORTLib string
	// Threads is ONNX Runtime's intra-op thread count for calibration,
	// comparison and timing (0 = its default).
	Threads int
	// Log receives one line per model; nil discards them.
	Log io.Writer
}

// QuantReport is the report WriteQuantized writes beside the models
// (int8: quantization-report.json, fp16: fp16-report.json).
type QuantReport struct {
	Precision   string             `json:"precision"`
	Runtime     string             `json:"onnxruntime"`
	Threads     int                `json:"threads"`
	Calibration *CalibrationReport `json:"calibration,omitempty"`
	HeldOut     HeldOutReport      `json:"held_out"`
	Models      []ModelReport      `json:"models"`
	// Passed is false when an fp16 model differs from fp32 by more than
	// FP16Tolerance (the int8 report has no pass mark: read its numbers).
	Passed bool     `json:"passed"`
	Files  []string `json:"files"`
}

// CalibrationReport describes the int8 calibration.
type CalibrationReport struct {
	Method     string     `json:"method"`
	Percentile float64    `json:"percentile,omitempty"`
	Images     int        `json:"images"`
	First      string     `json:"first_image"`
	InputRange [2]float32 `json:"input_range"`
}

// HeldOutReport describes the images the models were compared on.
type HeldOutReport struct {
	Images int    `json:"images"`
	Source string `json:"source"`
}

// ModelReport is one model's comparison with its float32 original.
type ModelReport struct {
	Kind         Kind          `json:"kind"`
	FP32         string        `json:"fp32_file"`
	File         string        `json:"file"`
	Quantization *QuantSummary `json:"quantization,omitempty"`
	Agreement
	// LatencyMS holds median milliseconds per call by precision ("fp32",
	// and "int8" or "fp16") and batch size ("batch1", "batch16").
	LatencyMS map[string]map[string]float64 `json:"latency_ms,omitempty"`
	// RuntimeOps counts the op types of the graph ONNX Runtime runs for
	// File after its optimisations (domain-qualified: com.microsoft.QLinearConv),
	// and FloatConvs the float convolutions among them: the evidence that
	// an int8 model's convolutions run as integer kernels.
	RuntimeOps map[string]int `json:"runtime_ops,omitempty"`
	FloatConvs int            `json:"float_convs_at_runtime"`
}

// Agreement measures how close a model's outputs are to the float32 model's
// on the same images.
type Agreement struct {
	Images int `json:"images"`
	// MaxAbsDiff and MeanAbsDiff are over every output value; MaxAbsFP32 is
	// the largest |fp32 output|, the scale they are read against.
	MaxAbsDiff  float64 `json:"max_abs_diff"`
	MeanAbsDiff float64 `json:"mean_abs_diff"`
	MaxAbsFP32  float64 `json:"max_abs_fp32"`
	// Features (encoder): cosine similarity of each image's feature
	// vectors, mean and minimum over the images.
	Features *struct {
		CosineMean float64 `json:"cosine_mean"`
		CosineMin  float64 `json:"cosine_min"`
	} `json:"features,omitempty"`
	// Mask (U-Net): both masks thresholded at MaskThreshold; IoU and Dice
	// over all pixels of all images (an empty union counts as IoU 1).
	Mask *struct {
		IoU  float64 `json:"iou"`
		Dice float64 `json:"dice"`
	} `json:"mask,omitempty"`
}

// Compare runs the float32 model at ref and the model at path (int8 or
// fp16) on the same batch x in ONNX Runtime and measures their agreement.
// kind says which output to read. ONNX Runtime must be started.
func Compare(ref, path string, kind Kind, x infer.Tensor, opts infer.SessionOptions) (Agreement, error) {
	a, b, err := compareOutputs(ref, path, kind, x, opts, opts)
	if err != nil {
		return Agreement{}, err
	}
	return agreement(a, b, kind), nil
}

// compareOutputs runs both models on x (ref with refOpts) and returns kind's
// output of each.
func compareOutputs(ref, path string, kind Kind, x infer.Tensor, refOpts, opts infer.SessionOptions) (a, b infer.Tensor, err error) {
	out := map[Kind]string{KindEncoder: FeaturesName, KindUNet: MaskName}[kind]
	if out == "" {
		return a, b, fmt.Errorf("export: compare %s: unknown model kind %q", path, kind)
	}
	run := func(p string, opts infer.SessionOptions) (infer.Tensor, error) {
		s, err := infer.NewSession(p, opts)
		if err != nil {
			return infer.Tensor{}, err
		}
		defer s.Close()
		res, err := s.Run(map[string]infer.Tensor{InputName: x})
		if err != nil {
			return infer.Tensor{}, err
		}
		y, ok := res[out]
		if !ok {
			return infer.Tensor{}, fmt.Errorf("export: %s has no output %q", p, out)
		}
		return y, nil
	}
	if a, err = run(ref, refOpts); err != nil {
		return a, b, fmt.Errorf("export: compare: %w", err)
	}
	if b, err = run(path, opts); err != nil {
		return a, b, fmt.Errorf("export: compare: %w", err)
	}
	if !slices.Equal(a.Shape, b.Shape) {
		return a, b, fmt.Errorf("export: compare: %s gives %s %v, %s gives %v", ref, out, a.Shape, path, b.Shape)
	}
	return a, b, nil
}

// agreement compares output b with the float32 output a.
func agreement(a, b infer.Tensor, kind Kind) Agreement {
	n := int(a.Shape[0])
	g := Agreement{Images: n}
	var sum float64
	for i := range a.Data {
		d := math.Abs(float64(a.Data[i]) - float64(b.Data[i]))
		if math.IsNaN(d) {
			d = math.Inf(1)
		}
		g.MaxAbsDiff = math.Max(g.MaxAbsDiff, d)
		g.MaxAbsFP32 = math.Max(g.MaxAbsFP32, math.Abs(float64(a.Data[i])))
		sum += d
	}
	g.MeanAbsDiff = sum / float64(max(len(a.Data), 1))
	per := len(a.Data) / max(n, 1)
	switch kind {
	case KindEncoder:
		g.Features = &struct {
			CosineMean float64 `json:"cosine_mean"`
			CosineMin  float64 `json:"cosine_min"`
		}{CosineMin: math.Inf(1)}
		for i := range n {
			c := cosine(a.Data[i*per:(i+1)*per], b.Data[i*per:(i+1)*per])
			g.Features.CosineMean += c / float64(n)
			g.Features.CosineMin = math.Min(g.Features.CosineMin, c)
		}
	case KindUNet:
		g.Mask = &struct {
			IoU  float64 `json:"iou"`
			Dice float64 `json:"dice"`
		}{}
		g.Mask.IoU, g.Mask.Dice = maskOverlap(a.Data, b.Data, MaskThreshold)
	}
	return g
}

// maskOverlap is the IoU and Dice of masks a and b thresholded at thr (> thr
// is foreground), over all their pixels; 1 and 1 when both are empty.
func maskOverlap(a, b []float32, thr float32) (iou, dice float64) {
	var inter, union, sa, sb float64
	for i := range a {
		pa, pb := a[i] > thr, b[i] > thr
		if pa && pb {
			inter++
		}
		if pa || pb {
			union++
		}
		if pa {
			sa++
		}
		if pb {
			sb++
		}
	}
	if union == 0 {
		return 1, 1
	}
	return inter / union, 2 * inter / (sa + sb)
}

// cosine is a·b / (|a||b|) in float64; 1 when both are zero, 0 when one is.
func cosine(a, b []float32) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	switch {
	case aa == 0 && bb == 0:
		return 1
	case aa == 0 || bb == 0:
		return 0
	}
	return ab / math.Sqrt(aa*bb)
}

// Latency runs the model at path on x once untimed, then runs times, and
// returns the median time per call. ONNX Runtime must be started.
func Latency(path string, x infer.Tensor, runs int, opts infer.SessionOptions) (time.Duration, error) {
	if runs < 1 {
		return 0, fmt.Errorf("export: latency %s: runs must be >= 1, got %d", path, runs)
	}
	s, err := infer.NewSession(path, opts)
	if err != nil {
		return 0, fmt.Errorf("export: latency: %w", err)
	}
	defer s.Close()
	in := map[string]infer.Tensor{s.InputNames()[0]: x}
	times := make([]time.Duration, 0, runs)
	for i := range runs + 1 {
		start := time.Now()
		if _, err := s.Run(in); err != nil {
			return 0, fmt.Errorf("export: latency: %w", err)
		}
		if i > 0 {
			times = append(times, time.Since(start))
		}
	}
	slices.Sort(times)
	if runs%2 == 1 {
		return times[runs/2], nil
	}
	return (times[runs/2-1] + times[runs/2]) / 2, nil
}

// RuntimeOps opens the model at path in ONNX Runtime with its optimised
// graph written out and counts that graph's op types (domain-qualified, as
// "com.microsoft.QLinearConv") and its float convolutions (Conv in any
// domain, FusedConv). ONNX Runtime must be started.
func RuntimeOps(path string, opts infer.SessionOptions) (ops map[string]int, floatConvs int, err error) {
	dir, err := os.MkdirTemp("", "dira-optimized-")
	if err != nil {
		return nil, 0, fmt.Errorf("export: runtime ops: %w", err)
	}
	defer os.RemoveAll(dir)
	opts.OptimizedModelPath = filepath.Join(dir, "optimized.onnx")
	s, err := infer.NewSession(path, opts)
	if err != nil {
		return nil, 0, fmt.Errorf("export: runtime ops: %w", err)
	}
	s.Close()
	m, err := ReadModel(opts.OptimizedModelPath)
	if err != nil {
		return nil, 0, fmt.Errorf("export: runtime ops of %s: %w", path, err)
	}
	ops = map[string]int{}
	for _, n := range m.GetGraph().GetNode() {
		op := n.GetOpType()
		if d := n.GetDomain(); d != "" && d != "ai.onnx" {
			op = d + "." + op
		}
		ops[op]++
		if n.GetOpType() == "Conv" || n.GetOpType() == "FusedConv" {
			floatConvs++
		}
	}
	return ops, floatConvs, nil
}

// ReadModel reads an ONNX file.
func ReadModel(path string) (*onnxpb.ModelProto, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	var m onnxpb.ModelProto
	if err := proto.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("export: read model %s: %w", path, err)
	}
	return &m, nil
}

// WriteModel writes m as an ONNX file.
func WriteModel(w io.Writer, m *onnxpb.ModelProto) error { return marshal(w, m) }

// PrecisionFile is the file name of kind's model at precision:
// encoder.onnx, encoder.int8.onnx, unet.fp16.onnx.
func PrecisionFile(kind Kind, precision string) string {
	if precision == PrecisionFP32 {
		return string(kind) + ".onnx"
	}
	return string(kind) + "." + precision + ".onnx"
}

// ReportFile is the report WriteQuantized writes for precision.
func ReportFile(precision string) string {
	if precision == PrecisionInt8 {
		return "quantization-report.json"
	}
	return precision + "-report.json"
}

// WriteQuantized derives the precision ("int8" or "fp16") models from the
// float32 encoder.onnx and unet.onnx in dir (unet.onnx may be absent) and
// writes them beside those (encoder.int8.onnx, unet.fp16.onnx, ...) with
// the report (ReportFile), which compares each with its float32 original on
// held-out images and times both at batch 1 and 16.
//
// calib lists image files: int8 calibrates on the first opts.Quant.Count of
// them and both precisions compare on the next opts.HeldOut. An fp16 model
// that differs from fp32 by more than FP16Tolerance is an error, after the
// report is written; its model file is not.
//
// It starts (and stops) ONNX Runtime itself, on the CPU.
func WriteQuantized(dir, precision string, calib []string, opts QuantizedOptions) (QuantReport, error) {
	rep := QuantReport{Precision: precision, Threads: opts.Threads, Passed: true}
	if precision != PrecisionInt8 && precision != PrecisionFP16 {
		return rep, fmt.Errorf("export: precision %q: want %s or %s (%s is what the export itself writes)", precision, PrecisionInt8, PrecisionFP16, PrecisionFP32)
	}
	log := opts.Log
	if log == nil {
		log = io.Discard
	}
	q, err := opts.Quant.withDefaults()
	if err != nil {
		return rep, fmt.Errorf("export: %w", err)
	}
	heldOut, runs := opts.HeldOut, opts.LatencyRuns
	if heldOut < 0 {
		return rep, fmt.Errorf("export: held-out image count must be >= 0, got %d", heldOut)
	}
	if heldOut == 0 {
		heldOut = 16
	}
	if runs == 0 {
		runs = 5
	}
	images := ImageFiles(calib)
	nCal := 0
	if precision == PrecisionInt8 {
		if len(images) == 0 {
			return rep, errors.New("export: int8 needs calibration images (dira export --calibration DIR|LIST)")
		}
		nCal = min(q.Count, len(images))
		q.Count = nCal
		q.Session.Threads = opts.Threads
		rep.Calibration = &CalibrationReport{Method: q.Method, Percentile: q.Percentile, Images: nCal, First: images[0], InputRange: q.InputRange}
	}

	lib, err := infer.FindLibrary(opts.ORTLib, "")
	if err != nil {
		return rep, err
	}
	if err := infer.Start(lib); err != nil {
		return rep, err
	}
	defer infer.Stop()
	rep.Runtime = infer.Version()
	so := infer.SessionOptions{Device: infer.DeviceCPU, Threads: opts.Threads}

	for _, kind := range []Kind{KindEncoder, KindUNet} {
		src := filepath.Join(dir, PrecisionFile(kind, PrecisionFP32))
		if _, err := os.Stat(src); err != nil {
			if kind == KindUNet && errors.Is(err, os.ErrNotExist) {
				continue // an encoder-only export (moco stage)
			}
			return rep, fmt.Errorf("export: %s: %w", precision, err)
		}
		m, err := ReadModel(src)
		if err != nil {
			return rep, err
		}
		h, w, err := imageInput(m)
		if err != nil {
			return rep, fmt.Errorf("export: %s: %w", src, err)
		}
		held, heldSource := data.Source(nil), ""
		if rest := len(images) - nCal; rest > 0 {
			held = sub(images, nCal, nCal+min(rest, heldOut))
			heldSource = fmt.Sprintf("image list, images %d-%d (after the calibration images)", nCal+1, nCal+held.Len())
		} else {
			held = data.NewSynthetic(heldOut, max(h, w), 1, 1<<20)
			heldSource = "synthetic radiographs (data.DrawRadiograph, seed 1, from index 1048576): no list images were left after calibration"
		}
		x, err := loadBatch(held, 0, held.Len(), h, w)
		if err != nil {
			return rep, fmt.Errorf("export: held-out %w", err)
		}
		rep.HeldOut = HeldOutReport{Images: held.Len(), Source: heldSource}

		mr := ModelReport{Kind: kind, FP32: filepath.Base(src), File: PrecisionFile(kind, precision)}
		var out *onnxpb.ModelProto
		switch precision {
		case PrecisionInt8:
			var sum QuantSummary
			out, sum, err = QuantizeInt8(m, images, q)
			mr.Quantization = &sum
		case PrecisionFP16:
			out, err = ToFP16(m)
		}
		if err != nil {
			return rep, err
		}
		// Written to a temporary name first: an fp16 model that fails its
		// check never appears under its real name.
		dst := filepath.Join(dir, mr.File)
		tmp := dst + ".unchecked"
		if err := atomicfile.Write(tmp, 0o644, func(w io.Writer) error { return WriteModel(w, out) }); err != nil {
			return rep, fmt.Errorf("export: %w", err)
		}
		defer os.Remove(tmp)
		if mr.Agreement, err = Compare(src, tmp, kind, x, so); err != nil {
			return rep, err
		}
		if precision == PrecisionInt8 {
			if mr.RuntimeOps, mr.FloatConvs, err = RuntimeOps(tmp, so); err != nil {
				return rep, err
			}
		}
		if runs > 0 {
			mr.LatencyMS = map[string]map[string]float64{}
			for _, b := range []int{1, 16} {
				xb := repeatBatch(x, b)
				for _, p := range []struct{ prec, path string }{{PrecisionFP32, src}, {precision, tmp}} {
					d, err := Latency(p.path, xb, runs, so)
					if err != nil {
						return rep, err
					}
					if mr.LatencyMS[p.prec] == nil {
						mr.LatencyMS[p.prec] = map[string]float64{}
					}
					mr.LatencyMS[p.prec][fmt.Sprintf("batch%d", b)] = float64(d.Microseconds()) / 1000
				}
			}
		}
		ok := precision != PrecisionFP16 || mr.MaxAbsDiff <= FP16Tolerance*mr.MaxAbsFP32
		rep.Passed = rep.Passed && ok
		fmt.Fprintf(log, "export: %s: %s\n", mr.File, summaryLine(mr))
		rep.Models = append(rep.Models, mr)
		if ok {
			if err := os.Rename(tmp, dst); err != nil {
				return rep, fmt.Errorf("export: %w", err)
			}
			rep.Files = append(rep.Files, mr.File)
		}
	}
	rp := filepath.Join(dir, ReportFile(precision))
	rep.Files = append(rep.Files, ReportFile(precision))
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return rep, fmt.Errorf("export: %w", err)
	}
	if err := atomicfile.WriteFile(rp, append(b, '\n'), 0o644); err != nil {
		return rep, fmt.Errorf("export: %w", err)
	}
	if !rep.Passed {
		return rep, fmt.Errorf("export: fp16 outputs differ from fp32 by more than %g of the largest output; see %s", FP16Tolerance, rp)
	}
	return rep, nil
}

// repeatBatch is x's images repeated (cycling) or cut to a batch of n.
func repeatBatch(x infer.Tensor, n int) infer.Tensor {
	per := len(x.Data) / int(x.Shape[0])
	out := infer.Tensor{Shape: append([]int64{int64(n)}, x.Shape[1:]...), Data: make([]float32, n*per)}
	for i := range n {
		j := i % int(x.Shape[0])
		copy(out.Data[i*per:(i+1)*per], x.Data[j*per:(j+1)*per])
	}
	return out
}

func summaryLine(mr ModelReport) string {
	var parts []string
	if f := mr.Features; f != nil {
		parts = append(parts, fmt.Sprintf("features cosine mean %.5f, min %.5f", f.CosineMean, f.CosineMin))
	}
	if m := mr.Mask; m != nil {
		parts = append(parts, fmt.Sprintf("mask IoU %.4f, Dice %.4f", m.IoU, m.Dice))
	}
	parts = append(parts, fmt.Sprintf("max |diff| %.3g of max |fp32| %.3g on %d held-out images", mr.MaxAbsDiff, mr.MaxAbsFP32, mr.Images))
	if mr.RuntimeOps != nil {
		parts = append(parts, fmt.Sprintf("%d float convolutions left at run time", mr.FloatConvs))
	}
	return strings.Join(parts, "; ")
}
