package stages

import (
	"encoding/csv"
	"encoding/json"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"dira/data"
	"dira/infer"
	"dira/internal/npy"
	"dira/internal/torch"
	"dira/internal/torch/torchtest"
	"dira/metrics"
	"dira/model"
	"dira/optim"
	"dira/pipeline"
	"dira/report"
)

// TestFineTuneStepMatchesPyTorch: two fine-tuning steps (forward, loss,
// backward, Adam) from the same weights and batches as PyTorch 1.13
// (testdata/finetune_reference.py) give the same losses, gradients and
// updated weights and batch-norm statistics within 1e-4: classification
// (ResNet-18 + Linear/Sigmoid head, BCE) and segmentation (the U-Net, soft
// Dice loss).
func TestFineTuneStepMatchesPyTorch(t *testing.T) {
	for _, kind := range []string{"classify", "segment"} {
		t.Run(kind, func(t *testing.T) {
			torchtest.Pin(t)
			path := filepath.Join(t.TempDir(), kind+".npz")
			if out, err := exec.Command("/usr/bin/python3", "testdata/finetune_reference.py", kind, path).CombinedOutput(); err != nil {
				t.Fatalf("finetune_reference.py: %v\n%s", err, out)
			}
			ref, err := npy.ReadNPZFile(path)
			if err != nil {
				t.Fatal(err)
			}
			mc := model.DefaultConfig()
			mc.Arch, mc.DecoderChannels = "resnet18", []int{32, 16, 16, 8, 8}
			var tk task
			lr := 2e-4
			if kind == "classify" {
				d := data.DefaultLabeledConfig()
				tk = &classifyTask{model: mc, data: d, classes: []string{"a", "b", "c", "d"}}
			} else {
				tk, lr = &segmentTask{model: mc, loss: "dice"}, 1e-3
			}
			net, err := tk.newLearner(1, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer net.params().Drop()
			for _, p := range net.params().List() {
				a, ok := ref["w0/"+p.Name]
				if !ok {
					t.Fatalf("no reference weight for %s", p.Name)
				}
				shape := torch.Size(p.T)
				if err := net.params().SetData(p.Name, shape, a.Float32()); err != nil {
					t.Fatal(err)
				}
			}
			var params []*model.Param = net.trainable()
			st := &ftState{net: net, adam: &optim.Adam{LR: lr, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}}
			for _, p := range params {
				st.adam.Params = append(st.adam.Params, p.T)
			}
			defer st.close()
			f := &FineTune{}
			for i := range 2 {
				x, y := ref["x"+strconv.Itoa(i)], ref["y"+strconv.Itoa(i)]
				b := &data.LabeledBatch{N: 4, Crops: 1, H: 64, W: 64, Images: x.Float32()}
				if kind == "classify" {
					b.Labels, b.Classes = y.Float32(), []string{"a", "b", "c", "d"}
				} else {
					b.Masks = y.Float32()
				}
				loss, err := f.step(st, b)
				if err != nil {
					t.Fatal(err)
				}
				want := float64(ref["loss"+strconv.Itoa(i)].Float32()[0])
				t.Logf("step %d: loss %.7f, PyTorch %.7f", i+1, loss, want)
				if math.Abs(loss-want) > 1e-4 {
					t.Errorf("step %d: loss %v, PyTorch %v", i+1, loss, want)
				}
			}
			worstG, worstW := 0.0, 0.0
			for _, p := range net.params().List() {
				if g, ok := ref["g/"+p.Name]; ok {
					gt := torch.Grad(p.T)
					worstG = math.Max(worstG, maxAbs(torch.Float32s(gt), g.Float32()))
					torch.Drop(gt)
				}
				worstW = math.Max(worstW, maxAbs(torch.Float32s(p.T), ref["w2/"+p.Name].Float32()))
			}
			t.Logf("after 2 steps: max |grad - PyTorch| %.3g, max |weight or statistic - PyTorch| %.3g (tolerance 1e-4)", worstG, worstW)
			if worstG > 1e-4 || worstW > 1e-4 {
				t.Errorf("gradients differ by %.3g, weights by %.3g", worstG, worstW)
			}
		})
	}
}

func maxAbs(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	w := 0.0
	for i := range a {
		w = math.Max(w, math.Abs(float64(a[i])-float64(b[i])))
	}
	return w
}

// fineTuneConfig is a warmup stage (1 epoch) and a classify stage comparing
// random with the warmup on the synthetic findings at 64x64, 2 trials of 2
// epochs, then a segment stage from the same two initialisations.
func fineTuneConfig(t *testing.T, base string) pipeline.Config {
	cfg := tinyConfig(t, base)
	cfg.Stages = cfg.Stages[:1]
	training(cfg, 0).Epochs = 1
	c := newStage[*pipeline.ClassifyStage](t, pipeline.StageClassify)
	c.Inits, c.Trials, c.Epochs, c.BatchSize, c.LogEverySteps, c.CheckpointEverySteps = []string{"random", "warmup"}, 2, 2, 8, 1, 2
	c.Data.Synthetic = data.LabeledSyntheticConfig{TrainCount: 32, ValCount: 16, TestCount: 24, Size: 96, Seed: 3,
		Findings: data.SyntheticFindings, Prevalence: 0.35}
	c.Data.ImageSize, c.Data.ResizeSize, c.Data.Workers, c.Data.LabelPercent = 64, 72, 2, 75
	s := newStage[*pipeline.SegmentStage](t, pipeline.StageSegment)
	s.Inits, s.Epochs, s.BatchSize, s.LogEverySteps = []string{"random", "warmup"}, 1, 8, 1
	s.Data.Synthetic = data.LabeledSyntheticConfig{TrainCount: 16, ValCount: 8, TestCount: 8, Size: 96, Seed: 3}
	s.Data.ImageSize, s.Data.Workers = 64, 2
	cfg.Stages = append(cfg.Stages, c, s)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestFineTuneStages runs pre-training, classification and segmentation end
// to end, kills the classification stage in its second trial (a process of
// its own) and resumes it: the resumed run logs the uninterrupted run's
// losses (1e-6), the trial finished before the kill is not run again, every
// trial used the same label-fraction subset, the results and figures are
// written, and the exported classifier.onnx and segmenter.onnx pass
// onnx.checker and match the Go forward; `dira infer`'s predictions.csv
// equals the Go probabilities.
func TestFineTuneStages(t *testing.T) {
	torchtest.Pin(t)
	if dir := os.Getenv("DIRA_FT_KILL_CHILD"); dir != "" {
		cfg := fineTuneConfig(t, filepath.Dir(dir))
		runStages(t, cfg, dir, Hooks{AfterCheckpoint: func(stage string, step int64) {
			if stage == "classify/random/trial-2" && step == 2 {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
			}
		}})
		t.Fatal("the child was not killed")
	}
	base := t.TempDir()
	cfg := fineTuneConfig(t, base)
	whole := filepath.Join(base, "whole")
	if err := runStages(t, cfg, whole, Hooks{}); err != nil {
		t.Fatal(err)
	}
	killed := filepath.Join(base, "killed")
	cmd := exec.Command(os.Args[0], "-test.run=^TestFineTuneStages$")
	cmd.Env = append(os.Environ(), "DIRA_FT_KILL_CHILD="+killed)
	err := cmd.Run()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die of SIGKILL: %v", err)
	}
	first := filepath.Join(killed, "classify", "random", "trial-1", "result.json")
	before, err := os.Stat(first)
	if err != nil {
		t.Fatalf("trial 1 had not finished before the kill: %v", err)
	}
	if err := runStages(t, cfg, killed, Hooks{}); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.Stat(first); !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("trial 1's result.json was written again: the finished trial was re-run")
	}
	for _, trial := range []string{"random/trial-1", "random/trial-2", "warmup/trial-1", "warmup/trial-2"} {
		for _, kind := range []string{"step", "epoch"} {
			a := records(t, filepath.Join(whole, "classify", trial, "metrics.jsonl"), kind)
			b := records(t, filepath.Join(killed, "classify", trial, "metrics.jsonl"), kind)
			worst := 0.0
			for k, ra := range a {
				worst = math.Max(worst, maxDiff(ra, b[k]))
			}
			if len(a) == 0 || len(a) != len(b) || worst > 1e-6 {
				t.Errorf("%s %s records: %d uninterrupted, %d resumed, max |difference| %.3g", trial, kind, len(a), len(b), worst)
			}
		}
	}

	// Results: four classification trials on one training subset.
	var res report.Results
	if err := readJSON(filepath.Join(killed, "classify", "results.json"), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Trials) != 4 || len(res.Summary) != 2 || res.Metric != "auc" || len(res.Classes) != 4 {
		t.Fatalf("results.json: %d trials, %d summaries, metric %q, classes %v", len(res.Trials), len(res.Summary), res.Metric, res.Classes)
	}
	subsets := map[string]bool{}
	for _, trial := range []string{"random/trial-1", "random/trial-2", "warmup/trial-1", "warmup/trial-2"} {
		var tr trialResult
		if err := readJSON(filepath.Join(killed, "classify", trial, "result.json"), &tr); err != nil {
			t.Fatal(err)
		}
		subsets[tr.TrainSubset] = true
		if tr.TrainImages != 24 { // int(32 * 75 / 100)
			t.Errorf("%s trained on %d images, want the 24 of a 75%% label fraction", trial, tr.TrainImages)
		}
	}
	if len(subsets) != 1 {
		t.Errorf("the trials used %d different training subsets, want one", len(subsets))
	}
	for _, f := range []string{"classify/comparison.md", "classify/comparison.png", "classify/roc.png", "classify/random/trial-1/loss.png",
		"segment/results.json", "segment/comparison.png", "segment/overlays.png"} {
		if _, err := os.Stat(filepath.Join(killed, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}

	// The exports: onnx.checker, then ONNX Runtime against Go (the stage's
	// own check) and dira infer's predictions.csv against the Go classifier.
	for _, f := range []string{"classify/classifier.onnx", "segment/segmenter.onnx"} {
		p := filepath.Join(killed, f)
		if out, err := exec.Command("/usr/bin/python3", "-c", "import onnx,sys; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)", p).CombinedOutput(); err != nil {
			t.Errorf("onnx.checker %s: %v\n%s", f, err, out)
		}
	}
	var rep fineTunedReport
	if err := readJSON(filepath.Join(killed, "classify", "export-report.json"), &rep); err != nil {
		t.Fatal(err)
	}
	t.Logf("classifier.onnx (init %s trial %d): ONNX Runtime vs Go max |diff| %.3g", rep.Init, rep.Trial, rep.Check.MaxAbsDiff)
	if !rep.Passed || rep.Check.MaxAbsDiff > 1e-4 {
		t.Errorf("export report: %+v", rep)
	}
	checkPredictions(t, cfg, killed)
}

// checkPredictions runs dira infer's classifier path on the synthetic test
// images written as PNGs and compares predictions.csv with the Go classifier
// of the exported trial on the same preprocessed input.
func checkPredictions(t *testing.T, cfg pipeline.Config, run string) {
	imgs := filepath.Join(t.TempDir(), "imgs")
	os.MkdirAll(imgs, 0o755)
	var files []string
	for i := range 3 {
		p := filepath.Join(imgs, "img"+strconv.Itoa(i)+".png")
		writeRadiograph(t, p, 96, uint64(100+i))
		files = append(files, p)
	}
	lib, err := infer.FindLibrary("", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := infer.Start(lib); err != nil {
		t.Fatal(err)
	}
	defer infer.Stop()
	m, err := infer.OpenModel(filepath.Join(run, "classify", "classifier.onnx"), infer.SessionOptions{Device: "cpu"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Kind != infer.KindClassifier || strings.Join(m.Labels, ",") != strings.Join(data.SyntheticFindings, ",") || m.ResizeSize != 72 {
		t.Fatalf("model: kind %s, labels %v, resize %d", m.Kind, m.Labels, m.ResizeSize)
	}
	out := filepath.Join(t.TempDir(), "out")
	var inputs []infer.Input
	for _, f := range files {
		inputs = append(inputs, infer.Input{Path: f, Name: filepath.Base(f)})
	}
	if _, err := m.Run(t.Context(), inputs, out, infer.RunOptions{Batch: 2, BadImages: data.BadImagesFail}); err != nil {
		t.Fatal(err)
	}
	fh, err := os.Open(filepath.Join(out, "predictions.csv"))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(fh).ReadAll()
	fh.Close()
	if err != nil || len(rows) != 4 || strings.Join(rows[0], ",") != "row,file,"+strings.Join(data.SyntheticFindings, ",") {
		t.Fatalf("predictions.csv: %v %v", rows, err)
	}

	// The Go side: the exported trial's weights, the same preprocessing.
	var rep fineTunedReport
	readJSON(filepath.Join(run, "classify", "export-report.json"), &rep)
	st := goClassifier(t, cfg, run, rep)
	defer st.close()
	d := cfg.Stages[1].(*pipeline.ClassifyStage).Data
	norm, _ := data.ParseNormalization(d.Normalization)
	worst := 0.0
	for i, f := range files {
		img, err := data.DecodeFile(f)
		if err != nil {
			t.Fatal(err)
		}
		crop := data.CenterCrop(data.Resize(img, d.ResizeSize, d.ResizeSize), d.ImageSize, d.ImageSize)
		x := make([]float32, 3*d.ImageSize*d.ImageSize)
		norm.Put(x, crop)
		b := &data.LabeledBatch{N: 1, Crops: 1, H: d.ImageSize, W: d.ImageSize, Images: x}
		probs := st.net.(*classifier).probabilities(b)
		for c, p := range probs {
			v, _ := strconv.ParseFloat(rows[i+1][2+c], 64)
			worst = math.Max(worst, math.Abs(v-float64(p)))
		}
	}
	t.Logf("predictions.csv vs the Go classifier: max |diff| %.3g (tolerance 1e-4)", worst)
	if worst > 1e-4 {
		t.Errorf("predictions.csv differs from the Go probabilities by %.3g", worst)
	}
}

// goClassifier loads the exported trial's best checkpoint into a classifier.
func goClassifier(t *testing.T, cfg pipeline.Config, run string, rep fineTunedReport) *ftState {
	s, err := newFineTune(cfg, cfg.Stages[1], Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := s.(*FineTune)
	f.task.setTargets(data.Targets{Task: data.TaskMultiLabel, Classes: data.SyntheticFindings})
	st, err := f.newState(rep.Init, rep.Trial-1, cfg.Run.Seed+uint64(rep.Trial-1), nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(run, "classify", initDir(rep.Init), "trial-"+strconv.Itoa(rep.Trial))
	if err := st.loadWeights(filepath.Join(dir, "best.ckpt")); err != nil {
		t.Fatal(err)
	}
	return st
}

// writeRadiograph writes a synthetic radiograph as a PNG.
func writeRadiograph(t *testing.T, path string, size int, seed uint64) {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, data.DrawRadiograph(size, 1, seed)); err != nil {
		t.Fatal(err)
	}
}

// TestUndefinedAUCIsReported: a test split where a class has no positive
// image (a small label fraction) gives a trial with that class null and
// named in the note, the mean over the other classes, and results.json that
// encodes (no NaN); with no class defined the trial says why instead of a
// score.
func TestUndefinedAUCIsReported(t *testing.T) {
	// 4 images x 3 classes: nodule has 2 positives, opacity none, effusion one.
	labels := []float32{1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0}
	scores := []float32{.9, .1, .2, .2, .3, .8, .7, .4, .1, .1, .2, .3}
	rep, err := metrics.PerClassAUC(labels, scores, 4, 3, []string{"nodule", "opacity", "effusion"})
	if err != nil {
		t.Fatal(err)
	}
	tr := aucResult(rep)
	if tr.Score == nil || tr.PerClass[0] == nil || tr.PerClass[1] != nil || tr.PerClass[2] == nil {
		t.Fatalf("per class %v, score %v", tr.PerClass, tr.Score)
	}
	if !strings.Contains(tr.Note, "opacity") {
		t.Errorf("note %q does not name the undefined class", tr.Note)
	}
	if *tr.Score != (*tr.PerClass[0]+*tr.PerClass[2])/2 {
		t.Errorf("score %v is not the mean of the defined classes", *tr.Score)
	}
	if _, err := json.Marshal(tr); err != nil {
		t.Errorf("the trial does not encode: %v", err)
	}
	none, _ := metrics.PerClassAUC([]float32{0, 0, 0}, []float32{.1, .2, .3}, 3, 1, []string{"nodule"})
	if tr := aucResult(none); tr.Score != nil || tr.Error == "" {
		t.Errorf("no defined class: score %v, error %q", tr.Score, tr.Error)
	}
}
