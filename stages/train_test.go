package stages

import (
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/sugarme/gotch/ts"

	"dira/data"
	"dira/model"
	"dira/pipeline"
)

// tinyConfig is a ResNet-18 U-Net at 64x64 on synthetic data: a few steps
// take seconds on 2 cores.
func tinyConfig(t *testing.T, outDir string) pipeline.Config {
	t.Helper()
	cfg := pipeline.Default()
	cfg.Run = pipeline.RunConfig{Name: "t", OutputDir: outDir, Seed: 3, Threads: 2, Device: "cpu"}
	cfg.Data.Synthetic = data.SyntheticConfig{TrainCount: 24, ValCount: 8, Size: 96, Seed: 2}
	cfg.Data.ImageSize = 64
	cfg.Data.Workers = 2
	cfg.Model.Arch = "resnet18"
	cfg.Model.DecoderChannels = []int{32, 16, 16, 8, 8}
	cfg.Model.Projection.HiddenDim = 64
	cfg.Model.Projection.OutDim = 32
	cfg.MoCo.QueueSize = 64
	cfg.MoCo.GhostBNGroups = 2
	w := pipeline.DefaultStage(pipeline.StageWarmup)
	w.Epochs, w.BatchSize, w.StepsPerEpoch, w.LogEverySteps = 2, 8, 3, 1
	a := pipeline.DefaultStage(pipeline.StageAdversarial)
	a.Epochs, a.BatchSize, a.StepsPerEpoch, a.LogEverySteps = 1, 8, 2, 1
	cfg.Stages = []pipeline.StageConfig{w, a}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func runStages(t *testing.T, cfg pipeline.Config, dir string, hook func(*Training)) error {
	t.Helper()
	r, err := pipeline.Open(dir, cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var list []pipeline.Stage
	for _, s := range cfg.Stages {
		tr, err := NewTraining(cfg, s)
		if err != nil {
			t.Fatal(err)
		}
		if hook != nil {
			hook(tr)
		}
		list = append(list, tr)
	}
	return pipeline.Execute(context.Background(), r, list)
}

type stepRec struct {
	Kind string  `json:"kind"`
	Step int64   `json:"step"`
	Loss float64 `json:"loss"`
	NCE  float64 `json:"nce"`
	MSE  float64 `json:"mse"`
	AdvG float64 `json:"adv_g"`
	D    float64 `json:"d_loss"`
}

func stepLosses(t *testing.T, path string) map[int64]stepRec {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int64]stepRec{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var r stepRec
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if r.Kind == "step" {
			out[r.Step] = r
		}
	}
	return out
}

// TestKilledRunResumesExactly: the same tiny warmup+adversarial run, once
// uninterrupted and once SIGKILLed right after a mid-epoch checkpoint and then
// resumed, logs the same per-step losses (within 1e-6) after the resume point.
func TestKilledRunResumesExactly(t *testing.T) {
	runtime.LockOSThread() // gotch: grad mode and the error slot are per OS thread
	if dir := os.Getenv("DIRA_KILL_CHILD"); dir != "" {
		cfg := tinyConfig(t, filepath.Dir(dir))
		cfg.Stages[0].CheckpointEverySteps = 2
		runStages(t, cfg, dir, func(tr *Training) {
			tr.AfterCheckpoint = func(step int64) {
				if tr.Name() == pipeline.StageWarmup && step == 4 {
					syscall.Kill(os.Getpid(), syscall.SIGKILL)
				}
			}
		})
		t.Fatal("the child was not killed")
	}
	base := t.TempDir()
	cfg := tinyConfig(t, base)
	cfg.Stages[0].CheckpointEverySteps = 2
	whole := filepath.Join(base, "whole")
	if err := runStages(t, cfg, whole, nil); err != nil {
		t.Fatal(err)
	}

	killed := filepath.Join(base, "killed")
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledRunResumesExactly$")
	cmd.Env = append(os.Environ(), "DIRA_KILL_CHILD="+killed)
	err := cmd.Run()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die of SIGKILL: %v", err)
	}
	ck, err := LoadCheckpoint(filepath.Join(killed, "warmup", "last.ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	if ck.Meta.Step != 4 || ck.Meta.Epoch != 1 || ck.Meta.Position.Batch != 1 {
		t.Fatalf("checkpoint at kill: step %d epoch %d batch %d, want step 4 in epoch 1 after batch 1", ck.Meta.Step, ck.Meta.Epoch, ck.Meta.Position.Batch)
	}
	if err := runStages(t, cfg, killed, nil); err != nil {
		t.Fatal(err)
	}
	for _, stage := range []string{"warmup", "adversarial"} {
		a := stepLosses(t, filepath.Join(whole, stage, "metrics.jsonl"))
		b := stepLosses(t, filepath.Join(killed, stage, "metrics.jsonl"))
		if len(a) != len(b) || len(a) == 0 {
			t.Fatalf("%s: %d steps uninterrupted, %d resumed", stage, len(a), len(b))
		}
		var worst float64
		for s, ra := range a {
			rb := b[s]
			for _, d := range []float64{ra.Loss - rb.Loss, ra.NCE - rb.NCE, ra.MSE - rb.MSE, ra.AdvG - rb.AdvG, ra.D - rb.D} {
				worst = math.Max(worst, math.Abs(d))
			}
		}
		t.Logf("%s: %d steps, max |loss difference| uninterrupted vs killed+resumed = %.3g", stage, len(a), worst)
		if worst > 1e-6 {
			t.Errorf("%s: resumed losses differ by %.3g", stage, worst)
		}
	}
}

// TestNaNStopsWithStepNamed feeds a NaN image at step 3: the stage stops
// naming step 3 and the loss term, lists the batch's files, and last.ckpt is
// still the good one from step 2.
func TestNaNStopsWithStepNamed(t *testing.T) {
	runtime.LockOSThread() // gotch: grad mode and the error slot are per OS thread
	base := t.TempDir()
	cfg := tinyConfig(t, base)
	cfg.Stages = cfg.Stages[:1]
	cfg.Stages[0].CheckpointEverySteps = 2
	dir := filepath.Join(base, "run")
	err := runStages(t, cfg, dir, func(tr *Training) {
		tr.BeforeStep = func(step int64, q, k, target *ts.Tensor) {
			if step == 3 {
				nan := ts.FloatScalar(math.NaN())
				q.MustFill_(nan)
				nan.MustDrop()
			}
		}
	})
	if err == nil {
		t.Fatal("a NaN input did not stop the stage")
	}
	for _, want := range []string{"step 3", "loss term nce is NaN", "nonfinite-step3.txt"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	names, rerr := os.ReadFile(filepath.Join(dir, "warmup", "nonfinite-step3.txt"))
	if rerr != nil || !strings.Contains(string(names), "synthetic") {
		t.Errorf("offending batch's files not written: %v %q", rerr, names)
	}
	ck, err := LoadCheckpoint(filepath.Join(dir, "warmup", "last.ckpt"))
	if err != nil {
		t.Fatalf("last good checkpoint unreadable: %v", err)
	}
	if ck.Meta.Step != 2 {
		t.Fatalf("last.ckpt is at step %d, want the good step 2", ck.Meta.Step)
	}
	for name, a := range ck.Tensors {
		for _, v := range a.Float32() {
			if math.IsNaN(float64(v)) {
				t.Fatalf("checkpoint tensor %s holds NaN", name)
			}
		}
	}
}

// TestOverfitOneBatch: the restoration MSE on one fixed batch falls by at
// least half within a few dozen steps.
func TestOverfitOneBatch(t *testing.T) {
	runtime.LockOSThread() // grad mode is per OS thread
	defer runtime.UnlockOSThread()
	base := t.TempDir()
	cfg := tinyConfig(t, base)
	cfg.Stages = cfg.Stages[:1]
	r, err := pipeline.Open(filepath.Join(base, "run"), cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr0, _ := NewTraining(cfg, cfg.Stages[0])
	tr := &trainer{Training: tr0, run: r, dir: r.StageDir("warmup"), log: os.Stderr}
	defer tr.close()
	if err := tr.setup(); err != nil {
		t.Fatal(err)
	}
	tr.sgd.LR = cfg.Stages[0].Optimizer.LR
	ep := tr.train.Epoch(context.Background(), 0)
	b, err := ep.Next()
	ep.Close()
	if err != nil {
		t.Fatal(err)
	}
	var first, last float64
	const steps = 40
	for i := 0; i < steps; i++ {
		l, err := tr.step(b)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = l["mse"]
		}
		last = l["mse"]
		tr.meta.Step++
	}
	t.Logf("restoration MSE on one batch: step 1 %.4g, step %d %.4g (ratio %.2f)", first, steps, last, last/first)
	if !(last <= first/2) {
		t.Fatalf("MSE fell from %.4g to %.4g, not by half", first, last)
	}
}

// TestMoCoStageAndValidation runs the moco baseline (mode di: no decoder, no
// restoration target) for one step, then checks that validation leaves the
// key encoder and the queue alone by default and moves both with
// validation_moves_keys (the official behaviour).
func TestMoCoStageAndValidation(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	base := t.TempDir()
	cfg := tinyConfig(t, base)
	m := pipeline.DefaultStage(pipeline.StageMoCo)
	m.Epochs, m.BatchSize, m.StepsPerEpoch, m.LogEverySteps = 1, 8, 1, 1
	cfg.Stages = []pipeline.StageConfig{m}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := runStages(t, cfg, filepath.Join(base, "moco"), nil); err != nil {
		t.Fatal(err)
	}
	ck, err := LoadCheckpoint(filepath.Join(base, "moco", "moco", "last.ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ck.Tensors["model/encoder_q.conv1.weight"]; !ok {
		t.Fatal("moco checkpoint lacks the torchvision-named query encoder")
	}
	for name := range ck.Tensors {
		if strings.Contains(name, "decoder") {
			t.Fatalf("moco checkpoint has decoder tensor %s", name)
		}
	}

	for _, moves := range []bool{false, true} {
		c := tinyConfig(t, base)
		c.Stages = c.Stages[:1]
		c.Stages[0].ValidationMovesKeys = moves
		r, err := pipeline.Open(filepath.Join(base, fmt.Sprint("val-", moves)), c, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		tr0, _ := NewTraining(c, c.Stages[0])
		tr := &trainer{Training: tr0, run: r, dir: r.StageDir("warmup"), log: io.Discard}
		if err := tr.setup(); err != nil {
			t.Fatal(err)
		}
		key := tr.moco.Params.Get("encoder_k.backbone.encoder.conv1.weight").T
		// Make the query differ from the key so a momentum update shows.
		q := tr.moco.Params.Get("encoder_q.backbone.encoder.conv1.weight")
		vals, shape, _ := tr.moco.Params.Float32(q.Name)
		for i := range vals {
			vals[i] += 0.5
		}
		if err := tr.moco.Params.SetData(q.Name, shape, vals); err != nil {
			t.Fatal(err)
		}
		keyBefore, queueBefore := model.Values(key), model.Values(tr.moco.Queue)
		if _, err := tr.validate(context.Background(), 0); err != nil {
			t.Fatal(err)
		}
		keyMoved := !slices.Equal(keyBefore, model.Values(key))
		queueMoved := !slices.Equal(queueBefore, model.Values(tr.moco.Queue))
		if keyMoved != moves || queueMoved != moves {
			t.Errorf("validation_moves_keys=%v: key encoder moved %v, queue moved %v", moves, keyMoved, queueMoved)
		}
		tr.close()
	}
}

// TestSkippedImagesAreListed: under bad_images: skip, an unreadable file in a
// folder source is named in metrics.jsonl, and training goes on.
func TestSkippedImagesAreListed(t *testing.T) {
	runtime.LockOSThread()
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
	cfg.Stages = cfg.Stages[:1]
	cfg.Stages[0].Epochs, cfg.Stages[0].StepsPerEpoch = 1, 0
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "run")
	if err := runStages(t, cfg, dir, nil); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "warmup", "metrics.jsonl"))
	if !strings.Contains(string(b), `"kind":"skipped"`) || !strings.Contains(string(b), bad) {
		t.Fatalf("metrics.jsonl does not name the skipped file %s:\n%s", bad, b)
	}
}
