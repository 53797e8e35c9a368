package report

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"dira/figure"
	"dira/internal/atomicfile"
)

//go:embed page.html
var pageHTML string

var page = template.Must(template.New("page").Parse(pageHTML))

// FileName is the report's name inside a run folder.
const FileName = "report.html"

// WriteFile writes the report of the run folder runDir to out atomically,
// so a browser reloading it never sees half a page. out "" is
// runDir/report.html.
func WriteFile(runDir, out string) error {
	if out == "" {
		out = filepath.Join(runDir, FileName)
	}
	var buf bytes.Buffer
	if err := Write(runDir, &buf); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// Write writes the report of the run folder runDir to w as one HTML page
// with every image inlined. It reads only files inside runDir. Missing or
// unreadable files (a run killed early, a stage that never started) are
// named in the page instead of failing it; Write fails only when runDir is
// not a readable folder or w fails.
func Write(runDir string, w io.Writer) error {
	st, err := os.Stat(runDir)
	if err != nil {
		return fmt.Errorf("report: run folder: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("report: run folder %s: not a folder", runDir)
	}
	v := build(runDir, time.Now().UTC())
	if err := page.Execute(w, v); err != nil {
		return fmt.Errorf("report: %s: %w", runDir, err)
	}
	return nil
}

// view is everything the page template shows.
type view struct {
	Name      string
	RunDir    string
	Generated string
	Status    status
	Problems  []string // files the report could not read, and why

	HasManifest   bool
	GitCommit     string
	Seed          uint64
	Created       string
	ConfigSHA     string
	ConfigSHANote string
	Versions      [][2]string
	Config        string // config.yaml as written

	Stages []*stageView
}

type status struct {
	Class string // ok, warn, fail
	Text  string
	Lines []string
}

type stageView struct {
	Name       string
	State      string
	StateClass string
	Started    string
	Finished   string
	Duration   string
	Progress   string
	Error      string
	Facts      [][2]string
	Artifacts  []artifactView

	Loss     template.URL
	LossNote string
	Samples  []sampleView
	Export   *exportView
	Results  *resultsView
}

type artifactView struct {
	Path, SHA256, Size string
	Absent             bool
}

type sampleView struct {
	Epoch int
	Src   template.URL
}

type exportView struct {
	Passed       bool
	Checkpoint   string
	Source       string // "adversarial, epoch 3"
	Tolerance    float64
	InputSize    int
	ConfigNote   string
	Checks       []checkView
	Files        []string
	Note         string
	Keys         []keyList
	ONNX         []onnxSummary
	ONNXProblems []string
}

type checkView struct {
	File, Output, Shape string
	MaxAbsDiff, MaxAbs  string
	RelDiff             string
	OK                  bool
}

type keyList struct {
	File string
	Keys []string
}

type resultsView struct {
	Task, Dataset, Metric string
	Summary               []summaryRow
	Figures               []figureView
	ClassTables           []classTable
	Failed                []string
}

type summaryRow struct {
	Init, Fraction, N, Mean, Std string
}

type figureView struct {
	Caption string
	Src     template.URL
}

type classTable struct {
	Fraction string
	Inits    []string
	Rows     []classRow
}

type classRow struct {
	Class  string
	Values []string
}

// build reads the run folder into a view.
func build(runDir string, now time.Time) *view {
	v := &view{RunDir: runDir, Name: filepath.Base(filepath.Clean(runDir)), Generated: stamp(now)}
	var m manifest
	switch err := readJSON(filepath.Join(runDir, "manifest.json"), &m); {
	case err == nil:
		v.HasManifest = true
		v.GitCommit, v.Seed, v.ConfigSHA = m.GitCommit, m.Seed, m.ConfigSHA256
		if !m.Created.IsZero() {
			v.Created = stamp(m.Created)
		}
		for k, val := range m.Versions {
			v.Versions = append(v.Versions, [2]string{k, val})
		}
		sort.Slice(v.Versions, func(i, j int) bool { return v.Versions[i][0] < v.Versions[j][0] })
	case errors.Is(err, fs.ErrNotExist):
		v.Problems = append(v.Problems, "manifest.json is missing: the run has not started, or this is not a dira run folder")
	default:
		v.Problems = append(v.Problems, "manifest.json: "+err.Error())
	}

	var cfg runConfig
	if b, err := os.ReadFile(filepath.Join(runDir, "config.yaml")); err != nil {
		v.Problems = append(v.Problems, "config.yaml: "+errText(err))
	} else {
		v.Config = string(b)
		sum := sha256.Sum256(b)
		if got := hex.EncodeToString(sum[:]); v.ConfigSHA != "" {
			if got == v.ConfigSHA {
				v.ConfigSHANote = "matches config.yaml"
			} else {
				v.ConfigSHANote = "config.yaml now hashes to " + got + ": it was changed after the manifest was written"
			}
		}
		if cfg, err = parseConfig(b); err != nil {
			v.Problems = append(v.Problems, "config.yaml: "+err.Error())
		}
		if cfg.Run.Name != "" {
			v.Name = cfg.Run.Name
		}
	}
	planned := map[string]int{}
	for _, s := range cfg.Stages {
		planned[s.Name] = s.Epochs
	}

	// Stages in manifest order; without a manifest, the configured ones.
	records := m.Stages
	if len(records) == 0 {
		for _, s := range cfg.Stages {
			records = append(records, stageRecord{Name: s.Name, State: "unknown"})
		}
	}
	for _, rec := range records {
		v.Stages = append(v.Stages, buildStage(runDir, rec, planned[rec.Name], &v.Problems))
	}
	v.Status = runStatus(v.Stages, v.HasManifest)
	return v
}

func buildStage(runDir string, rec stageRecord, plannedEpochs int, problems *[]string) *stageView {
	dir := filepath.Join(runDir, rec.Name)
	s := &stageView{Name: rec.Name, State: rec.State, StateClass: stateClass(rec.State), Error: rec.Error}
	if rec.Started != nil {
		s.Started = stamp(*rec.Started)
	}
	if rec.Finished != nil {
		s.Finished = stamp(*rec.Finished)
		if rec.Started != nil {
			s.Duration = rec.Finished.Sub(*rec.Started).Round(time.Second).String()
		}
	}
	paths := make([]string, 0, len(rec.Artifacts))
	for p := range rec.Artifacts {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		a := artifactView{Path: p, SHA256: rec.Artifacts[p]}
		if st, err := os.Stat(filepath.Join(runDir, p)); err == nil {
			a.Size = byteSize(st.Size())
		} else {
			a.Absent = true
		}
		s.Artifacts = append(s.Artifacts, a)
	}

	// Training curves.
	metricsPath := filepath.Join(dir, "metrics.jsonl")
	if st, err := os.Stat(metricsPath); err == nil {
		h, err := figure.ReadHistoryFile(metricsPath)
		if err != nil {
			*problems = append(*problems, rec.Name+"/metrics.jsonl: "+err.Error())
		}
		trainingFacts(s, h, plannedEpochs, st.ModTime(), rec)
		png, err := figure.LossPanels(h, rec.Name+": losses and learning rate")
		if err != nil {
			s.LossNote = "could not draw the loss panels: " + err.Error()
		} else {
			s.Loss = dataURI(png)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		*problems = append(*problems, rec.Name+"/metrics.jsonl: "+err.Error())
	}

	// Restoration samples: the first and the last epoch's grid.
	epochs, grids := sampleGrids(dir)
	if len(epochs) > 0 {
		show := []int{epochs[0]}
		if last := epochs[len(epochs)-1]; last != epochs[0] {
			show = append(show, last)
		}
		for _, e := range show {
			b, err := os.ReadFile(grids[e])
			if err != nil {
				*problems = append(*problems, err.Error())
				continue
			}
			s.Samples = append(s.Samples, sampleView{Epoch: e, Src: dataURI(b)})
		}
	}

	// Export.
	exportPath := filepath.Join(dir, "export-report.json")
	var er exportReport
	switch err := readJSON(exportPath, &er); {
	case err == nil:
		s.Export = buildExport(runDir, dir, er)
	case errors.Is(err, fs.ErrNotExist):
	default:
		*problems = append(*problems, rec.Name+"/export-report.json: "+err.Error())
	}

	// Fine-tuning results.
	resultsPath := filepath.Join(dir, "results.json")
	if b, err := os.ReadFile(resultsPath); err == nil {
		r, err := ParseResults(rec.Name+"/results.json", b)
		if err != nil {
			*problems = append(*problems, err.Error())
		} else {
			s.Results = buildResults(dir, rec.Name, r, problems)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		*problems = append(*problems, rec.Name+"/results.json: "+err.Error())
	}
	return s
}

// trainingFacts fills a training stage's progress line and summary facts
// from its history.
func trainingFacts(s *stageView, h figure.History, plannedEpochs int, modTime time.Time, rec stageRecord) {
	done := len(h.Epochs)
	var lastStep int64
	lastEpoch := -1
	if n := len(h.Steps); n > 0 {
		lastStep, lastEpoch = h.Steps[n-1].Step, h.Steps[n-1].Epoch
	}
	if n := len(h.Epochs); n > 0 && h.Epochs[n-1].Step > lastStep {
		lastStep = h.Epochs[n-1].Step
	}
	of := ""
	if plannedEpochs > 0 {
		of = fmt.Sprintf(" of %d", plannedEpochs)
	}
	s.Progress = fmt.Sprintf("%d%s epochs done, %d steps", done, of, lastStep)
	if rec.State == "running" || rec.State == "failed" {
		if lastEpoch >= done {
			s.Progress += fmt.Sprintf("; stopped inside epoch %d", lastEpoch+1)
		}
		s.Progress += "; last record written " + stamp(modTime.UTC())
		if rec.Started != nil && rec.State == "running" {
			s.Duration = modTime.Sub(*rec.Started).Round(time.Second).String() + " (until the last record)"
		}
	}
	if n := len(h.Epochs); n > 0 {
		last := h.Epochs[n-1]
		if last.BestEpoch >= 0 {
			best := fmt.Sprintf("epoch %d", last.BestEpoch+1)
			for _, e := range h.Epochs {
				if e.Epoch == last.BestEpoch {
					if v, ok := e.Val["loss"]; ok {
						best += ", validation loss " + fmtFloat(v)
					} else if v, ok := e.Train["loss"]; ok {
						best += ", training loss " + fmtFloat(v) + " (no validation set)"
					}
				}
			}
			s.Facts = append(s.Facts, [2]string{"best checkpoint", best})
		}
		if v, ok := last.Train["loss"]; ok {
			s.Facts = append(s.Facts, [2]string{"last epoch's training loss", fmtFloat(v)})
		}
		if v, ok := last.Val["loss"]; ok {
			s.Facts = append(s.Facts, [2]string{"last epoch's validation loss", fmtFloat(v)})
		}
	}
	var rate []float64
	for _, st := range h.Steps {
		if !math.IsNaN(st.ImgPerS) && !math.IsInf(st.ImgPerS, 0) {
			rate = append(rate, st.ImgPerS)
		}
	}
	if len(rate) > 0 {
		slices.Sort(rate)
		s.Facts = append(s.Facts, [2]string{"training speed", fmt.Sprintf("%s images/s (median of %d logged steps)", fmtFloat(rate[len(rate)/2]), len(rate))})
	}
	if n := len(h.Skipped); n > 0 {
		files := make([]string, 0, min(n, 5))
		for _, sk := range h.Skipped[:min(n, 5)] {
			files = append(files, sk.File)
		}
		more := ""
		if n > 5 {
			more = fmt.Sprintf(" and %d more", n-5)
		}
		s.Facts = append(s.Facts, [2]string{"unreadable images skipped", fmt.Sprintf("%d: %s%s", n, strings.Join(files, ", "), more)})
	}
	if h.BadLines > 0 {
		s.Facts = append(s.Facts, [2]string{"unreadable metrics lines", fmt.Sprint(h.BadLines)})
	}
}

func buildExport(runDir, dir string, er exportReport) *exportView {
	x := &exportView{Passed: er.Passed, Checkpoint: er.Checkpoint, Tolerance: er.Tolerance, InputSize: er.InputSize, Note: er.Note, Files: er.Files}
	if er.Stage != "" {
		x.Source = fmt.Sprintf("%s, after epoch %d", er.Stage, er.Epoch) // Epoch counts finished epochs
	}
	if rel, err := filepath.Rel(runDir, er.Checkpoint); err == nil && !strings.HasPrefix(rel, "..") {
		x.Checkpoint = rel
	}
	for _, c := range er.Checks {
		cv := checkView{File: c.File, Output: c.Output, Shape: shape(c.Shape), MaxAbsDiff: "n/a (not finite)", MaxAbs: "n/a", RelDiff: "n/a"}
		if c.MaxAbsDiff != nil {
			cv.MaxAbsDiff = fmt.Sprintf("%.3g", *c.MaxAbsDiff)
			cv.OK = *c.MaxAbsDiff <= er.Tolerance
		}
		if c.MaxAbs != nil {
			cv.MaxAbs = fmt.Sprintf("%.3g", *c.MaxAbs)
			if c.MaxAbsDiff != nil && *c.MaxAbs > 0 {
				cv.RelDiff = fmt.Sprintf("%.2g", *c.MaxAbsDiff / *c.MaxAbs)
			}
		}
		x.Checks = append(x.Checks, cv)
	}
	files := make([]string, 0, len(er.Keys))
	for f := range er.Keys {
		files = append(files, f)
	}
	slices.Sort(files)
	for _, f := range files {
		x.Keys = append(x.Keys, keyList{File: f, Keys: er.Keys[f]})
	}
	for _, f := range er.Files {
		if !strings.HasSuffix(f, ".onnx") {
			continue
		}
		o, err := readONNX(filepath.Join(dir, f))
		if err != nil {
			x.ONNXProblems = append(x.ONNXProblems, f+": "+errText(err))
			continue
		}
		x.ONNX = append(x.ONNX, o)
	}
	return x
}

func buildResults(dir, stage string, r Results, problems *[]string) *resultsView {
	metric := r.Metric
	if metric == "" {
		metric = "score"
	}
	rv := &resultsView{Task: r.Task, Dataset: r.Dataset, Metric: metric}
	title := stage
	if r.Dataset != "" {
		title = r.Dataset
	}
	for _, s := range r.Summary {
		rv.Summary = append(rv.Summary, summaryRow{Init: s.Init, Fraction: percent(s.LabelFraction), N: fmt.Sprint(s.N),
			Mean: fmtPtr(s.Mean), Std: fmtPtr(s.Std)})
	}
	for _, t := range r.Trials {
		if t.Error != "" {
			rv.Failed = append(rv.Failed, fmt.Sprintf("%s, %s labels, run %d: %s", t.Init, percent(t.LabelFraction), t.Run, t.Error))
		}
	}
	fractions := []float64{}
	for _, s := range r.Summary {
		if !slices.Contains(fractions, s.LabelFraction) {
			fractions = append(fractions, s.LabelFraction)
		}
	}

	// The comparison: the stage's own comparison.png, else one bar chart per
	// label fraction from the summary.
	if b, err := os.ReadFile(filepath.Join(dir, "comparison.png")); err == nil {
		rv.Figures = append(rv.Figures, figureView{Caption: "comparison of initialisations (comparison.png)", Src: dataURI(b)})
	} else {
		for _, f := range fractions {
			var bars []figure.Bar
			for _, s := range r.Summary {
				if s.LabelFraction == f {
					bars = append(bars, figure.Bar{Name: s.Init, Mean: deref(s.Mean), Std: deref(s.Std), N: s.N})
				}
			}
			png, err := figure.Comparison(bars, metric, fmt.Sprintf("%s: %s labels", title, percent(f)))
			if err != nil {
				*problems = append(*problems, stage+": comparison figure: "+err.Error())
				continue
			}
			rv.Figures = append(rv.Figures, figureView{Caption: fmt.Sprintf("%s by initialisation, %s of the labels: mean ± std over runs", metric, percent(f)), Src: dataURI(png)})
		}
	}

	// ROC: the stage's roc.png, else the curves in results.json (the first
	// run of each initialisation and label fraction).
	if b, err := os.ReadFile(filepath.Join(dir, "roc.png")); err == nil {
		rv.Figures = append(rv.Figures, figureView{Caption: "ROC curves (roc.png)", Src: dataURI(b)})
	} else if len(r.ROC) > 0 {
		type key struct {
			init string
			frac float64
		}
		var order []key
		curves := map[key][]figure.ROCCurve{}
		firstRun := map[key]int{}
		for _, c := range r.ROC {
			k := key{c.Init, c.LabelFraction}
			if _, ok := curves[k]; !ok {
				order = append(order, k)
				firstRun[k] = c.Run
			}
			if c.Run == firstRun[k] {
				curves[k] = append(curves[k], figure.ROCCurve{Name: c.Class, FPR: c.FPR, TPR: c.TPR})
			}
		}
		for _, k := range order {
			png, err := figure.ROC(curves[k], fmt.Sprintf("%s, %s labels, run %d", k.init, percent(k.frac), firstRun[k]))
			if err != nil {
				*problems = append(*problems, stage+": ROC figure: "+err.Error())
				continue
			}
			rv.Figures = append(rv.Figures, figureView{Caption: fmt.Sprintf("ROC curves of %s (%s labels, run %d) per class, and their vertical mean", k.init, percent(k.frac), firstRun[k]), Src: dataURI(png)})
		}
	}

	// Learning curves: one figure per initialisation and label fraction.
	type key struct {
		init string
		frac float64
	}
	var order []key
	lcs := map[key][]figure.LearningCurve{}
	for _, t := range r.Trials {
		if len(t.History) == 0 {
			continue
		}
		k := key{t.Init, t.LabelFraction}
		if _, ok := lcs[k]; !ok {
			order = append(order, k)
		}
		lc := figure.LearningCurve{Name: fmt.Sprintf("run %d", t.Run)}
		for _, e := range t.History {
			lc.Epoch = append(lc.Epoch, float64(e.Epoch+1))
			lc.TrainLoss = append(lc.TrainLoss, deref(e.TrainLoss))
			lc.ValLoss = append(lc.ValLoss, deref(e.ValLoss))
			lc.Metric = append(lc.Metric, deref(e.ValScore))
		}
		lcs[k] = append(lcs[k], lc)
	}
	for _, k := range order {
		png, err := figure.LearningCurves(lcs[k], metric, fmt.Sprintf("%s, %s labels: fine-tuning", k.init, percent(k.frac)))
		if err != nil {
			*problems = append(*problems, stage+": learning curves: "+err.Error())
			continue
		}
		rv.Figures = append(rv.Figures, figureView{Caption: fmt.Sprintf("learning curves of %s with %s of the labels", k.init, percent(k.frac)), Src: dataURI(png)})
	}

	// Per-class table: one per label fraction, a column per initialisation.
	if len(r.Classes) > 0 {
		for _, f := range fractions {
			ct := classTable{Fraction: percent(f)}
			var sums []Summary
			for _, s := range r.Summary {
				if s.LabelFraction == f {
					ct.Inits = append(ct.Inits, s.Init)
					sums = append(sums, s)
				}
			}
			for c, name := range r.Classes {
				row := classRow{Class: name}
				for _, s := range sums {
					cell := "—"
					if c < len(s.PerClassMean) && s.PerClassMean[c] != nil {
						cell = fmt.Sprintf("%.3f", *s.PerClassMean[c])
						if c < len(s.PerClassStd) && s.PerClassStd[c] != nil {
							cell += fmt.Sprintf(" ± %.3f", *s.PerClassStd[c])
						}
					}
					row.Values = append(row.Values, cell)
				}
				ct.Rows = append(ct.Rows, row)
			}
			rv.ClassTables = append(rv.ClassTables, ct)
		}
	}
	return rv
}

// runStatus says in one line where the run stands: finished, failed at a
// stage, stopped inside one, or not started.
func runStatus(stages []*stageView, hasManifest bool) status {
	if !hasManifest {
		return status{Class: "warn", Text: "no manifest: the run has not started or the folder is incomplete"}
	}
	var st status
	completed := 0
	for _, s := range stages {
		switch s.State {
		case "completed":
			completed++
		case "failed":
			if st.Class != "fail" {
				st = status{Class: "fail", Text: fmt.Sprintf("failed in stage %s", s.Name)}
			}
			if s.Error != "" {
				st.Lines = append(st.Lines, s.Name+": "+s.Error)
			}
		case "running":
			if st.Class == "" {
				st = status{Class: "warn", Text: fmt.Sprintf("stopped in stage %s, or still running", s.Name)}
				st.Lines = append(st.Lines, "The manifest says "+s.Name+" is running: either the run is in progress (reload this page) or it was killed there; `dira run` on the same config resumes it.")
				if s.Progress != "" {
					st.Lines = append(st.Lines, s.Name+": "+s.Progress)
				}
			}
		}
		if s.Export != nil && !s.Export.Passed {
			st.Class = "fail"
			if st.Text == "" {
				st.Text = "the export check failed"
			}
			st.Lines = append(st.Lines, fmt.Sprintf("%s: ONNX Runtime and the Go forward pass differ by more than the tolerance %g; the model files were not written", s.Name, s.Export.Tolerance))
		}
	}
	switch {
	case st.Class != "":
		return st
	case len(stages) > 0 && completed == len(stages):
		return status{Class: "ok", Text: fmt.Sprintf("completed: all %d stages finished", len(stages))}
	default:
		var pending []string
		for _, s := range stages {
			if s.State != "completed" {
				pending = append(pending, s.Name)
			}
		}
		return status{Class: "warn", Text: "incomplete: not run yet: " + strings.Join(pending, ", ")}
	}
}

func stateClass(state string) string {
	switch state {
	case "completed":
		return "ok"
	case "failed":
		return "fail"
	case "running":
		return "warn"
	}
	return "muted"
}

func dataURI(png []byte) template.URL {
	// The bytes are our own PNG files, base64-encoded: nothing in them can
	// leave the attribute, so marking the URL safe is sound.
	return template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(png))
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

func fmtFloat(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "n/a"
	}
	return fmt.Sprintf("%.4g", v)
}

func fmtPtr(p *float64) string {
	if p == nil {
		return "—"
	}
	return fmt.Sprintf("%.3f", *p)
}

func percent(f float64) string {
	return fmt.Sprintf("%g%%", math.Round(f*1000)/10)
}

func shape(dims []int64) string {
	s := make([]string, len(dims))
	for i, d := range dims {
		s[i] = fmt.Sprint(d)
	}
	return "[" + strings.Join(s, ",") + "]"
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// errText is err's message without the os package's "open <path>: " prefix,
// which repeats the file name the page already shows.
func errText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
