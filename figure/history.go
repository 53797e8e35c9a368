package figure

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
)

// History is a training stage's metrics.jsonl read as curves. The file has
// one JSON object per line, told apart by "kind":
//
//	{"kind":"step","epoch":E,"step":S,"lr":..,"img_per_s":..,"loss":..,"nce":..}
//	{"kind":"epoch","epoch":E,"step":S,"train":{"loss":..,..},"val_loss":..,"best_epoch":B}
//	{"kind":"skipped","epoch":E,"step":S,"file":..,"error":..}
//
// E counts from 0 and S is the global step after the logged one. In a step
// record every number other than epoch, step, lr and img_per_s is a
// training term; in an epoch record "train" holds the epoch's mean of each
// term and every "val_<term>" number a validation value. Other kinds,
// non-numeric values and lines that are not JSON (a line being written
// while the file is read) are skipped, so a stage can log more without
// breaking its readers.
type History struct {
	Steps   []StepRecord
	Epochs  []EpochRecord // one per epoch (the last line wins), by epoch
	Skipped []SkipRecord
	// BadLines counts the non-empty lines that were not JSON objects.
	BadLines int
}

// StepRecord is a "step" line.
type StepRecord struct {
	Epoch   int
	Step    int64
	X       float64 // position in epochs: Epoch plus the fraction of it done
	LR      float64 // NaN when absent
	ImgPerS float64 // NaN when absent
	Terms   map[string]float64
}

// EpochRecord is an "epoch" line. X of its values is Epoch+1: the end of
// the epoch.
type EpochRecord struct {
	Epoch     int
	Step      int64
	Train     map[string]float64
	Val       map[string]float64 // val_loss is Val["loss"]
	BestEpoch int                // -1 when absent
}

// SkipRecord is a "skipped" line: an unreadable image the loader passed over.
type SkipRecord struct {
	Epoch int
	Step  int64
	File  string
	Error string
}

// ReadHistory reads a metrics.jsonl stream.
func ReadHistory(r io.Reader) (History, error) {
	var h History
	epochs := map[int]EpochRecord{}
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			h.addLine(line, epochs)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return h, fmt.Errorf("figure: read metrics: %w", err)
		}
	}
	for _, e := range epochs {
		h.Epochs = append(h.Epochs, e)
	}
	sort.Slice(h.Epochs, func(i, j int) bool { return h.Epochs[i].Epoch < h.Epochs[j].Epoch })
	h.placeSteps()
	return h, nil
}

// ReadHistoryFile reads the metrics.jsonl at path.
func ReadHistoryFile(path string) (History, error) {
	f, err := os.Open(path)
	if err != nil {
		return History{}, fmt.Errorf("figure: %w", err)
	}
	defer f.Close()
	h, err := ReadHistory(f)
	if err != nil {
		return h, fmt.Errorf("figure: %s: %w", path, err)
	}
	return h, nil
}

func (h *History) addLine(line []byte, epochs map[int]EpochRecord) {
	var rec map[string]any
	if json.Unmarshal(line, &rec) != nil {
		h.BadLines++
		return
	}
	epoch, _ := number(rec["epoch"])
	step, _ := number(rec["step"])
	e, s := int(epoch), int64(step)
	switch rec["kind"] {
	case "step":
		sr := StepRecord{Epoch: e, Step: s, LR: math.NaN(), ImgPerS: math.NaN(), Terms: map[string]float64{}}
		for k, v := range rec {
			f, ok := number(v)
			if !ok {
				continue
			}
			switch k {
			case "epoch", "step":
			case "lr":
				sr.LR = f
			case "img_per_s":
				sr.ImgPerS = f
			default:
				sr.Terms[k] = f
			}
		}
		h.Steps = append(h.Steps, sr)
	case "epoch":
		er := EpochRecord{Epoch: e, Step: s, Train: map[string]float64{}, Val: map[string]float64{}, BestEpoch: -1}
		if train, ok := rec["train"].(map[string]any); ok {
			for k, v := range train {
				if f, ok := number(v); ok {
					er.Train[k] = f
				}
			}
		}
		for k, v := range rec {
			if f, ok := number(v); ok && len(k) > 4 && k[:4] == "val_" {
				er.Val[k[4:]] = f
			}
		}
		if b, ok := number(rec["best_epoch"]); ok {
			er.BestEpoch = int(b)
		}
		epochs[e] = er
	case "skipped":
		file, _ := rec["file"].(string)
		msg, _ := rec["error"].(string)
		h.Skipped = append(h.Skipped, SkipRecord{Epoch: e, Step: s, File: file, Error: msg})
	}
}

// number is v as a float64 when v is a JSON number.
func number(v any) (float64, bool) {
	f, ok := v.(float64)
	return f, ok
}

// placeSteps sets each step's X: its epoch plus the fraction of that epoch
// done. An epoch's steps run from the previous epoch record's step to its
// own; an epoch without a record (the one in progress) is taken to be as
// long as the last finished one.
func (h *History) placeSteps() {
	end := map[int]int64{}
	var lengths []int64
	prevEnd, prevEpoch := int64(0), -1
	for _, e := range h.Epochs {
		end[e.Epoch] = e.Step
		if e.Epoch == prevEpoch+1 && e.Step > prevEnd {
			lengths = append(lengths, e.Step-prevEnd)
		}
		prevEnd, prevEpoch = e.Step, e.Epoch
	}
	typical := int64(0)
	if len(lengths) > 0 {
		typical = lengths[len(lengths)-1]
	}
	// Fallback start of an epoch: its first logged step minus one.
	firstStep := map[int]int64{}
	lastStep := map[int]int64{}
	for _, s := range h.Steps {
		if v, ok := firstStep[s.Epoch]; !ok || s.Step < v {
			firstStep[s.Epoch] = s.Step
		}
		lastStep[s.Epoch] = max(lastStep[s.Epoch], s.Step)
	}
	for i := range h.Steps {
		s := &h.Steps[i]
		start, ok := end[s.Epoch-1]
		if !ok {
			if s.Epoch == 0 {
				start = 0
			} else {
				start = firstStep[s.Epoch] - 1
			}
		}
		n := end[s.Epoch] - start
		if _, done := end[s.Epoch]; !done || n <= 0 {
			n = typical
			if n <= 0 {
				n = lastStep[s.Epoch] - start
			}
		}
		frac := 1.0
		if n > 0 {
			frac = math.Max(0, math.Min(1, float64(s.Step-start)/float64(n)))
		}
		s.X = float64(s.Epoch) + frac
	}
}

// termOrder is the order of the known loss terms in figures: the total,
// then DiRA's three terms (discrimination, restoration, adversarial), then
// the discriminator's own loss. Other terms follow alphabetically.
var termOrder = []string{"loss", "nce", "mse", "adv_g", "d_loss"}

// termTitles name the known terms for a reader of the figure.
var termTitles = map[string]string{
	"loss":   "loss (total)",
	"nce":    "nce (InfoNCE, discrimination)",
	"mse":    "mse (restoration)",
	"adv_g":  "adv_g (generator, adversarial)",
	"d_loss": "d_loss (discriminator)",
}

// Terms lists every term found in step, epoch-train or validation values,
// in figure order.
func (h History) Terms() []string {
	set := map[string]bool{}
	for _, s := range h.Steps {
		for k := range s.Terms {
			set[k] = true
		}
	}
	for _, e := range h.Epochs {
		for k := range e.Train {
			set[k] = true
		}
		for k := range e.Val {
			set[k] = true
		}
	}
	var known, other []string
	for _, k := range termOrder {
		if set[k] {
			known = append(known, k)
			delete(set, k)
		}
	}
	for k := range set {
		other = append(other, k)
	}
	slices.Sort(other)
	return append(known, other...)
}

// Series names used by the loss panels (one legend for all of them).
const (
	NameTrainStep  = "train (each logged step)"
	NameTrainEpoch = "train (epoch mean)"
	NameVal        = "validation"
	NameLR         = "learning rate"
)

// TermPanels is one panel per term: the training value of each logged step
// (faint), the epoch means, and the validation value at each epoch end.
func (h History) TermPanels() []Panel {
	var panels []Panel
	for _, term := range h.Terms() {
		var sx, sy, ex, ey, vx, vy []float64
		for _, s := range h.Steps {
			if v, ok := s.Terms[term]; ok {
				sx, sy = append(sx, s.X), append(sy, v)
			}
		}
		for _, e := range h.Epochs {
			if v, ok := e.Train[term]; ok {
				ex, ey = append(ex, float64(e.Epoch+1)), append(ey, v)
			}
			if v, ok := e.Val[term]; ok {
				vx, vy = append(vx, float64(e.Epoch+1)), append(vy, v)
			}
		}
		title := termTitles[term]
		if title == "" {
			title = term
		}
		p := Panel{Title: title}
		trainColor, valColor := paletteColor(0), paletteColor(1)
		if len(sx) > 0 {
			p.Series = append(p.Series, Series{Name: NameTrainStep, X: sx, Y: sy, Style: Line, Faint: true, Color: trainColor})
		}
		if len(ex) > 0 {
			p.Series = append(p.Series, Series{Name: NameTrainEpoch, X: ex, Y: ey, Style: LinePoints, Color: trainColor})
		}
		if len(vx) > 0 {
			p.Series = append(p.Series, Series{Name: NameVal, X: vx, Y: vy, Style: LinePoints, Color: valColor})
		}
		panels = append(panels, p)
	}
	return panels
}

// LRPanel is the learning rate of each logged step, in its own panel.
func (h History) LRPanel() Panel {
	var x, y []float64
	for _, s := range h.Steps {
		if !math.IsNaN(s.LR) {
			x, y = append(x, s.X), append(y, s.LR)
		}
	}
	return Panel{Title: "learning rate", Series: []Series{{Name: NameLR, X: x, Y: y, Style: Line, Color: paletteColor(2)}}}
}

// LossPanels draws h's term panels and its learning-rate panel as one
// figure with x in epochs. A history with no records at all draws a single
// "no data" panel, so a stage that has not logged yet still gets a figure.
func LossPanels(h History, title string) ([]byte, error) {
	panels := append(h.TermPanels(), h.LRPanel())
	return Panels(panels, Options{Title: title, XLabel: "epoch", EpochTicks: true})
}

// LossPNGFromMetrics reads the metrics.jsonl at path and draws LossPanels,
// titled with the stage folder's name: the content of <stage>/loss.png.
func LossPNGFromMetrics(path string) ([]byte, error) {
	h, err := ReadHistoryFile(path)
	if err != nil {
		return nil, err
	}
	return LossPanels(h, stageTitle(path, h))
}

// stageTitle is "<stage folder>: N epochs, M steps" for path <stage>/metrics.jsonl.
func stageTitle(path string, h History) string {
	name := filepath.Base(filepath.Dir(path))
	var steps int64
	if n := len(h.Steps); n > 0 {
		steps = h.Steps[n-1].Step
	}
	return fmt.Sprintf("%s: %d epochs done, %d steps", name, len(h.Epochs), steps)
}
