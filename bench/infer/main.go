// Command infer compares ONNX Runtime (what `dira infer` runs) with PyTorch
// 1.13 eager on the same weights, and the int8 models (export.QuantizeInt8)
// with the fp32 ones, for docs/benchmarks.md (sections 3 and 4); it is a
// benchmark, not a test.
//
//	go run ./bench/infer [-threads 2] [-iters1 10] [-iters16 3] [-calib 32] [-method minmax] [-profile DIR]
//
// It builds the official network (ResNet-50 U-Net, smp decoder
// 256,128,64,32,16, sigmoid head) from a seed, exports encoder.onnx and
// unet.onnx (package export) and unet.pth, quantizes both ONNX files to int8
// (calibrated on -calib synthetic radiographs, data.DrawRadiograph) and
// converts them to fp16, then times, at 224x224 and batch 1 and 16: ONNX
// Runtime fp32 and int8 on the CPU with -threads intra-op threads, and
// bench/infer/torch_bench.py (Debian's /usr/bin/python3, torch 1.13,
// torch.set_num_threads(threads)) running the reference U-Net
// (model/testdata/reference.py) loaded from unet.pth. Each measurement is one
// untimed warm-up call, then -iters1 (batch 1) or -iters16 (batch 16) timed
// calls (ONNX Runtime: the fp32 block right before the int8 block). Both
// fp32 runtimes' outputs on the same input are compared, so the
// timings are of the same computation; int8 and fp16 are compared with fp32
// on 16 other synthetic radiographs (features cosine, mask IoU/Dice, max
// difference). With -profile, ONNX Runtime's profiler records one timed
// batch-1 run of each int8 and fp32 encoder, and the time per op type is
// printed.
package main

import (
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"dira/data"
	"dira/export"
	"dira/export/onnxpb"
	"dira/infer"
	"dira/internal/atomicfile"
	"dira/internal/npy"
	"dira/internal/torch"
	"dira/model"
)

// timing is one (model, batch) measurement of one runtime.
type timing struct {
	Model   string    `json:"model"`
	Batch   int       `json:"batch"`
	Seconds []float64 `json:"seconds"` // per timed call
	MaxDiff float64   `json:"-"`
}

func main() {
	threads := flag.Int("threads", 2, "intra-op threads for both runtimes")
	iters1 := flag.Int("iters1", 10, "timed calls at batch 1")
	iters16 := flag.Int("iters16", 3, "timed calls at batch 16")
	keep := flag.String("dir", "", "work folder (default: a temporary one, removed after)")
	calib := flag.Int("calib", 32, "int8 calibration images (synthetic radiographs)")
	method := flag.String("method", export.CalibMinMax, "int8 calibration method: minmax or percentile")
	profile := flag.String("profile", "", "folder for ONNX Runtime profiles of the encoders at batch 1 (default: none)")
	flag.Parse()
	defer torch.Pin()() // gotch: tensor work on one OS thread
	q := export.QuantOptions{Method: *method, Count: *calib, Session: infer.SessionOptions{Threads: *threads}}
	if err := run(*threads, *iters1, *iters16, *keep, q, *profile); err != nil {
		fmt.Fprintln(os.Stderr, "bench/infer:", err)
		os.Exit(1)
	}
}

func run(threads, iters1, iters16 int, dir string, q export.QuantOptions, profile string) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "dira-bench-infer-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	const size = 224
	if err := torch.SetThreads(threads); err != nil {
		return err
	}
	u, ps, err := model.NewUNet(model.DefaultConfig(), 1)
	if err != nil {
		return err
	}
	defer ps.Drop()
	opts := export.Options{Height: size, Width: size, Stage: "bench", Epoch: 0, ConfigHash: "bench"}
	paths := map[string]string{"encoder": filepath.Join(dir, "encoder.onnx"), "unet": filepath.Join(dir, "unet.onnx")}
	writers := map[string]func(io.Writer) error{
		"encoder": func(w io.Writer) error { return export.WriteEncoder(w, u, opts) },
		"unet":    func(w io.Writer) error { return export.WriteUNet(w, u, opts) },
	}
	for name, w := range writers {
		if err := atomicfile.Write(paths[name], 0o644, w); err != nil {
			return err
		}
	}
	sd, err := ps.StateDict("")
	if err != nil {
		return err
	}
	pth := filepath.Join(dir, "unet.pth")
	if err := atomicfile.Write(pth, 0o644, func(w io.Writer) error { return export.WritePTH(w, sd) }); err != nil {
		return err
	}
	// One input batch of 16 images; batch 1 is its first image.
	r := rand.New(rand.NewPCG(3, 4))
	x := make([]float32, 16*3*size*size)
	for i := range x {
		x[i] = r.Float32()
	}
	in := filepath.Join(dir, "input.npy")
	if err := atomicfile.Write(in, 0o644, func(w io.Writer) error {
		return npy.Write(w, npy.Array{Shape: []int{16, 3, size, size}, Data: x})
	}); err != nil {
		return err
	}

	lib, err := infer.FindLibrary("", "")
	if err != nil {
		return err
	}
	if err := infer.Start(lib); err != nil {
		return err
	}
	defer infer.Stop()
	fmt.Printf("machine: %d cores (GOMAXPROCS %d), %d threads per runtime, ONNX Runtime %s, input %dx%d\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), threads, infer.Version(), size, size)

	so := infer.SessionOptions{Device: infer.DeviceCPU, Threads: threads}

	// int8 and fp16 copies of both models; agreement with fp32 on held-out
	// synthetic radiographs (not the calibration ones).
	calib := data.NewSynthetic(q.Count, size, 1, 0)
	held := data.NewSynthetic(16, size, 1, 1000)
	hx := infer.Tensor{Shape: []int64{16, 3, size, size}, Data: make([]float32, 16*3*size*size)}
	for i := range held.Len() {
		img, err := held.Load(i)
		if err != nil {
			return err
		}
		copy(hx.Data[i*3*size*size:], infer.Preprocess(img, size, size))
	}
	var agreeLines []string
	for _, name := range []string{"encoder", "unet"} {
		kind := export.Kind(name)
		m, err := export.ReadModel(paths[name])
		if err != nil {
			return err
		}
		start := time.Now()
		qm, sum, err := export.QuantizeInt8(m, calib, q)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "quantized %s in %.1f s: %v, float %v\n", name, time.Since(start).Seconds(), sum.Quantized, sum.Float)
		hm, err := export.ToFP16(m)
		if err != nil {
			return err
		}
		for prec, mm := range map[string]*onnxpb.ModelProto{"int8": qm, "fp16": hm} {
			p := filepath.Join(dir, export.PrecisionFile(kind, prec))
			if err := atomicfile.Write(p, 0o644, func(w io.Writer) error { return export.WriteModel(w, mm) }); err != nil {
				return err
			}
			paths[name+"."+prec] = p
		}
		for _, prec := range []string{"int8", "fp16"} {
			g, err := export.Compare(paths[name], paths[name+"."+prec], kind, hx, so)
			if err != nil {
				return err
			}
			line := fmt.Sprintf("%s %s vs fp32 on %d held-out radiographs: max |diff| %.3g (max |fp32| %.3g, mean |diff| %.3g)",
				name, prec, g.Images, g.MaxAbsDiff, g.MaxAbsFP32, g.MeanAbsDiff)
			if f := g.Features; f != nil {
				line += fmt.Sprintf(", features cosine mean %.5f, min %.5f", f.CosineMean, f.CosineMin)
			}
			if k := g.Mask; k != nil {
				line += fmt.Sprintf(", mask IoU %.4f, Dice %.4f at %.1f", k.IoU, k.Dice, export.MaskThreshold)
			}
			agreeLines = append(agreeLines, line)
		}
		ops, floatConvs, err := export.RuntimeOps(paths[name+".int8"], so)
		if err != nil {
			return err
		}
		agreeLines = append(agreeLines, fmt.Sprintf("%s int8: ONNX Runtime's optimised graph: %s; float convolutions: %d", name, opsString(ops), floatConvs))
	}

	// Per model and batch size, the fp32 block of calls runs right before
	// the int8 block: close in time, but each session's weights stay warm
	// in the caches during its own block (alternating single calls made
	// both slower).
	var ortT, int8T []timing
	outputs := map[string][]float32{}
	for _, name := range []string{"encoder", "unet"} {
		fp, err := infer.OpenModel(paths[name], so)
		if err != nil {
			return err
		}
		q8, err := infer.OpenModel(paths[name+".int8"], so)
		if err != nil {
			fp.Close()
			return err
		}
		for _, b := range []int{1, 16} {
			iters := map[int]int{1: iters1, 16: iters16}[b]
			xb := infer.Tensor{Shape: []int64{int64(b), 3, size, size}, Data: x[:b*3*size*size]}
			var ts [2]timing
			for k, m := range []*infer.Model{fp, q8} {
				ts[k] = timing{Model: name, Batch: b}
				for i := range iters + 1 {
					start := time.Now()
					res, err := m.Session.Run(map[string]infer.Tensor{m.Input: xb})
					if err != nil {
						fp.Close()
						q8.Close()
						return err
					}
					if i > 0 {
						ts[k].Seconds = append(ts[k].Seconds, time.Since(start).Seconds())
					} else if m == fp {
						outputs[fmt.Sprintf("%s_%d", name, b)] = res[m.Output].Data
					}
				}
			}
			fmt.Fprintf(os.Stderr, "onnxruntime %s batch %d: fp32 p50 %.1f ms, int8 p50 %.1f ms\n", name, b, 1000*pct(ts[0].Seconds, 50), 1000*pct(ts[1].Seconds, 50))
			ortT, int8T = append(ortT, ts[0]), append(int8T, ts[1])
		}
		fp.Close()
		q8.Close()
	}
	var profLines []string
	if profile != "" {
		for _, prec := range []string{"fp32", "int8"} {
			path := paths["encoder"]
			if prec == "int8" {
				path = paths["encoder.int8"]
			}
			line, err := profileOnce(path, prec, profile, infer.Tensor{Shape: []int64{1, 3, size, size}, Data: x[:3*size*size]}, so)
			if err != nil {
				return err
			}
			profLines = append(profLines, line)
		}
	}

	res := filepath.Join(dir, "torch.json")
	cmd := exec.Command("/usr/bin/python3", "bench/infer/torch_bench.py", pth, in, res,
		strconv.Itoa(threads), strconv.Itoa(iters1), strconv.Itoa(iters16))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("torch_bench.py: %w", err)
	}
	b, err := os.ReadFile(res)
	if err != nil {
		return err
	}
	var torchT []timing
	if err := json.Unmarshal(b, &torchT); err != nil {
		return err
	}
	for i := range torchT {
		f, err := os.Open(filepath.Join(dir, fmt.Sprintf("torch_%s_%d.npy", torchT[i].Model, torchT[i].Batch)))
		if err != nil {
			return err
		}
		a, err := npy.Read(f)
		f.Close()
		if err != nil {
			return err
		}
		ort := outputs[fmt.Sprintf("%s_%d", torchT[i].Model, torchT[i].Batch)]
		for j, v := range a.Float32() {
			torchT[i].MaxDiff = math.Max(torchT[i].MaxDiff, math.Abs(float64(v-ort[j])))
		}
	}

	fmt.Println()
	fmt.Println("| model | batch | ONNX Runtime p50 / p95 (ms) | images/s | PyTorch 1.13 eager p50 / p95 (ms) | images/s | ORT time / PyTorch time | max abs diff |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	for i, o := range ortT {
		p := torchT[i]
		if p.Model != o.Model || p.Batch != o.Batch {
			return fmt.Errorf("torch_bench.py measured %s/%d where %s/%d was expected", p.Model, p.Batch, o.Model, o.Batch)
		}
		fmt.Printf("| %s | %d | %.1f / %.1f | %.2f | %.1f / %.1f | %.2f | %.2f | %.1e |\n",
			o.Model, o.Batch, 1000*pct(o.Seconds, 50), 1000*pct(o.Seconds, 95), rate(o),
			1000*pct(p.Seconds, 50), 1000*pct(p.Seconds, 95), rate(p), pct(o.Seconds, 50)/pct(p.Seconds, 50), p.MaxDiff)
	}
	fmt.Println()
	fmt.Printf("int8: %s calibration on %d synthetic radiographs\n\n", q.Method, q.Count)
	fmt.Println("| model | batch | ORT fp32 p50 / p95 (ms) | images/s | ORT int8 p50 / p95 (ms) | images/s | int8 time / fp32 time (p50) | PyTorch eager fp32 p50 (ms) | int8 time / PyTorch time (p50) |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	for i, o := range ortT {
		n, p := int8T[i], torchT[i]
		fmt.Printf("| %s | %d | %.1f / %.1f | %.2f | %.1f / %.1f | %.2f | %.2f | %.1f | %.2f |\n",
			o.Model, o.Batch, 1000*pct(o.Seconds, 50), 1000*pct(o.Seconds, 95), rate(o),
			1000*pct(n.Seconds, 50), 1000*pct(n.Seconds, 95), rate(n), pct(n.Seconds, 50)/pct(o.Seconds, 50),
			1000*pct(p.Seconds, 50), pct(n.Seconds, 50)/pct(p.Seconds, 50))
	}
	fmt.Println()
	for _, l := range append(agreeLines, profLines...) {
		fmt.Println("- " + l)
	}
	return nil
}

// opsString lists op counts sorted by name.
func opsString(ops map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(ops)) {
		parts = append(parts, fmt.Sprintf("%s x%d", k, ops[k]))
	}
	return strings.Join(parts, ", ")
}

// profileOnce runs the model at path on x twice (the first untimed) with
// ONNX Runtime's profiler on, and sums the second run's node times by op
// type.
func profileOnce(path, prec, dir string, x infer.Tensor, so infer.SessionOptions) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	so.ProfilePrefix = filepath.Join(dir, "encoder-"+prec)
	s, err := infer.NewSession(path, so)
	if err != nil {
		return "", err
	}
	for range 2 {
		if _, err := s.Run(map[string]infer.Tensor{s.InputNames()[0]: x}); err != nil {
			s.Close()
			return "", err
		}
	}
	s.Close()
	files, err := filepath.Glob(so.ProfilePrefix + "*.json")
	if err != nil || len(files) == 0 {
		return "", fmt.Errorf("no profile %s*.json (%v)", so.ProfilePrefix, err)
	}
	b, err := os.ReadFile(files[len(files)-1])
	if err != nil {
		return "", err
	}
	var events []struct {
		Cat  string  `json:"cat"`
		Name string  `json:"name"`
		Dur  float64 `json:"dur"`
		Args struct {
			OpName string `json:"op_name"`
		} `json:"args"`
	}
	if err := json.Unmarshal(b, &events); err != nil {
		return "", fmt.Errorf("profile %s: %w", files[0], err)
	}
	// Each node runs once per call; keep the second (timed) call's events:
	// the last half of the kernel events.
	var kernels []int
	for i, e := range events {
		if e.Cat == "Node" && strings.HasSuffix(e.Name, "_kernel_time") {
			kernels = append(kernels, i)
		}
	}
	byOp := map[string]float64{}
	var total float64
	for _, i := range kernels[len(kernels)/2:] {
		byOp[events[i].Args.OpName] += events[i].Dur
		total += events[i].Dur
	}
	ops := slices.SortedFunc(maps.Keys(byOp), func(a, b string) int { return cmp.Compare(byOp[b], byOp[a]) })
	var parts []string
	for _, op := range ops {
		parts = append(parts, fmt.Sprintf("%s %.1f ms (%.0f%%)", op, byOp[op]/1000, 100*byOp[op]/total))
	}
	return fmt.Sprintf("profile, %s encoder, batch 1 (%s): kernels %.1f ms: %s", prec, files[len(files)-1], total/1000, strings.Join(parts, ", ")), nil
}

// pct is the q-th percentile by nearest rank.
func pct(s []float64, q float64) float64 {
	s = slices.Sorted(slices.Values(s))
	k := int(math.Ceil(q/100*float64(len(s)))) - 1
	return s[max(k, 0)]
}

// rate is images per second over all timed calls.
func rate(t timing) float64 {
	var sum float64
	for _, s := range t.Seconds {
		sum += s
	}
	return float64(t.Batch*len(t.Seconds)) / sum
}
