package stages

import (
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/sugarme/gotch/ts"

	"dira/checkpoint"
	"dira/data"
	"dira/internal/torch"
	"dira/internal/torch/torchtest"
	"dira/pipeline"
)

// tinyConfig is a ResNet-18 U-Net at 64x64 on synthetic data with a warmup
// (2 epochs of 3 steps) and an adversarial stage (1 epoch of 2 steps): a few
// steps take seconds on 2 cores.
func tinyConfig(t *testing.T, outDir string) pipeline.Config {
	t.Helper()
	cfg := pipeline.Default()
	cfg.Run = pipeline.RunConfig{Name: "t", OutputDir: outDir, Seed: 3, Threads: 2, Device: "cpu", Precision: pipeline.PrecisionFP32}
	cfg.Data.Synthetic = data.SyntheticConfig{TrainCount: 24, ValCount: 8, Size: 96, Seed: 2}
	cfg.Data.ImageSize = 64
	cfg.Data.Workers = 2
	cfg.Model.Arch = "resnet18"
	cfg.Model.DecoderChannels = []int{32, 16, 16, 8, 8}
	cfg.Model.Projection.HiddenDim = 64
	cfg.Model.Projection.OutDim = 32
	cfg.MoCo.QueueSize = 64
	cfg.MoCo.GhostBNGroups = 2
	w := newStage[*pipeline.WarmupStage](t, pipeline.StageWarmup)
	w.Epochs, w.BatchSize, w.StepsPerEpoch, w.LogEverySteps = 2, 8, 3, 1
	a := newStage[*pipeline.AdversarialStage](t, pipeline.StageAdversarial)
	a.Epochs, a.BatchSize, a.StepsPerEpoch, a.LogEverySteps = 1, 8, 2, 1
	cfg.Stages = pipeline.Stages{w, a}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// newStage returns a kind's default settings as their concrete type.
func newStage[S pipeline.StageSettings](t *testing.T, kind string) S {
	t.Helper()
	s, err := pipeline.NewStage(kind)
	if err != nil {
		t.Fatal(err)
	}
	return s.(S)
}

// training is the training settings of cfg.Stages[i].
func training(cfg pipeline.Config, i int) *pipeline.Training {
	tr, _ := pipeline.TrainingOf(cfg.Stages[i])
	return tr
}

func runStages(t *testing.T, cfg pipeline.Config, dir string, hooks Hooks) error {
	t.Helper()
	r, err := pipeline.Open(dir, cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	list, err := Build(cfg, Options{Hooks: hooks})
	if err != nil {
		t.Fatal(err)
	}
	return pipeline.Execute(context.Background(), r, list)
}

// records reads metrics.jsonl's records of one kind, keyed by step (step
// records) or epoch (epoch records), without the wall-clock img_per_s.
func records(t *testing.T, path, kind string) map[int64]map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int64]map[string]any{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if r["kind"] != kind {
			continue
		}
		delete(r, "img_per_s")
		key := "step"
		if kind == "epoch" {
			key = "epoch"
		}
		out[int64(r[key].(float64))] = r
	}
	return out
}

// maxDiff is the largest difference between the numbers of two records
// (nested maps included); a key in one only counts as infinite.
func maxDiff(a, b map[string]any) float64 {
	worst := 0.0
	for k, va := range a {
		switch x := va.(type) {
		case float64:
			y, ok := b[k].(float64)
			if !ok {
				return math.Inf(1)
			}
			worst = math.Max(worst, math.Abs(x-y))
		case map[string]any:
			y, ok := b[k].(map[string]any)
			if !ok {
				return math.Inf(1)
			}
			worst = math.Max(worst, maxDiff(x, y))
		}
	}
	return worst
}

// TestKilledRunResumesExactly: the same tiny warmup+adversarial run, once
// uninterrupted and once SIGKILLed right after a mid-epoch checkpoint and then
// resumed, logs the same per-step losses and the same epoch summaries (the
// epoch's running sums are part of the checkpoint) within 1e-6.
func TestKilledRunResumesExactly(t *testing.T) {
	torchtest.Pin(t)
	if dir := os.Getenv("DIRA_KILL_CHILD"); dir != "" {
		cfg := tinyConfig(t, filepath.Dir(dir))
		training(cfg, 0).CheckpointEverySteps = 2
		runStages(t, cfg, dir, Hooks{AfterCheckpoint: func(stage string, step int64) {
			if stage == pipeline.StageWarmup && step == 4 {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
			}
		}})
		t.Fatal("the child was not killed")
	}
	base := t.TempDir()
	cfg := tinyConfig(t, base)
	training(cfg, 0).CheckpointEverySteps = 2
	whole := filepath.Join(base, "whole")
	if err := runStages(t, cfg, whole, Hooks{}); err != nil {
		t.Fatal(err)
	}

	killed := filepath.Join(base, "killed")
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledRunResumesExactly$")
	cmd.Env = append(os.Environ(), "DIRA_KILL_CHILD="+killed)
	err := cmd.Run()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die of SIGKILL: %v", err)
	}
	ck, err := checkpoint.Read(filepath.Join(killed, "warmup", "last.ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	if ck.Meta.Step != 4 || ck.Meta.Epoch != 1 || ck.Meta.Position.Batch != 1 || ck.Meta.EpochSteps != 1 {
		t.Fatalf("checkpoint at kill: step %d epoch %d batch %d (%d steps summed), want step 4, 1 step into epoch 1",
			ck.Meta.Step, ck.Meta.Epoch, ck.Meta.Position.Batch, ck.Meta.EpochSteps)
	}
	if err := runStages(t, cfg, killed, Hooks{}); err != nil {
		t.Fatal(err)
	}
	for _, stage := range []string{"warmup", "adversarial"} {
		for _, kind := range []string{"step", "epoch"} {
			a := records(t, filepath.Join(whole, stage, "metrics.jsonl"), kind)
			b := records(t, filepath.Join(killed, stage, "metrics.jsonl"), kind)
			if len(a) != len(b) || len(a) == 0 {
				t.Fatalf("%s: %d %s records uninterrupted, %d resumed", stage, len(a), kind, len(b))
			}
			worst := 0.0
			for k, ra := range a {
				worst = math.Max(worst, maxDiff(ra, b[k]))
			}
			t.Logf("%s: %d %s records, max |difference| uninterrupted vs killed+resumed = %.3g", stage, len(a), kind, worst)
			if worst > 1e-6 {
				t.Errorf("%s: resumed %s records differ by %.3g", stage, kind, worst)
			}
		}
	}
}

// TestNaNStopsWithStepNamed feeds a NaN image at step 3: the stage stops
// naming the epoch, step 3 and the loss term, lists the batch's files, and
// last.ckpt is still the good one from step 2.
func TestNaNStopsWithStepNamed(t *testing.T) {
	torchtest.Pin(t)
	base := t.TempDir()
	cfg := tinyConfig(t, base)
	cfg.Stages = cfg.Stages[:1]
	training(cfg, 0).CheckpointEverySteps = 2
	dir := filepath.Join(base, "run")
	err := runStages(t, cfg, dir, Hooks{BeforeStep: func(_ string, step int64, q, k, target *ts.Tensor) {
		if step == 3 {
			nan := torch.FloatScalar(math.NaN())
			torch.Check(torch.InPlace(q, func() error { return q.Fill_(nan) }))
			torch.DropScalars(nan)
		}
	}})
	if err == nil {
		t.Fatal("a NaN input did not stop the stage")
	}
	for _, want := range []string{"stage warmup: epoch 1 step 3: loss term nce is NaN", "nonfinite-step3.txt"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	names, rerr := os.ReadFile(filepath.Join(dir, "warmup", "nonfinite-step3.txt"))
	if rerr != nil || !strings.Contains(string(names), "synthetic") {
		t.Errorf("offending batch's files not written: %v %q", rerr, names)
	}
	ck, err := checkpoint.Read(filepath.Join(dir, "warmup", "last.ckpt"))
	if err != nil {
		t.Fatalf("last good checkpoint unreadable: %v", err)
	}
	if ck.Meta.Step != 2 {
		t.Fatalf("last.ckpt is at step %d, want the good step 2", ck.Meta.Step)
	}
	for _, e := range ck.Tensors {
		for _, v := range e.Float32() {
			if math.IsNaN(float64(v)) {
				t.Fatalf("checkpoint tensor %s holds NaN", e.Name)
			}
		}
	}
}

// TestLibtorchErrorFailsTheStage: a libtorch error at step 3 (a real one: a
// matrix product of mismatched shapes inside the step) ends the stage with
// one line naming the epoch and step, marks it failed in the manifest, leaves
// last.ckpt as it was, and a re-run resumes from it and finishes with the
// uninterrupted run's losses.
func TestLibtorchErrorFailsTheStage(t *testing.T) {
	torchtest.Pin(t)
	base := t.TempDir()
	cfg := tinyConfig(t, base)
	cfg.Stages = cfg.Stages[:1]
	training(cfg, 0).CheckpointEverySteps = 2
	whole := filepath.Join(base, "whole")
	if err := runStages(t, cfg, whole, Hooks{}); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "run")
	err := runStages(t, cfg, dir, Hooks{BeforeStep: func(_ string, step int64, q, _, _ *ts.Tensor) {
		if step == 3 {
			torch.Must(q.Mm(q, false)) // [8,3,64,64] x [8,3,64,64]: libtorch refuses
		}
	}})
	if err == nil || strings.Contains(err.Error(), "\n") || !strings.HasPrefix(err.Error(), "stage warmup: epoch 1 step 3: libtorch: ") {
		t.Fatalf("err = %q, want one line \"stage warmup: epoch 1 step 3: libtorch: ...\"", err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "manifest.json"))
	var m pipeline.Manifest
	json.Unmarshal(b, &m)
	if m.Stages[0].State != pipeline.StateFailed || !strings.Contains(m.Stages[0].Error, "step 3") {
		t.Errorf("manifest stage record %+v, want failed with the error", m.Stages[0])
	}
	ck, err := checkpoint.Read(filepath.Join(dir, "warmup", "last.ckpt"))
	if err != nil || ck.Meta.Step != 2 {
		t.Fatalf("last.ckpt after the failure: %v, step %d; want the step-2 checkpoint", err, ck.Meta.Step)
	}
	if err := runStages(t, cfg, dir, Hooks{}); err != nil {
		t.Fatal(err)
	}
	a := records(t, filepath.Join(whole, "warmup", "metrics.jsonl"), "step")
	r := records(t, filepath.Join(dir, "warmup", "metrics.jsonl"), "step")
	worst := 0.0
	for k, ra := range a {
		worst = math.Max(worst, maxDiff(ra, r[k]))
	}
	if len(a) != len(r) || worst > 1e-6 {
		t.Errorf("re-run after the failure: %d steps (want %d), max |loss difference| %.3g", len(r), len(a), worst)
	}
}

// TestOverfitOneBatch: the restoration MSE on one fixed batch falls by at
// least half within a few dozen steps.
func TestOverfitOneBatch(t *testing.T) {
	torchtest.Pin(t)
	cfg := tinyConfig(t, t.TempDir())
	p, st := newPretrainState(t, cfg, 0)
	defer st.close()
	obj := p.objective(st)
	st.sgd.LR = training(cfg, 0).Optimizer.LR
	train, _, err := p.loaders()
	if err != nil {
		t.Fatal(err)
	}
	ep := train.Epoch(context.Background(), 0)
	b, err := ep.Next()
	ep.Close()
	if err != nil {
		t.Fatal(err)
	}
	var first, last float64
	const steps = 40
	for i := 0; i < steps; i++ {
		l, bad, err := p.step(obj, st, b)
		if err != nil || bad != "" {
			t.Fatal(err, bad)
		}
		if i == 0 {
			first = l["mse"]
		}
		last = l["mse"]
		st.meta.Step++
	}
	t.Logf("restoration MSE on one batch: step 1 %.4g, step %d %.4g (ratio %.2f)", first, steps, last, last/first)
	if !(last <= first/2) {
		t.Fatalf("MSE fell from %.4g to %.4g, not by half", first, last)
	}
}

// newPretrainState builds stage i of cfg and its fresh state.
func newPretrainState(t *testing.T, cfg pipeline.Config, i int) (*Pretrain, *state) {
	t.Helper()
	s, err := newPretrain(cfg, cfg.Stages[i], Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := s.(*Pretrain)
	st, err := newState(cfg, p.kind, p.train, p.adv)
	if err != nil {
		t.Fatal(err)
	}
	return p, st
}

// TestMoCoStageAndValidation runs the moco baseline (mode di: no decoder, no
// restoration target) for one step, then checks that validation leaves the
// key encoder and the queue alone by default and moves both with
// validation_moves_keys (the official behaviour).
func TestMoCoStageAndValidation(t *testing.T) {
	torchtest.Pin(t)
	base := t.TempDir()
	cfg := tinyConfig(t, base)
	m := newStage[*pipeline.MoCoStage](t, pipeline.StageMoCo)
	m.Epochs, m.BatchSize, m.StepsPerEpoch, m.LogEverySteps = 1, 8, 1, 1
	cfg.Stages = pipeline.Stages{m}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := runStages(t, cfg, filepath.Join(base, "moco"), Hooks{}); err != nil {
		t.Fatal(err)
	}
	ck, err := checkpoint.Read(filepath.Join(base, "moco", "moco", "last.ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	if !ck.Has("model/encoder_q.conv1.weight") {
		t.Fatal("moco checkpoint lacks the torchvision-named query encoder")
	}
	for _, e := range ck.Tensors {
		if strings.Contains(e.Name, "decoder") {
			t.Fatalf("moco checkpoint has decoder tensor %s", e.Name)
		}
	}

	for _, moves := range []bool{false, true} {
		c := tinyConfig(t, base)
		c.Stages = c.Stages[:1]
		training(c, 0).ValidationMovesKeys = moves
		p, st := newPretrainState(t, c, 0)
		_, val, err := p.loaders()
		if err != nil {
			t.Fatal(err)
		}
		key := st.moco.Params.Get("encoder_k.backbone.encoder.conv1.weight").T
		// Make the query differ from the key so a momentum update shows.
		q := st.moco.Params.Get("encoder_q.backbone.encoder.conv1.weight")
		vals, shape, _ := st.moco.Params.Float32(q.Name)
		for i := range vals {
			vals[i] += 0.5
		}
		if err := st.moco.Params.SetData(q.Name, shape, vals); err != nil {
			t.Fatal(err)
		}
		keyBefore, queueBefore := torch.Float32s(key), torch.Float32s(st.moco.Queue)
		if _, err := p.validate(context.Background(), p.objective(st), val, t.TempDir(), 0); err != nil {
			t.Fatal(err)
		}
		keyMoved := !slices.Equal(keyBefore, torch.Float32s(key))
		queueMoved := !slices.Equal(queueBefore, torch.Float32s(st.moco.Queue))
		if keyMoved != moves || queueMoved != moves {
			t.Errorf("validation_moves_keys=%v: key encoder moved %v, queue moved %v", moves, keyMoved, queueMoved)
		}
		st.close()
	}
}

// TestSkippedImagesAreListed: under bad_images: skip, an unreadable file in a
// folder source is named in metrics.jsonl, and training goes on.
func TestSkippedImagesAreListed(t *testing.T) {
	torchtest.Pin(t)
	base := t.TempDir()
	imgs := filepath.Join(base, "images")
	os.MkdirAll(imgs, 0o755)
	for i := 0; i < 9; i++ {
		f, err := os.Create(filepath.Join(imgs, fmt.Sprintf("img%02d.png", i)))
		if err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(f, data.DrawRadiograph(96, 1, uint64(i))); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	// 8 good images and a bad one: the one batch of 8 needs every image.
	bad := filepath.Join(imgs, "img00.png")
	os.WriteFile(bad, []byte("this is not a PNG"), 0o644)
	cfg := tinyConfig(t, base)
	cfg.Data.Source, cfg.Data.Root, cfg.Data.ValFraction = data.SourceFolder, imgs, 0
	cfg.Data.MaxSkippedFraction = 0.2 // 1 of 9 is above the default tenth
	cfg.Stages = cfg.Stages[:1]
	training(cfg, 0).Epochs, training(cfg, 0).StepsPerEpoch = 1, 0
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "run")
	if err := runStages(t, cfg, dir, Hooks{}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "warmup", "metrics.jsonl"))
	if !strings.Contains(string(b), `"kind":"skipped"`) || !strings.Contains(string(b), bad) {
		t.Fatalf("metrics.jsonl does not name the skipped file %s:\n%s", bad, b)
	}
}

// TestNoUsableImageFailsTheStage: a folder whose images are all unreadable
// (garbage and a FIFO) under bad_images: skip. With the default
// max_skipped_fraction the stage stops at the first skip past the limit,
// saying how many were skipped; with no limit (1) it stops after the epoch
// that made no step. Either way no checkpoint is written and nothing
// panics. Before, it ran 0 steps, wrote untrained checkpoints and panicked
// in plotting.
func TestNoUsableImageFailsTheStage(t *testing.T) {
	torchtest.Pin(t)
	base := t.TempDir()
	imgs := filepath.Join(base, "images")
	os.MkdirAll(imgs, 0o755)
	for i := range 11 {
		os.WriteFile(filepath.Join(imgs, fmt.Sprintf("img%02d.png", i)), []byte("this is not a PNG"), 0o644)
	}
	if err := syscall.Mkfifo(filepath.Join(imgs, "img11.png"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		frac float64
		want string
	}{
		{0.1, "2 of the 2 images read so far were unreadable and skipped, more than the 1 that data.max_skipped_fraction allows for 12 images"},
		{1, "epoch 1: no usable image: 12 images were unreadable and skipped"},
	} {
		cfg := tinyConfig(t, base)
		cfg.Data.Source, cfg.Data.Root, cfg.Data.ValFraction = data.SourceFolder, imgs, 0
		cfg.Data.MaxSkippedFraction = tc.frac
		cfg.Stages = cfg.Stages[:1]
		training(cfg, 0).Epochs, training(cfg, 0).StepsPerEpoch = 1, 0
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(base, fmt.Sprintf("run%v", tc.frac))
		err := runStages(t, cfg, dir, Hooks{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("max_skipped_fraction %v: %v; want %q", tc.frac, err, tc.want)
		}
		for _, f := range []string{"last.ckpt", "best.ckpt"} {
			if _, err := os.Stat(filepath.Join(dir, "warmup", f)); !os.IsNotExist(err) {
				t.Errorf("max_skipped_fraction %v: %s written (%v)", tc.frac, f, err)
			}
		}
	}
}
