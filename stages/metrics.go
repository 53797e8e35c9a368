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
	"sort"
	"strings"
	"time"

	"github.com/sugarme/gotch/ts"

	"dira/figure"
	"dira/internal/atomicfile"
	"dira/internal/torch"
)

// metricsLog is a stage's metrics.jsonl, one JSON object per line: "step"
// records (losses, lr, speed), "epoch" records (mean training losses,
// validation loss, best epoch) and "skipped" records (unreadable images).
type metricsLog struct {
	path string
	f    *os.File
}

// epochPoint is an epoch record's summary.
type epochPoint struct {
	Epoch     int                `json:"epoch"`
	TrainLoss map[string]float64 `json:"train"`
	ValLoss   float64            `json:"val_loss"`
}

// openMetrics opens dir/metrics.jsonl for appending, first dropping the
// records past the resumed position (step records after step, epoch records
// of epoch and later) so a resumed run's log reads as an uninterrupted one.
func openMetrics(dir string, step int64, epoch int) (*metricsLog, error) {
	path := filepath.Join(dir, "metrics.jsonl")
	if old, err := os.ReadFile(path); err == nil {
		var keep []string
		for _, line := range strings.Split(strings.TrimSpace(string(old)), "\n") {
			var rec struct {
				Kind  string `json:"kind"`
				Step  int64  `json:"step"`
				Epoch int    `json:"epoch"`
			}
			if json.Unmarshal([]byte(line), &rec) != nil {
				continue
			}
			if (rec.Kind == "step" && rec.Step <= step) || (rec.Kind == "epoch" && rec.Epoch < epoch) ||
				(rec.Kind == "skipped" && rec.Step < step) {
				keep = append(keep, line)
			}
		}
		body := strings.Join(keep, "\n")
		if body != "" {
			body += "\n"
		}
		if err := atomicfile.WriteFile(path, []byte(body), 0o644); err != nil {
			return nil, err
		}
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	return &metricsLog{path: path, f: f}, nil
}

// log appends one record.
func (m *metricsLog) log(rec map[string]any) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("metrics %s: %w", m.path, err)
	}
	if _, err := m.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("metrics %s: %w", m.path, err)
	}
	return nil
}

func (m *metricsLog) close() error { return m.f.Close() }

// writePlots redraws <stage>/loss.png from metrics.jsonl: one small panel per
// loss term (per-step values, epoch means and the validation value on its
// own linear axis), and the learning rate (package figure).
func writePlots(dir string) error {
	b, err := figure.LossPNGFromMetrics(filepath.Join(dir, "metrics.jsonl"))
	if err != nil {
		return fmt.Errorf("loss.png: %w", err)
	}
	return atomicfile.WriteFile(filepath.Join(dir, "loss.png"), b, 0o644)
}

// writeSamples writes samples/epoch_NNN.png: for up to 4 validation images a
// row of input (view 1 as the network sees it) | restoration | target, so a
// person can watch restoration improve.
func writeSamples(dir string, epoch int, q, rec, target *ts.Tensor) (err error) {
	defer torch.Catch("samples", &err)
	sz := torch.Size(q)
	n, h, w := int(min(sz[0], 4)), int(sz[2]), int(sz[3])
	qv, rv, tv := torch.Float32s(q), torch.Float32s(rec), torch.Float32s(target)
	const gap = 2
	img := image.NewGray(image.Rect(0, 0, 3*w+2*gap, n*h+(n-1)*gap))
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	put := func(vals []float32, planeOff, col, row int) {
		for y := range h {
			for x := range w {
				v := vals[planeOff+y*w+x]
				img.SetGray(col*(w+gap)+x, row*(h+gap)+y, color.Gray{Y: uint8(math.Round(float64(clamp01(v)) * 255))})
			}
		}
	}
	for i := range n {
		put(qv, i*3*h*w, 0, i) // channel 0 of the 3 identical gray channels
		put(rv, i*h*w, 1, i)
		put(tv, i*h*w, 2, i)
	}
	dir = filepath.Join(dir, "samples")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, fmt.Sprintf("epoch_%03d.png", epoch+1)), 0o644, func(wr io.Writer) error {
		return png.Encode(wr, img)
	})
}

func clamp01(v float32) float32 { return max(0, min(1, v)) }

// progress reports training: a bar redrawn in place on a terminal, plain
// lines otherwise (one per epoch and every few seconds).
type progress struct {
	w          io.Writer
	tty        bool
	stage      string
	epochs     int
	steps      int
	start      time.Time
	lastLine   time.Time
	stepsSoFar int
}

func newProgress(w io.Writer, stage string, epochs, steps int) *progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil {
			tty = st.Mode()&os.ModeCharDevice != 0
		}
	}
	return &progress{w: w, tty: tty, stage: stage, epochs: epochs, steps: steps, start: time.Now()}
}

func formatLosses(l map[string]float64) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%.4g", k, l[k])
	}
	return b.String()
}

func (p *progress) step(epoch, batch int, imgPerS float64, losses map[string]float64) {
	p.stepsSoFar++
	total := p.epochs * p.steps
	done := epoch*p.steps + batch
	eta := time.Duration(0)
	if p.stepsSoFar > 0 {
		per := time.Since(p.start) / time.Duration(p.stepsSoFar)
		eta = per * time.Duration(total-done)
	}
	line := fmt.Sprintf("%s epoch %d/%d step %d/%d %.1f img/s ETA %s%s", p.stage, epoch+1, p.epochs, batch, p.steps, imgPerS, eta.Round(time.Second), formatLosses(losses))
	if p.tty {
		const width = 20
		filled := width * done / max(total, 1)
		fmt.Fprintf(p.w, "\r[%s%s] %s\x1b[K", strings.Repeat("#", filled), strings.Repeat(".", width-filled), line)
		return
	}
	if time.Since(p.lastLine) >= 10*time.Second {
		fmt.Fprintln(p.w, line)
		p.lastLine = time.Now()
	}
}

func (p *progress) epoch(epoch int, pt epochPoint) {
	if p.tty {
		fmt.Fprintln(p.w)
	}
	val := "no validation set"
	if !math.IsNaN(pt.ValLoss) {
		val = fmt.Sprintf("val loss %.4g", pt.ValLoss)
	}
	fmt.Fprintf(p.w, "%s epoch %d/%d done: train%s, %s\n", p.stage, epoch+1, p.epochs, formatLosses(pt.TrainLoss), val)
}

func (p *progress) done() {
	fmt.Fprintf(p.w, "%s: finished in %s\n", p.stage, time.Since(p.start).Round(time.Second))
}
