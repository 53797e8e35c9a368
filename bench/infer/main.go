// Command infer compares ONNX Runtime (what `dira infer` runs) with PyTorch
// 1.13 eager on the same weights, for docs/benchmarks.md (section 3); it is a
// benchmark, not a test.
//
//	go run ./bench/infer [-threads 2] [-iters1 10] [-iters16 3]
//
// It builds the official network (ResNet-50 U-Net, smp decoder
// 256,128,64,32,16, sigmoid head) from a seed, exports encoder.onnx and
// unet.onnx (package export) and unet.pth, then times, at 224x224 and batch
// 1 and 16: ONNX Runtime on the CPU with -threads intra-op threads, and
// bench/infer/torch_bench.py (Debian's /usr/bin/python3, torch 1.13,
// torch.set_num_threads(threads)) running the reference U-Net
// (model/testdata/reference.py) loaded from unet.pth. Each measurement is one
// untimed warm-up call, then -iters1 (batch 1) or -iters16 (batch 16) timed
// calls. Both sides' outputs on the same input are compared, so the timings
// are of the same computation.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"time"

	"dira/export"
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
	flag.Parse()
	defer torch.Pin()() // gotch: tensor work on one OS thread
	if err := run(*threads, *iters1, *iters16, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "bench/infer:", err)
		os.Exit(1)
	}
}

func run(threads, iters1, iters16 int, dir string) error {
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

	var ortT []timing
	outputs := map[string][]float32{}
	for _, name := range []string{"encoder", "unet"} {
		m, err := infer.OpenModel(paths[name], infer.SessionOptions{Device: infer.DeviceCPU, Threads: threads})
		if err != nil {
			return err
		}
		for _, b := range []int{1, 16} {
			iters := map[int]int{1: iters1, 16: iters16}[b]
			t := timing{Model: name, Batch: b}
			xb := infer.Tensor{Shape: []int64{int64(b), 3, size, size}, Data: x[:b*3*size*size]}
			for i := range iters + 1 {
				start := time.Now()
				res, err := m.Session.Run(map[string]infer.Tensor{m.Input: xb})
				if err != nil {
					m.Close()
					return err
				}
				if i > 0 {
					t.Seconds = append(t.Seconds, time.Since(start).Seconds())
				} else {
					outputs[fmt.Sprintf("%s_%d", name, b)] = res[m.Output].Data
				}
			}
			fmt.Fprintf(os.Stderr, "onnxruntime %s batch %d: p50 %.1f ms\n", name, b, 1000*pct(t.Seconds, 50))
			ortT = append(ortT, t)
		}
		m.Close()
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
	return nil
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
