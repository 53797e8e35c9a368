package figure

import (
	"bytes"
	"encoding/json"
	"image"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var nan, inf = math.NaN(), math.Inf(1)

// edgeSeries are the data a figure must survive: nothing, one point, NaN
// and infinities mixed in, zeros, negatives, huge and tiny magnitudes.
var edgeSeries = []struct {
	name string
	x, y []float64
}{
	{"empty", nil, nil},
	{"single", []float64{1}, []float64{0.7}},
	{"single_zero", []float64{1}, []float64{0}},
	{"all_nan", []float64{1, 2, 3}, []float64{nan, nan, nan}},
	{"nan_mixed", []float64{1, 2, 3, 4}, []float64{0.5, nan, inf, 0.2}},
	{"nan_x", []float64{nan, 2, 3}, []float64{1, 2, 3}},
	{"zeros", []float64{1, 2, 3}, []float64{0, 0, 0}},
	{"negative", []float64{1, 2, 3}, []float64{-5, -0.25, -3}},
	{"crosses_zero", []float64{0, 1, 2}, []float64{-1, 0, 2}},
	{"huge", []float64{1, 2}, []float64{-1e308, 1e308}},
	{"tiny_flat", []float64{1, 2}, []float64{1e-9, 1e-9}},
	{"lengths_differ", []float64{1, 2, 3}, []float64{4}},
}

// TestPanelYRangeCoversItsSeries: every panel's linear y range holds all of
// its own drawable points and is a proper interval, whatever the data.
func TestPanelYRangeCoversItsSeries(t *testing.T) {
	for _, tc := range edgeSeries {
		t.Run(tc.name, func(t *testing.T) {
			pan := Panel{Title: tc.name, Series: []Series{
				{Name: "a", X: tc.x, Y: tc.y, Style: LinePoints},
				{Name: "b", X: []float64{1, 2}, Y: []float64{0.1, 0.3}}, // a second, ordinary series
			}}
			p, _, err := panelPlot(pan, colorsByName([]Panel{pan}))
			if err != nil {
				t.Fatal(err)
			}
			if !(p.Y.Min < p.Y.Max) || math.IsInf(p.Y.Min, 0) || math.IsInf(p.Y.Max, 0) {
				t.Fatalf("y range [%g, %g] is not a finite interval", p.Y.Min, p.Y.Max)
			}
			for _, s := range pan.Series {
				for _, pt := range finite(s.X, s.Y) {
					if pt.Y < p.Y.Min || pt.Y > p.Y.Max {
						t.Errorf("series %s point %g outside the y range [%g, %g]", s.Name, pt.Y, p.Y.Min, p.Y.Max)
					}
				}
			}
		})
	}
}

// TestPanelsOwnRanges: two panels of one figure keep separate y ranges (a
// loss near 6 and an MSE near 0.03 are both readable).
func TestPanelsOwnRanges(t *testing.T) {
	big := Panel{Series: []Series{{Name: "train", X: []float64{1, 2, 3}, Y: []float64{6.1, 5.9, 5.7}}}}
	small := Panel{Series: []Series{{Name: "train", X: []float64{1, 2, 3}, Y: []float64{0.05, 0.04, 0.03}}}}
	colors := colorsByName([]Panel{big, small})
	pb, _, err := panelPlot(big, colors)
	if err != nil {
		t.Fatal(err)
	}
	ps, _, err := panelPlot(small, colors)
	if err != nil {
		t.Fatal(err)
	}
	if pb.Y.Min < 5 || ps.Y.Max > 0.1 {
		t.Fatalf("panels share a range: loss [%g,%g], mse [%g,%g]", pb.Y.Min, pb.Y.Max, ps.Y.Min, ps.Y.Max)
	}
}

// decode checks b is a PNG of w x h pixels (0 = any) that is not blank.
func decode(t *testing.T, b []byte, w, h int) image.Image {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	sz := img.Bounds().Size()
	if (w > 0 && sz.X != w) || (h > 0 && sz.Y != h) {
		t.Fatalf("image is %dx%d, want %dx%d", sz.X, sz.Y, w, h)
	}
	nonWhite := 0
	for y := 0; y < sz.Y; y += 2 {
		for x := 0; x < sz.X; x += 2 {
			r, g, b, _ := img.At(x, y).RGBA()
			if r < 0xf000 || g < 0xf000 || b < 0xf000 {
				nonWhite++
			}
		}
	}
	if frac := float64(nonWhite) / float64(sz.X*sz.Y/4); frac < 0.005 {
		t.Fatalf("image is nearly blank: %.4f of pixels drawn", frac)
	}
	return img
}

// TestFiguresNeverPanic draws every figure kind with each edge case.
func TestFiguresNeverPanic(t *testing.T) {
	for _, tc := range edgeSeries {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Panels([]Panel{{Title: "p", Series: []Series{{Name: "s", X: tc.x, Y: tc.y}}}}, Options{XLabel: "epoch", EpochTicks: true})
			if err != nil {
				t.Fatal(err)
			}
			decode(t, b, 0, 0)
			b, err = ROC([]ROCCurve{{Name: "c", FPR: tc.x, TPR: tc.y}}, "roc")
			if err != nil {
				t.Fatal(err)
			}
			decode(t, b, 0, 0)
			var bars []Bar
			for i, y := range tc.y {
				bars = append(bars, Bar{Name: "init" + string(rune('a'+i)), Mean: y, Std: math.Abs(y) / 10, N: 3})
			}
			b, err = Comparison(bars, "auc", "cmp")
			if err != nil {
				t.Fatal(err)
			}
			decode(t, b, 0, 0)
			b, err = LearningCurves([]LearningCurve{{Name: "run 0", Epoch: tc.x, TrainLoss: tc.y, ValLoss: tc.y, Metric: tc.y}}, "auc", "lc")
			if err != nil {
				t.Fatal(err)
			}
			decode(t, b, 0, 0)
		})
	}
	t.Run("nothing", func(t *testing.T) {
		if _, err := Panels(nil, Options{}); err != ErrNoPanels {
			t.Fatalf("Panels(nil) = %v, want ErrNoPanels", err)
		}
		for name, draw := range map[string]func() ([]byte, error){
			"loss":       func() ([]byte, error) { return LossPanels(History{}, "") },
			"roc":        func() ([]byte, error) { return ROC(nil, "") },
			"comparison": func() ([]byte, error) { return Comparison(nil, "", "") },
			"learning":   func() ([]byte, error) { return LearningCurves(nil, "", "") },
		} {
			b, err := draw()
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			decode(t, b, 0, 0)
		}
	})
}

// TestPanelsLayout: panels go two to a row with the legend beside them, so
// the image size follows the panel count.
func TestPanelsLayout(t *testing.T) {
	s := []Series{{Name: "train", X: []float64{1, 2}, Y: []float64{1, 2}}}
	one, err := Panels([]Panel{{Series: s}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	four, err := Panels([]Panel{{Series: s}, {Series: s}, {Series: s}, {Series: s}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, b := decode(t, one, 0, 0).Bounds().Size(), decode(t, four, 0, 0).Bounds().Size()
	panelW, panelH := int(3.1*dpi), int(1.9*dpi)
	if b.X-a.X < panelW-2 || b.X-a.X > panelW+2 {
		t.Errorf("a second column added %d px, want a panel width of %d", b.X-a.X, panelW)
	}
	if b.Y-a.Y < panelH-2 || b.Y-a.Y > panelH+2 {
		t.Errorf("a second row added %d px, want a panel height of %d", b.Y-a.Y, panelH)
	}
}

func TestEpochTicks(t *testing.T) {
	for _, tc := range []struct {
		lo, hi    float64
		wantFirst string
		wantLast  string
		maxLabels int
	}{
		{0, 3, "0", "3", 4},
		{0, 10, "0", "10", 6},
		{0, 1, "0", "1", 2},
		{0, 137, "0", "120", 8},
		{0, 1200, "0", "1200", 8},
	} {
		var labels []string
		for _, tk := range (epochTicks{}).Ticks(tc.lo, tc.hi) {
			if tk.Value != math.Trunc(tk.Value) {
				t.Errorf("[%g,%g]: tick at %g is not a whole epoch", tc.lo, tc.hi, tk.Value)
			}
			if tk.Label != "" {
				labels = append(labels, tk.Label)
			}
		}
		if len(labels) == 0 || labels[0] != tc.wantFirst || labels[len(labels)-1] != tc.wantLast || len(labels) > tc.maxLabels {
			t.Errorf("[%g,%g]: labels %v, want %s..%s and at most %d", tc.lo, tc.hi, labels, tc.wantFirst, tc.wantLast, tc.maxLabels)
		}
	}
	if got := (epochTicks{}).Ticks(1, 1); got != nil {
		t.Errorf("empty range gave ticks %v", got)
	}
}

const metricsLines = `{"kind":"step","epoch":0,"step":1,"lr":0.03,"img_per_s":20,"loss":6,"nce":5.5,"mse":0.05}
{"kind":"step","epoch":0,"step":2,"lr":0.03,"img_per_s":21,"loss":5.8,"nce":5.4,"mse":0.04}
{"kind":"skipped","epoch":0,"step":2,"file":"bad.png","error":"png: invalid format"}
{"kind":"step","epoch":0,"step":3,"lr":0.03,"img_per_s":22,"loss":5.6,"nce":5.3,"mse":0.03,"note":"text is ignored"}
{"kind":"epoch","epoch":0,"step":3,"train":{"loss":5.8,"nce":5.4,"mse":0.04},"val_loss":5.9,"best_epoch":0}
{"kind":"future_kind","epoch":0,"step":3,"whatever":1}
not json at all

{"kind":"step","epoch":1,"step":4,"lr":0.02,"img_per_s":23,"loss":5.5,"nce":5.2,"mse":0.03,"new_term":0.5}
{"kind":"step","epoch":1,"step":5,"lr":0.02,"loss":null,"nce":5.1,"mse":0.02}
{"kind":"step","epoch":1,"step":6,"lr":0.02,"img_p`

func TestReadHistory(t *testing.T) {
	h, err := ReadHistory(strings.NewReader(metricsLines))
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Steps) != 5 || len(h.Epochs) != 1 || len(h.Skipped) != 1 {
		t.Fatalf("read %d steps, %d epochs, %d skipped; want 5, 1, 1", len(h.Steps), len(h.Epochs), len(h.Skipped))
	}
	if h.BadLines != 2 { // "not json at all" and the line cut off while written
		t.Errorf("BadLines = %d, want 2", h.BadLines)
	}
	// Epoch 0 is 3 steps long; epoch 1 is unfinished and taken to be as long.
	wantX := []float64{1.0 / 3, 2.0 / 3, 1, 1 + 1.0/3, 1 + 2.0/3}
	for i, s := range h.Steps {
		if math.Abs(s.X-wantX[i]) > 1e-12 {
			t.Errorf("step %d: X = %g, want %g", s.Step, s.X, wantX[i])
		}
	}
	if _, ok := h.Steps[2].Terms["note"]; ok {
		t.Error("a text value became a term")
	}
	if _, ok := h.Steps[4].Terms["loss"]; ok {
		t.Error("a null value became a term")
	}
	if !math.IsNaN(h.Steps[4].ImgPerS) {
		t.Errorf("absent img_per_s = %g, want NaN", h.Steps[4].ImgPerS)
	}
	if got := h.Epochs[0].Val["loss"]; got != 5.9 {
		t.Errorf("val_loss = %g", got)
	}
	if got, want := strings.Join(h.Terms(), ","), "loss,nce,mse,new_term"; got != want {
		t.Errorf("terms %s, want %s", got, want)
	}
	panels := h.TermPanels()
	if len(panels) != 4 {
		t.Fatalf("%d term panels, want 4", len(panels))
	}
	// The loss panel has the steps, the epoch means and the validation.
	var names []string
	for _, s := range panels[0].Series {
		names = append(names, s.Name)
	}
	if got := strings.Join(names, "|"); got != NameTrainStep+"|"+NameTrainEpoch+"|"+NameVal {
		t.Errorf("loss panel series %s", got)
	}
	if lr := h.LRPanel(); len(lr.Series[0].X) != 5 {
		t.Errorf("lr panel has %d points, want 5", len(lr.Series[0].X))
	}
}

// TestLossPNGFromMetrics reads a real-shaped metrics.jsonl: four term
// panels plus the learning rate in a 2-column grid.
func TestLossPNGFromMetrics(t *testing.T) {
	path := filepath.Join(t.TempDir(), "warmup", "metrics.jsonl")
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, []byte(metricsLines), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := LossPNGFromMetrics(path)
	if err != nil {
		t.Fatal(err)
	}
	img := decode(t, b, 0, 0)
	if h := img.Bounds().Dy(); h < 3*int(1.9*dpi) {
		t.Errorf("5 panels drawn %d px high, want 3 rows of %d", h, int(1.9*dpi))
	}
	if _, err := LossPNGFromMetrics(filepath.Join(t.TempDir(), "missing.jsonl")); err == nil || !strings.Contains(err.Error(), "missing.jsonl") {
		t.Errorf("missing file: error %v does not name it", err)
	}
}

// TestROCAgainstNumPy compares MeanROC with np.interp averaging and AUC
// with np.trapz, through /usr/bin/python3. Tolerance 1e-12.
func TestROCAgainstNumPy(t *testing.T) {
	curves := []ROCCurve{
		{"a", []float64{0, 0, 0.1, 0.1, 0.4, 0.7, 1}, []float64{0, 0.2, 0.2, 0.5, 0.8, 0.95, 1}},
		{"b", []float64{0, 0.25, 0.5, 0.5, 1}, []float64{0, 0.5, 0.6, 0.9, 1}},
		{"c", []float64{0, 1}, []float64{0, 1}},
	}
	fpr, tpr := MeanROC(curves, 50)
	in, _ := json.Marshal(curves)
	script := `
import json, sys, numpy as np
curves = json.loads(sys.stdin.read())
grid = np.linspace(0, 1, 51)
mean = np.mean([np.interp(grid, c["FPR"], c["TPR"]) for c in curves], axis=0)
aucs = [float(np.trapz(c["TPR"], c["FPR"])) for c in curves]
print(json.dumps({"grid": grid.tolist(), "mean": mean.tolist(), "auc": aucs}))
`
	cmd := exec.Command("/usr/bin/python3", "-c", script)
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3 reference: %v", err)
	}
	var ref struct{ Grid, Mean, AUC []float64 }
	if err := json.Unmarshal(out, &ref); err != nil {
		t.Fatal(err)
	}
	const tol = 1e-12
	worst := 0.0
	for i := range ref.Mean {
		worst = math.Max(worst, math.Abs(fpr[i]-ref.Grid[i]))
		worst = math.Max(worst, math.Abs(tpr[i]-ref.Mean[i]))
	}
	for i, c := range curves {
		worst = math.Max(worst, math.Abs(c.AUC()-ref.AUC[i]))
	}
	t.Logf("max |Go - NumPy| = %.3g (tolerance %g)", worst, tol)
	if worst > tol {
		t.Fatalf("max |Go - NumPy| = %g > %g", worst, tol)
	}
}

// TestReadableTicks: labels are distinct and print their values exactly
// (gonum's defaults printed 5.9 and 6.0 both as "6" on a demo run).
func TestReadableTicks(t *testing.T) {
	for _, r := range [][2]float64{{5.87, 6.22}, {0.015, 0.057}, {-3, 4.5}, {0, 1}, {1e-7, 3e-7}, {2e6, 9e6}, {6.3, 6.7}, {5.95, 6.25}} {
		ts := readableTicks{}.Ticks(r[0], r[1])
		seen := map[string]bool{}
		n := 0
		for _, tk := range ts {
			if tk.Label == "" {
				continue
			}
			n++
			if seen[tk.Label] {
				t.Errorf("%v: label %q twice", r, tk.Label)
			}
			seen[tk.Label] = true
			v, err := strconv.ParseFloat(tk.Label, 64)
			if err != nil || math.Abs(v-tk.Value) > 1e-9*math.Max(math.Abs(tk.Value), 1e-300) {
				t.Errorf("%v: label %q for tick %g", r, tk.Label, tk.Value)
			}
		}
		if n < 2 {
			t.Errorf("%v: %d labelled ticks", r, n)
		}
	}
}

// TestComparisonRange: the y axis holds every whisker, starts at 0 for
// results near 0, and below the data (not at 0) for close AUCs.
func TestComparisonRange(t *testing.T) {
	for _, tc := range []struct {
		name   string
		bars   []Bar
		atZero bool
	}{
		{"close_aucs", []Bar{{"dira", 0.81, 0.014, 2}, {"random", 0.71, nan, 1}, {"imagenet", 0.79, 0.01, 3}}, false},
		{"near_zero", []Bar{{"a", 0.1, 0.05, 3}, {"b", 0.9, 0.02, 3}}, true},
		{"negative", []Bar{{"a", -2, 0.5, 3}, {"b", 1, 0.2, 3}}, false},
		{"one", []Bar{{"a", 0.5, 0, 1}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := comparisonPlot(tc.bars, "auc", "")
			for _, b := range tc.bars {
				s := b.Std
				if math.IsNaN(s) {
					s = 0
				}
				if b.Mean-s < p.Y.Min || b.Mean+s > p.Y.Max {
					t.Errorf("%s: %g ± %g outside [%g, %g]", b.Name, b.Mean, s, p.Y.Min, p.Y.Max)
				}
			}
			if (p.Y.Min == 0) != tc.atZero {
				t.Errorf("axis starts at %g; want at zero: %v", p.Y.Min, tc.atZero)
			}
		})
	}
}
