package stages

import (
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"dira/data"
	"dira/export"
	"dira/figure"
	"dira/infer"
	"dira/internal/atomicfile"
	"dira/pipeline"
	"dira/report"
)

// writeComparison writes the stage's results.json (every trial, and mean and
// population std per initialisation), comparison.md and comparison.png (the
// paper's figure for this run), and the task's own figure: roc.png for
// classification, overlays.png for segmentation.
func writeComparison(dir string, t task, res report.Results, trials []trialResult) error {
	res.Summary = report.Summarize(res.Trials)
	if err := writeJSON(filepath.Join(dir, "results.json"), res); err != nil {
		return err
	}
	var bars []figure.Bar
	var md strings.Builder
	fmt.Fprintf(&md, "# %s: %s by initialisation\n\n", res.Task, res.Metric)
	fmt.Fprintf(&md, "Test %s (mean ± population std over trials), %s.\n\n", res.Metric, res.Dataset)
	fmt.Fprintf(&md, "| initialisation | label fraction | trials | %s |\n|---|---|---|---|\n", res.Metric)
	for _, s := range res.Summary {
		mean, std := deref(s.Mean), deref(s.Std)
		bars = append(bars, figure.Bar{Name: s.Init, Mean: mean, Std: std, N: s.N})
		fmt.Fprintf(&md, "| %s | %g%% | %d | %.4f ± %.4f |\n", s.Init, s.LabelFraction*100, s.N, mean, std)
	}
	if len(res.Classes) > 0 {
		fmt.Fprintf(&md, "\nPer class (mean over trials):\n\n| class |")
		for _, s := range res.Summary {
			fmt.Fprintf(&md, " %s |", s.Init)
		}
		md.WriteString("\n|---|" + strings.Repeat("---|", len(res.Summary)) + "\n")
		for c, name := range res.Classes {
			fmt.Fprintf(&md, "| %s |", name)
			for _, s := range res.Summary {
				if c < len(s.PerClassMean) && s.PerClassMean[c] != nil {
					fmt.Fprintf(&md, " %.4f |", *s.PerClassMean[c])
				} else {
					md.WriteString(" undefined |")
				}
			}
			md.WriteString("\n")
		}
	}
	for _, tr := range trials {
		if tr.Note != "" {
			fmt.Fprintf(&md, "\n- %s trial %d: %s", tr.Init, tr.Run+1, tr.Note)
		}
	}
	md.WriteString("\n")
	if err := atomicfile.WriteFile(filepath.Join(dir, "comparison.md"), []byte(md.String()), 0o644); err != nil {
		return err
	}
	png, err := figure.Comparison(bars, res.Metric, fmt.Sprintf("%s: test %s by initialisation", res.Task, res.Metric))
	if err != nil {
		return fmt.Errorf("comparison.png: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "comparison.png"), png, 0o644); err != nil {
		return err
	}
	best := bestTrial(trials)
	switch tk := t.(type) {
	case *classifyTask:
		if best == nil {
			return nil
		}
		var curves []figure.ROCCurve
		for _, p := range best.ROC {
			curves = append(curves, figure.ROCCurve{Name: p.Class, FPR: p.FPR, TPR: p.TPR})
		}
		b, err := figure.ROC(curves, fmt.Sprintf("ROC, %s trial %d (best validation loss)", best.Init, best.Run+1))
		if err != nil {
			return fmt.Errorf("roc.png: %w", err)
		}
		return atomicfile.WriteFile(filepath.Join(dir, "roc.png"), b, 0o644)
	case *segmentTask:
		return writeOverlays(filepath.Join(dir, "overlays.png"), trials, tk)
	}
	return nil
}

// bestTrial is the finished trial with the lowest best validation loss: the
// one exported. nil when no trial finished.
func bestTrial(trials []trialResult) *trialResult {
	var best *trialResult
	for i := range trials {
		t := &trials[i]
		if t.Score == nil || t.Error != "" {
			continue
		}
		if best == nil || t.ValLoss < best.ValLoss {
			best = t
		}
	}
	return best
}

// writeOverlays draws, for the first trial of each initialisation, a row per
// test image: the input, the true mask and the predicted mask over the input
// (green truth, red prediction).
func writeOverlays(path string, trials []trialResult, tk *segmentTask) error {
	var rows []overlaySample
	seen := map[string]bool{}
	for _, t := range trials {
		if seen[t.Init] {
			continue
		}
		seen[t.Init] = true
		for _, s := range tk.samples {
			if s.Trial == t.Dir {
				rows = append(rows, s)
			}
		}
	}
	if len(rows) == 0 {
		return nil
	}
	h, w := rows[0].H, rows[0].W
	const gap = 2
	img := image.NewRGBA(image.Rect(0, 0, 3*w+2*gap, len(rows)*(h+gap)-gap))
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	gray := func(v float32) uint8 { return uint8(math.Round(float64(max(0, min(1, v))) * 255)) }
	for r, s := range rows {
		y0 := r * (h + gap)
		for y := range h {
			for x := range w {
				v := gray(s.Gray[y*w+x])
				img.Set(x, y0+y, color.RGBA{v, v, v, 255})
				t := s.Truth[y*w+x] > 0.5
				p := s.Pred[y*w+x] > 0.5
				tc := color.RGBA{v, v, v, 255}
				if t {
					tc = color.RGBA{v / 2, 128 + v/2, v / 2, 255}
				}
				img.Set(w+gap+x, y0+y, tc)
				pc := color.RGBA{v, v, v, 255}
				if p {
					pc = color.RGBA{128 + v/2, v / 2, v / 2, 255}
				}
				img.Set(2*(w+gap)+x, y0+y, pc)
			}
		}
	}
	return atomicfile.Write(path, 0o644, func(wr io.Writer) error { return png.Encode(wr, img) })
}

// export writes the best trial's network (lowest validation loss over every
// initialisation and trial) as classifier.onnx or segmenter.onnx, checked in
// ONNX Runtime against the Go forward, with export-report.json.
func (f *FineTune) export(r *pipeline.Run, dir string, trials []trialResult) error {
	best := bestTrial(trials)
	if best == nil {
		return fmt.Errorf("export: no trial finished, nothing to export")
	}
	pre := (*pretrained)(nil) // the weights come from the trial's best.ckpt
	st, err := f.newState(best.Init, best.Run, best.Seed, pre)
	if err != nil {
		return err
	}
	defer st.close()
	if err := st.loadWeights(filepath.Join(best.Dir, "best.ckpt")); err != nil {
		return err
	}
	d := f.ft.Data
	norm, err := data.ParseNormalization(d.Normalization)
	if err != nil {
		return err
	}
	o := export.FineTunedOptions{
		Options:       export.Options{Height: d.ImageSize, Width: d.ImageSize, Stage: f.kind, Epoch: best.BestEpoch},
		Normalization: export.Normalization{Name: norm.Name, Mean: norm.Mean, Std: norm.Std},
		Task:          d.Task,
		ResizeSize:    d.ResizeSize,
		ResizeShorter: d.ResizeShorter,
	}
	var net any
	var write func(io.Writer) error
	switch n := st.net.(type) {
	case *classifier:
		o.Labels, o.MultiClass = f.task.(*classifyTask).classes, n.multi
		net = n.net
		write = func(w io.Writer) error { return export.WriteClassifier(w, n.net, o) }
	case *segmenter:
		net = n.u
		write = func(w io.Writer) error { return export.WriteSegmenter(w, n.u, o) }
	}
	name := f.task.exportName()
	tmp := filepath.Join(dir, "."+name+".tmp")
	defer os.Remove(tmp)
	if err := atomicfile.Write(tmp, 0o644, write); err != nil {
		return fmt.Errorf("export %s: %w", name, err)
	}
	lib, err := infer.FindLibrary(f.ortLib, "")
	if err != nil {
		return err
	}
	if err := infer.Start(lib); err != nil {
		return err
	}
	defer infer.Stop()
	x := export.RandomInput(2, d.ImageSize, d.ImageSize, f.cfg.Run.Seed)
	c, err := export.VerifyFineTuned(tmp, net, o, x, infer.SessionOptions{Device: "cpu", Threads: f.cfg.Run.Threads})
	if err != nil {
		return err
	}
	c.File = name
	rep := fineTunedReport{Model: name, Init: best.Init, Trial: best.Run + 1, Epoch: best.BestEpoch, ValLoss: best.ValLoss,
		Score: best.Score, Metric: f.task.metric(), Tolerance: f.ft.Tolerance, Check: c, Passed: c.MaxAbsDiff <= f.ft.Tolerance}
	fmt.Fprintf(r.Log, "%s: %s (init %s trial %d): ONNX Runtime vs Go max |diff| %.3g (tolerance %g)\n",
		f.kind, name, best.Init, best.Run+1, c.MaxAbsDiff, f.ft.Tolerance)
	if err := writeJSON(filepath.Join(dir, "export-report.json"), rep); err != nil {
		return err
	}
	if !rep.Passed {
		return fmt.Errorf("export %s: ONNX Runtime and the Go forward differ by %.3g, more than %g; not written", name, c.MaxAbsDiff, f.ft.Tolerance)
	}
	final := filepath.Join(dir, name)
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if err := r.RecordArtifact(f.kind, final); err != nil {
		return err
	}
	return r.RecordArtifact(f.kind, filepath.Join(dir, "export-report.json"))
}

// fineTunedReport is a fine-tuning stage's export-report.json.
type fineTunedReport struct {
	Model     string       `json:"model"`
	Init      string       `json:"init"`
	Trial     int          `json:"trial"`
	Epoch     int          `json:"epoch"` // best epoch (from 0)
	ValLoss   float64      `json:"val_loss"`
	Score     *float64     `json:"score"`
	Metric    string       `json:"metric"`
	Tolerance float64      `json:"tolerance"`
	Check     export.Check `json:"check"`
	Passed    bool         `json:"passed"`
}

// writeJSON writes v as indented JSON, atomically.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return atomicfile.WriteFile(path, append(b, '\n'), 0o644)
}

func deref(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}
