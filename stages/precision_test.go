package stages

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"dira/checkpoint"
	"dira/data"
	"dira/internal/torch"
	"dira/internal/torch/torchtest"
	"dira/model"
	"dira/optim"
	"dira/pipeline"
)

// bf16Tolerance is the relative difference allowed between a loss term
// computed in bf16 and the same term computed in fp32 from the same weights on
// the same batch (the tiny ResNet-18 U-Net of tinyConfig). bfloat16 keeps 8
// bits of mantissa, a relative rounding of 2^-9 (0.2%) per value; the loss
// terms are fp32 reductions over many such values. Measured (logged by
// TestBF16StepMatchesFP32): at most 0.5% (the InfoNCE term).
const bf16Tolerance = 0.01

// firstBatch is the first training batch of p's stage.
func firstBatch(t *testing.T, p *Pretrain) *data.Batch {
	t.Helper()
	train, _, err := p.loaders()
	if err != nil {
		t.Fatal(err)
	}
	ep := train.Epoch(context.Background(), 0)
	defer ep.Close()
	b, err := ep.Next()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// assertFP32After checks that no autocast state is left on the thread: CPU
// autocast reports disabled, and a convolution and a matrix product of fp32
// tensors give fp32 results.
func assertFP32After(t *testing.T, what string) {
	t.Helper()
	if s := torch.AutocastNow(torch.CPU); s.Enabled {
		t.Errorf("after %s: CPU autocast still enabled (%+v)", what, s)
	}
	x := torch.Ones([]int64{1, 3, 8, 8}, gotch.Float)
	w := torch.Ones([]int64{4, 3, 3, 3}, gotch.Float)
	m := torch.Ones([]int64{4, 4}, gotch.Float)
	c := torch.Must(ts.Conv2d(x, w, ts.None, []int64{1, 1}, []int64{1, 1}, []int64{1, 1}, 1))
	mm := torch.Must(m.Mm(m, false))
	defer torch.Drop(x, w, m, c, mm)
	if torch.TypeOf(c) != torch.Float32 || torch.TypeOf(mm) != torch.Float32 {
		t.Errorf("after %s: fp32 conv gives %v, fp32 mm gives %v", what, torch.TypeOf(c), torch.TypeOf(mm))
	}
}

// TestBF16StepMatchesFP32 computes the losses of one fixed batch from the
// same initial weights in fp32 and in bf16: the validation loss (BN in eval
// mode) and every term of an adversarial-stage training step are within
// bf16Tolerance (relative) of fp32's, and differ from them (autocast acted).
// Around two bf16 steps and a validation pass it checks that no autocast
// state is left behind, that the MoCo forward hands the queue fp32 keys, and
// that weights, optimiser state, the queue and the BN statistics stay fp32
// (bf16 gives the conv weights the channels-last layout).
func TestBF16StepMatchesFP32(t *testing.T) {
	torchtest.Pin(t)
	cfg := tinyConfig(t, t.TempDir())
	losses := map[string]map[string]float64{}
	for _, prec := range []string{pipeline.PrecisionFP32, pipeline.PrecisionBF16} {
		c := cfg
		c.Run.Precision = prec
		p, st := newPretrainState(t, c, 1)
		obj := p.objective(st)
		st.sgd.LR = training(c, 1).Optimizer.LR
		b := firstBatch(t, p)
		q, k, target := batchTensors(b)
		val, rec, err := obj.Eval(q, k, target, false)
		if err != nil {
			t.Fatal(err)
		}
		assertFP32After(t, prec+" validation")
		obj.autocast(func() {
			out, err := st.moco.Forward(q, k, model.Eval, 1, obj.Temperature, nil)
			if err != nil {
				t.Fatal(err)
			}
			if torch.TypeOf(out.Keys) != torch.Float32 {
				t.Errorf("%s: the MoCo forward gives %v keys for the queue, want float32", prec, torch.TypeOf(out.Keys))
			}
			out.Drop()
		})
		torch.Drop(q, k, target, rec)
		for i := range 2 {
			l, bad, err := p.step(obj, st, b)
			if err != nil || bad != "" {
				t.Fatalf("%s step: %v %s", prec, err, bad)
			}
			if i == 0 {
				l["val_loss"] = val
				losses[prec] = l
			}
			st.meta.Step++
			assertFP32After(t, prec+" step")
		}

		for _, pr := range st.moco.Params.List() {
			if typ := torch.TypeOf(pr.T); typ != torch.Float32 && !(typ == torch.Int64 && pr.Buffer) {
				t.Errorf("%s: %s is %v after training", prec, pr.Name, typ)
			}
		}
		// bf16 runs channels-last (NHWC) weights; fp32 keeps PyTorch's layout.
		w := st.moco.Params.Get("encoder_q.backbone.encoder.layer1.0.conv2.weight").T
		if got, want := torch.IsChannelsLast(w), prec == pipeline.PrecisionBF16; got != want {
			t.Errorf("%s: conv weight channels-last %v, want %v", prec, got, want)
		}
		for _, bufs := range [][]*ts.Tensor{st.sgd.Bufs, st.adam.M, st.adam.V} {
			for _, x := range bufs {
				if x != nil && torch.TypeOf(x) != torch.Float32 {
					t.Errorf("%s: optimiser state is %v", prec, torch.TypeOf(x))
				}
			}
		}
		// The queue's first 2*8 columns hold the two steps' keys: unit
		// vectors. Under bf16 their norm is taken over bf16 products (the
		// projection's output is bf16), so it is off 1 by up to ~2^-9.
		dim, size := torch.Size(st.moco.Queue)[0], torch.Size(st.moco.Queue)[1]
		qv := torch.Float32s(st.moco.Queue)
		worst := 0.0
		for col := int64(0); col < 16; col++ {
			var s float64
			for r := int64(0); r < dim; r++ {
				v := float64(qv[r*size+col])
				s += v * v
			}
			worst = math.Max(worst, math.Abs(math.Sqrt(s)-1))
		}
		limit := map[string]float64{pipeline.PrecisionFP32: 1e-5, pipeline.PrecisionBF16: 2e-3}[prec]
		t.Logf("%s: enqueued keys' norms off 1 by at most %.2g (limit %g)", prec, worst, limit)
		if worst > limit {
			t.Errorf("%s: enqueued keys' norms off 1 by %.3g > %g", prec, worst, limit)
		}
		st.close()
	}
	worst := 0.0
	f, h := losses[pipeline.PrecisionFP32], losses[pipeline.PrecisionBF16]
	for _, term := range []string{"val_loss", "nce", "mse", "adv_g", "d_loss", "loss"} {
		a, b := f[term], h[term]
		rel := math.Abs(b-a) / math.Abs(a)
		worst = math.Max(worst, rel)
		t.Logf("%-8s fp32 %.6f bf16 %.6f relative difference %.2e", term, a, b, rel)
		if !(rel <= bf16Tolerance) {
			t.Errorf("%s: bf16 %.6g vs fp32 %.6g, relative difference %.3g > %g", term, b, a, rel, bf16Tolerance)
		}
		if a == b {
			t.Errorf("%s: bf16 equals fp32 bit for bit: autocast did not act", term)
		}
	}
	t.Logf("largest relative difference bf16 vs fp32 from the same weights: %.3g (tolerance %g)", worst, bf16Tolerance)
}

// TestStepErrorLeavesNoAutocast: a libtorch error inside a bf16 forward ends
// the step as an error, and the thread is back in fp32.
func TestStepErrorLeavesNoAutocast(t *testing.T) {
	torchtest.Pin(t)
	cfg := tinyConfig(t, t.TempDir())
	cfg.Run.Precision = pipeline.PrecisionBF16
	p, st := newPretrainState(t, cfg, 0)
	defer st.close()
	obj := p.objective(st)
	q := torch.Zeros([]int64{8, 5, 64, 64}, gotch.Float) // 5 channels: conv1 refuses
	k := torch.Zeros([]int64{8, 3, 64, 64}, gotch.Float)
	target := torch.Zeros([]int64{8, 1, 64, 64}, gotch.Float)
	defer torch.Drop(q, k, target)
	_, _, err := obj.Step(q, k, target, nil)
	if err == nil || !strings.Contains(err.Error(), "libtorch: ") {
		t.Fatalf("err = %v, want a libtorch error", err)
	}
	assertFP32After(t, "a failed bf16 step")
}

// TestBF16KilledRunResumesExactly is TestKilledRunResumesExactly under
// run.precision bf16: a run SIGKILLed after a mid-epoch checkpoint and
// resumed logs the uninterrupted bf16 run's per-step losses and epoch means
// within 1e-6 (the checkpoint is fp32 and bf16 arithmetic is deterministic).
func TestBF16KilledRunResumesExactly(t *testing.T) {
	torchtest.Pin(t)
	bf16 := func(dir string) pipeline.Config {
		cfg := tinyConfig(t, dir)
		cfg.Run.Precision = pipeline.PrecisionBF16
		training(cfg, 0).CheckpointEverySteps = 2
		return cfg
	}
	if dir := os.Getenv("DIRA_BF16_KILL_CHILD"); dir != "" {
		runStages(t, bf16(filepath.Dir(dir)), dir, Hooks{AfterCheckpoint: func(stage string, step int64) {
			if stage == pipeline.StageWarmup && step == 4 {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
			}
		}})
		t.Fatal("the child was not killed")
	}
	base := t.TempDir()
	cfg := bf16(base)
	whole := filepath.Join(base, "whole")
	if err := runStages(t, cfg, whole, Hooks{}); err != nil {
		t.Fatal(err)
	}
	killed := filepath.Join(base, "killed")
	cmd := exec.Command(os.Args[0], "-test.run=^TestBF16KilledRunResumesExactly$")
	cmd.Env = append(os.Environ(), "DIRA_BF16_KILL_CHILD="+killed)
	err := cmd.Run()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die of SIGKILL: %v", err)
	}
	ck, err := checkpoint.Read(filepath.Join(killed, "warmup", "last.ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	if ck.Meta.Step != 4 || ck.Meta.Position.Batch != 1 {
		t.Fatalf("checkpoint at kill: step %d batch %d, want step 4, 1 step into epoch 1", ck.Meta.Step, ck.Meta.Position.Batch)
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
			t.Logf("bf16 %s: %d %s records, max |difference| uninterrupted vs killed+resumed = %.3g", stage, len(a), kind, worst)
			if worst > 1e-6 {
				t.Errorf("bf16 %s: resumed %s records differ by %.3g", stage, kind, worst)
			}
		}
	}
}

// TestBF16CheckpointExports: the export stage takes the checkpoint of a bf16
// run unchanged (it is fp32) and its ONNX files match the Go fp32 forward
// within the export tolerance 1e-4; the same checkpoint resumes an fp32 run.
func TestBF16CheckpointExports(t *testing.T) {
	torchtest.Pin(t)
	base := t.TempDir()
	cfg := tinyConfig(t, base)
	cfg.Run.Precision = pipeline.PrecisionBF16
	cfg.Stages = cfg.Stages[:1]
	training(cfg, 0).Epochs, training(cfg, 0).StepsPerEpoch = 1, 2
	ex := newStage[*pipeline.ExportStage](t, pipeline.StageExport)
	ex.From, ex.Checkpoint = pipeline.StageWarmup, "last"
	cfg.Stages = append(cfg.Stages, ex)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "run")
	if err := runStages(t, cfg, dir, Hooks{}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "export", "export-report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep ExportReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if !rep.Passed || len(rep.Checks) != 2 || rep.Tolerance != 1e-4 {
		t.Fatalf("export of a bf16 checkpoint: %s", b)
	}
	for _, c := range rep.Checks {
		t.Logf("bf16-trained %s: ONNX Runtime vs Go fp32 forward max |diff| %.3g (tolerance %g)", c.File, c.MaxAbsDiff, rep.Tolerance)
	}

	// The fp32 resume: one more epoch of the warmup from the bf16 last.ckpt.
	fp := tinyConfig(t, base)
	fp.Stages = fp.Stages[:1]
	training(fp, 0).Epochs, training(fp, 0).StepsPerEpoch = 2, 2
	p, st := newPretrainState(t, fp, 0)
	defer st.close()
	if err := st.resume(filepath.Join(dir, "warmup", "last.ckpt")); err != nil {
		t.Fatalf("fp32 resume of a bf16 checkpoint: %v", err)
	}
	if st.meta.Step != 2 || st.meta.Epoch != 1 {
		t.Fatalf("resumed at step %d epoch %d, want 2, 1", st.meta.Step, st.meta.Epoch)
	}
	l, bad, err := p.step(p.objective(st), st, firstBatch(t, p))
	if err != nil || bad != "" || math.IsNaN(l["loss"]) {
		t.Fatalf("fp32 step after a bf16 checkpoint: %v %v %v", l, bad, err)
	}
}

// TestLossScalerInStep: the fp16 path's loss scaling, exercised on the CPU
// with fp32 arithmetic (CUDA autocast needs a CUDA build): with the default
// scale 2^16 a step gives the unscaled step's losses and weights bit for bit;
// with a scale so large that the scaled gradients overflow, the generator's
// and the discriminator's updates are skipped, the weights stay as they
// were, and the scale backs off.
func TestLossScalerInStep(t *testing.T) {
	torchtest.Pin(t)
	cfg := tinyConfig(t, t.TempDir())
	weights := func(scaler *optim.GradScaler) (map[string]float64, []float32, []float32) {
		p, st := newPretrainState(t, cfg, 1)
		defer st.close()
		obj := p.objective(st)
		obj.Scaler = scaler
		st.sgd.LR = training(cfg, 1).Optimizer.LR
		l, bad, err := p.step(obj, st, firstBatch(t, p))
		if err != nil || bad != "" {
			t.Fatal(err, bad)
		}
		q := st.moco.Params.Get("encoder_q.backbone.encoder.conv1.weight").T
		d := st.discPs.List()[0].T
		return l, torch.Float32s(q), torch.Float32s(d)
	}
	l0, q0, d0 := weights(nil)
	s := optim.NewGradScaler()
	l1, q1, d1 := weights(s)
	if fmt.Sprint(l0) != fmt.Sprint(l1) || !slices.Equal(q0, q1) || !slices.Equal(d0, d1) {
		t.Errorf("scale 2^16: losses %v vs unscaled %v; weights equal: query %v, discriminator %v", l1, l0, slices.Equal(q0, q1), slices.Equal(d0, d1))
	}
	if s.Scale != 65536 || s.GrowthTracker != 1 {
		t.Errorf("after one clean step: scale %v, tracker %d", s.Scale, s.GrowthTracker)
	}

	_, st := newPretrainState(t, cfg, 1)
	q := st.moco.Params.Get("encoder_q.backbone.encoder.conv1.weight").T
	d := st.discPs.List()[0].T
	qBefore, dBefore := torch.Float32s(q), torch.Float32s(d)
	st.close()
	// An infinite scale makes every scaled gradient Inf or NaN, for sure;
	// the backoff arithmetic itself is optim's TestGradScalerSkipsAndBacksOff.
	huge := &optim.GradScaler{Scale: math.Inf(1), GrowthFactor: 2, BackoffFactor: 0.5, GrowthInterval: 2000, GrowthTracker: 5}
	_, qHuge, dHuge := weights(huge)
	if !slices.Equal(qBefore, qHuge) || !slices.Equal(dBefore, dHuge) {
		t.Errorf("overflowing scale: weights changed (query %v, discriminator %v), want both steps skipped",
			!slices.Equal(qBefore, qHuge), !slices.Equal(dBefore, dHuge))
	}
	if huge.GrowthTracker != 0 {
		t.Errorf("after an overflow: growth tracker %d, want 0 (backed off)", huge.GrowthTracker)
	}
}
