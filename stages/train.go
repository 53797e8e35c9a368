package stages

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"dira/data"
	"dira/internal/torch"
	"dira/model"
	"dira/pipeline"
)

// Training is the warmup, adversarial and moco stages: one loop, three loss
// recipes (DiRA Eq. 4: L = l_dis*L_dis + l_res*L_res + l_adv*L_adv):
//
//	moco        (official mode di)   L = l_dis*InfoNCE                       no decoder
//	warmup      (official mode dir)  L = l_dis*InfoNCE + l_res*MSE(rec, target)
//	adversarial (official mode dira) L = ... + l_adv*LSGAN_G, then the discriminator's LSGAN step
type Training struct {
	cfg   pipeline.Config
	stage pipeline.StageConfig

	// BeforeStep, when set, sees each training batch's tensors before the
	// forward pass (tests use it to inject a NaN).
	BeforeStep func(step int64, query, key, target *ts.Tensor)
	// AfterCheckpoint, when set, runs after each last.ckpt write (tests use
	// it to kill the process right after a mid-epoch checkpoint).
	AfterCheckpoint func(step int64)
}

// NewTraining returns the training stage for stage (warmup, adversarial or moco).
func NewTraining(cfg pipeline.Config, stage pipeline.StageConfig) (*Training, error) {
	switch stage.Name {
	case pipeline.StageWarmup, pipeline.StageAdversarial, pipeline.StageMoCo:
		return &Training{cfg: cfg, stage: stage}, nil
	}
	return nil, fmt.Errorf("stages: %q is not a training stage", stage.Name)
}

// Name is the stage's name (and its folder in the run).
func (t *Training) Name() string { return t.stage.Name }

// trainer is one Run's state.
type trainer struct {
	*Training
	run     *pipeline.Run
	dir     string
	log     io.Writer
	moco    *model.MoCo
	disc    *model.Discriminator
	discPs  *model.Params
	sgd     *SGD
	adam    *Adam
	core    *Step
	meta    Meta
	metrics *os.File
	train   *data.Loader
	val     *data.Loader
	restore bool // decoder and restoration loss (not in mode di)
	adv     bool
	groups  int
	history []epochPoint
}

type epochPoint struct {
	Epoch     int                `json:"epoch"`
	TrainLoss map[string]float64 `json:"train"`
	ValLoss   float64            `json:"val_loss"`
}

// Run trains the stage, resuming from its last.ckpt when there is one.
func (t *Training) Run(ctx context.Context, r *pipeline.Run) (err error) {
	// gotch's grad mode and error slot are per OS thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tr := &trainer{Training: t, run: r, dir: r.StageDir(t.stage.Name), log: r.Log}
	defer tr.close()
	if err := tr.setup(); err != nil {
		return err
	}
	return tr.loop(ctx)
}

func (tr *trainer) lastPath() string { return filepath.Join(tr.dir, "last.ckpt") }
func (tr *trainer) bestPath() string { return filepath.Join(tr.dir, "best.ckpt") }

func (tr *trainer) setup() error {
	c := tr.cfg
	tr.restore = tr.stage.Name != pipeline.StageMoCo
	tr.adv = tr.stage.Name == pipeline.StageAdversarial
	tr.groups = c.MoCo.GhostBNGroups
	var err error
	if tr.moco, err = model.NewMoCo(c.Model, c.MoCo.QueueSize, tr.restore, c.Run.Seed); err != nil {
		return err
	}
	tr.sgd = &SGD{Params: tr.moco.Params.Trainable(), Momentum: tr.stage.Optimizer.Momentum, WeightDecay: tr.stage.Optimizer.WeightDecay}
	if tr.adv {
		tr.discPs = model.NewParams()
		tr.disc = model.NewDiscriminator(tr.discPs, c.Model.Discriminator, c.Run.Seed)
		o := tr.stage.DiscOptimizer
		tr.adam = &Adam{Params: tr.discPs.Trainable(), LR: o.LR, Beta1: o.Beta1, Beta2: o.Beta2, Eps: 1e-8}
	}
	tr.core = &Step{MoCo: tr.moco, Disc: tr.disc, SGD: tr.sgd, Adam: tr.adam, Losses: c.Losses,
		Momentum: c.MoCo.Momentum, Temperature: c.MoCo.Temperature, Groups: tr.groups}
	tr.meta = Meta{Stage: tr.stage.Name, BestEpoch: -1}
	cfgYAML, err := c.YAML()
	if err != nil {
		return err
	}
	tr.meta.Config = string(cfgYAML)

	switch {
	case fileExists(tr.lastPath()):
		if err := tr.resume(tr.lastPath()); err != nil {
			return err
		}
		fmt.Fprintf(tr.log, "%s: resuming from %s (epoch %d, step %d)\n", tr.stage.Name, tr.lastPath(), tr.meta.Epoch, tr.meta.Step)
	case tr.adv && tr.stage.InitFrom != "none":
		// Like --generator_pre_trained_weights: networks, queue and pointer from
		// the warm-up; fresh optimisers, schedule and discriminator (spec 4.5).
		src := filepath.Join(tr.run.Dir, pipeline.StageWarmup, tr.stage.InitFrom+".ckpt")
		ck, err := LoadCheckpoint(src)
		if err != nil {
			return fmt.Errorf("init_from %s: %w", tr.stage.InitFrom, err)
		}
		if err := ck.loadParams(groupModel, tr.moco.Params); err != nil {
			return err
		}
		fmt.Fprintf(tr.log, "%s: starting from %s\n", tr.stage.Name, src)
	}
	if err := tr.openMetrics(); err != nil {
		return err
	}

	dc := c.Data
	dc.Restoration = tr.restore
	trainSrc, valSrc, err := data.OpenSources(dc)
	if err != nil {
		return err
	}
	if tr.train, err = data.NewLoader(trainSrc, dc, tr.stage.BatchSize, c.Run.Seed); err != nil {
		return err
	}
	if tr.train.BatchesPerEpoch() == 0 {
		return fmt.Errorf("the training set has %d images, fewer than batch_size %d", trainSrc.Len(), tr.stage.BatchSize)
	}
	if valSrc != nil {
		// Validation draws its own augmentations (the official code uses the
		// same random transform); its order is fixed.
		if tr.val, err = data.NewLoader(valSrc, dc, tr.stage.BatchSize, c.Run.Seed^0x5eed, data.WithShuffle(false)); err != nil {
			return err
		}
		if tr.val.BatchesPerEpoch() == 0 {
			tr.val = nil
		}
	}
	return nil
}

// resume restores everything a checkpoint holds.
func (tr *trainer) resume(path string) error {
	ck, err := LoadCheckpoint(path)
	if err != nil {
		return err
	}
	if ck.Meta.Stage != tr.stage.Name {
		return fmt.Errorf("checkpoint %s belongs to stage %q, not %q", path, ck.Meta.Stage, tr.stage.Name)
	}
	if err := ck.loadParams(groupModel, tr.moco.Params); err != nil {
		return err
	}
	if tr.adv {
		if err := ck.loadParams(groupDisc, tr.discPs); err != nil {
			return err
		}
	}
	names := tr.moco.Params.List()
	if sgdNames := ck.Names(groupSGD); len(sgdNames) > 0 {
		tr.sgd.Bufs = make([]*ts.Tensor, len(tr.sgd.Params))
		i := 0
		for _, p := range names {
			if p.Buffer || p.Frozen {
				continue
			}
			if tr.sgd.Bufs[i], err = ck.tensorOf(groupSGD + p.Name); err != nil {
				return err
			}
			i++
		}
	}
	if tr.adv && ck.Meta.AdamSteps > 0 {
		tr.adam.Steps = ck.Meta.AdamSteps
		for _, p := range tr.discPs.List() {
			m, err := ck.tensorOf(groupAdamM + p.Name)
			if err != nil {
				return err
			}
			v, err := ck.tensorOf(groupAdamV + p.Name)
			if err != nil {
				return err
			}
			tr.adam.M = append(tr.adam.M, m)
			tr.adam.V = append(tr.adam.V, v)
		}
	}
	cfg := tr.meta.Config
	tr.meta = ck.Meta
	tr.meta.Config = cfg
	return nil
}

// save writes a checkpoint of the current state to path.
func (tr *trainer) save(path string) error {
	var tensors []namedTensor
	for _, p := range tr.moco.Params.List() {
		tensors = append(tensors, namedTensor{groupModel + p.Name, p.T})
	}
	if tr.adv {
		for _, p := range tr.discPs.List() {
			tensors = append(tensors, namedTensor{groupDisc + p.Name, p.T})
		}
	}
	if tr.sgd.Bufs != nil {
		i := 0
		for _, p := range tr.moco.Params.List() {
			if p.Buffer || p.Frozen {
				continue
			}
			if b := tr.sgd.Bufs[i]; b != nil {
				tensors = append(tensors, namedTensor{groupSGD + p.Name, b})
			}
			i++
		}
	}
	meta := tr.meta
	if tr.adv && tr.adam.M != nil {
		meta.AdamSteps = tr.adam.Steps
		for i, p := range tr.discPs.List() {
			tensors = append(tensors, namedTensor{groupAdamM + p.Name, tr.adam.M[i]}, namedTensor{groupAdamV + p.Name, tr.adam.V[i]})
		}
	}
	sum, err := saveCheckpoint(path, meta, tensors)
	if err != nil {
		return err
	}
	return tr.run.RecordArtifactSum(tr.stage.Name, path, sum)
}

// openMetrics opens metrics.jsonl for appending, first dropping lines past
// the resumed step so a resumed run's log reads as an uninterrupted one.
func (tr *trainer) openMetrics() error {
	path := filepath.Join(tr.dir, "metrics.jsonl")
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
			if (rec.Kind == "step" && rec.Step <= tr.meta.Step) || (rec.Kind == "epoch" && rec.Epoch < tr.meta.Epoch) {
				keep = append(keep, line)
				if rec.Kind == "epoch" {
					var p epochPoint
					json.Unmarshal([]byte(line), &p)
					tr.history = append(tr.history, p)
				}
			}
		}
		body := strings.Join(keep, "\n")
		if body != "" {
			body += "\n"
		}
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	tr.metrics = f
	return nil
}

func (tr *trainer) logMetrics(rec map[string]any) {
	b, _ := json.Marshal(rec)
	tr.metrics.Write(append(b, '\n'))
}

func (tr *trainer) close() {
	if tr.metrics != nil {
		tr.metrics.Close()
	}
	if tr.moco != nil {
		tr.moco.Params.Drop()
	}
	if tr.discPs != nil {
		tr.discPs.Drop()
	}
	if tr.sgd != nil {
		torch.Drop(tr.sgd.Bufs...)
	}
	if tr.adam != nil {
		torch.Drop(tr.adam.M...)
		torch.Drop(tr.adam.V...)
	}
}

// loop is the training loop, top to bottom: per epoch the learning rate, the
// steps (forward, losses, backward, SGD, discriminator, enqueue), validation,
// checkpoints and plots.
func (tr *trainer) loop(ctx context.Context) error {
	s := tr.stage
	steps := tr.train.BatchesPerEpoch()
	if s.StepsPerEpoch > 0 && s.StepsPerEpoch < steps {
		steps = s.StepsPerEpoch
	}
	prog := newProgress(tr.log, tr.stage.Name, s.Epochs, steps)
	for epoch := tr.meta.Epoch; epoch < s.Epochs; epoch++ {
		tr.sgd.LR = LR(s.Optimizer.LR, s.Optimizer.Schedule, s.Optimizer.Milestones, epoch, s.Epochs)
		sums := map[string]float64{}
		nb := 0
		ep := tr.train.EpochFrom(ctx, epoch, tr.meta.Position)
		for tr.meta.Position.Batch < steps {
			b, err := ep.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				ep.Close()
				return err
			}
			for _, sk := range b.Skipped {
				// skip policy: the bad image is named in metrics.jsonl and on
				// the log, and the batch was filled with the next good images.
				tr.logMetrics(map[string]any{"kind": "skipped", "epoch": epoch, "step": tr.meta.Step, "file": sk.Name, "error": sk.Err.Error()})
				fmt.Fprintf(tr.log, "%s: skipped unreadable image %s: %v\n", tr.stage.Name, sk.Name, sk.Err)
			}
			start := time.Now()
			losses, err := tr.step(b)
			if err != nil {
				ep.Close()
				return err
			}
			tr.meta.Step++
			tr.meta.Position = b.Next
			nb++
			for k, v := range losses {
				sums[k] += v
			}
			imgPerS := float64(b.N) / time.Since(start).Seconds()
			if tr.meta.Step%int64(s.LogEverySteps) == 0 {
				rec := map[string]any{"kind": "step", "epoch": epoch, "step": tr.meta.Step, "lr": tr.sgd.LR, "img_per_s": imgPerS}
				for k, v := range losses {
					rec[k] = v
				}
				tr.logMetrics(rec)
			}
			prog.step(epoch, b.Index+1, imgPerS, losses)
			b.Release()
			if s.CheckpointEverySteps > 0 && tr.meta.Step%int64(s.CheckpointEverySteps) == 0 {
				tr.meta.Epoch = epoch
				if err := tr.save(tr.lastPath()); err != nil {
					ep.Close()
					return err
				}
				if tr.AfterCheckpoint != nil {
					tr.AfterCheckpoint(tr.meta.Step)
				}
			}
			if err := ctx.Err(); err != nil {
				ep.Close()
				return err
			}
		}
		ep.Close()

		point := epochPoint{Epoch: epoch, TrainLoss: map[string]float64{}, ValLoss: math.NaN()}
		for k, v := range sums {
			point.TrainLoss[k] = v / float64(max(nb, 1))
		}
		valLoss, err := tr.validate(ctx, epoch)
		if err != nil {
			return err
		}
		point.ValLoss = valLoss
		tr.meta.Epoch, tr.meta.Position = epoch+1, data.Position{}
		// Best = lowest validation loss; without a validation set, the
		// epoch's mean training loss stands in (and the log says so).
		sel := valLoss
		if math.IsNaN(sel) {
			sel = point.TrainLoss["loss"]
		}
		if tr.meta.BestEpoch < 0 || sel < tr.meta.BestLoss {
			tr.meta.BestLoss, tr.meta.BestEpoch = sel, epoch
			if err := tr.save(tr.bestPath()); err != nil {
				return err
			}
		}
		if err := tr.save(tr.lastPath()); err != nil {
			return err
		}
		tr.history = append(tr.history, point)
		rec := map[string]any{"kind": "epoch", "epoch": epoch, "step": tr.meta.Step, "train": point.TrainLoss, "best_epoch": tr.meta.BestEpoch}
		if !math.IsNaN(valLoss) {
			rec["val_loss"] = valLoss
		}
		tr.logMetrics(rec)
		prog.epoch(epoch, point)
		if err := tr.writePlots(epoch); err != nil {
			return err
		}
	}
	prog.done()
	return nil
}

// lossTerms is what one step computes; every value is a scalar tensor.
type lossTerms struct {
	total, nce, mse, advG *ts.Tensor
}

func (l lossTerms) drop() { torch.Drop(l.total, l.nce, l.mse, l.advG) }

// Step is one training iteration's recipe: the networks, optimisers, loss
// weights and MoCo settings. The trainer runs it on each batch; the benchmark
// in bench/step runs it on random tensors.
type Step struct {
	MoCo        *model.MoCo
	Disc        *model.Discriminator // nil outside the adversarial stage
	SGD         *SGD
	Adam        *Adam // nil outside the adversarial stage
	Losses      pipeline.LossConfig
	Momentum    float64
	Temperature float64
	Groups      int // ghost batch-norm groups
}

// losses builds the weighted generator loss of a MoCo forward.
func (st *Step) losses(out model.StepOutput, target *ts.Tensor) (l lossTerms, err error) {
	defer torch.Catch("losses", &err)
	w := st.Losses
	n := out.Logits.MustSize()[0]
	labels := ts.MustZeros([]int64{n}, gotch.Int64, gotch.CPU) // the positive key is class 0
	l.nce = torch.Must(out.Logits.CrossEntropyLoss(labels, ts.None, 1, -100, 0, false))
	labels.MustDrop()
	l.total = scaled(l.nce, w.ContrastiveWeight)
	if out.Rec != nil {
		l.mse = torch.Must(out.Rec.MseLoss(target, 1, false))
		addScaled(l.total, l.mse, w.MSEWeight)
	}
	if st.Disc != nil {
		d, err := st.Disc.Forward(out.Rec)
		if err != nil {
			torch.Check(err)
		}
		l.advG = lsgan(d, 1)
		d.MustDrop()
		addScaled(l.total, l.advG, w.AdvWeight)
	}
	return l, nil
}

// scaled returns w*x as a new tensor.
func scaled(x *ts.Tensor, w float64) *ts.Tensor {
	s := ts.FloatScalar(w)
	defer s.MustDrop()
	return torch.Must(x.MulScalar(s, false))
}

// addScaled does acc += w*x (out of place on the graph: acc is a fresh sum).
func addScaled(acc, x *ts.Tensor, w float64) {
	t := scaled(x, w)
	torch.Check(torch.InPlace(acc, func() error { return acc.Add_(t) }))
	t.MustDrop()
}

// lsgan is the least-squares GAN term mean((d - label)^2) (official
// nn.MSELoss against a ones or zeros patch map, spec 4.2).
func lsgan(d *ts.Tensor, label float64) *ts.Tensor {
	var target *ts.Tensor
	if label == 1 {
		target = torch.Must(d.OnesLike(false))
	} else {
		target = torch.Must(d.ZerosLike(false))
	}
	defer target.MustDrop()
	return torch.Must(d.MseLoss(target, 1, false))
}

// step runs one training iteration on b and returns its loss values.
func (tr *trainer) step(b *data.Batch) (vals map[string]float64, err error) {
	defer torch.Catch(fmt.Sprintf("step %d", tr.meta.Step+1), &err)
	q, k, target := batchTensors(b)
	defer torch.Drop(q, k, target)
	if tr.BeforeStep != nil {
		tr.BeforeStep(tr.meta.Step+1, q, k, target)
	}
	var perm []int64
	if tr.groups > 1 {
		// Shuffle-BN: a permutation of the key batch before the ghost
		// groups, drawn from (seed, step) so a resumed run draws the same.
		r := rand.New(rand.NewPCG(tr.cfg.Run.Seed, uint64(tr.meta.Step)))
		for _, p := range r.Perm(b.N) {
			perm = append(perm, int64(p))
		}
	}
	vals, bad, err := tr.core.Run(q, k, target, perm)
	if err != nil {
		return nil, fmt.Errorf("step %d: %w", tr.meta.Step+1, err)
	}
	if bad != "" {
		return nil, tr.nonFinite(b, bad, vals[bad])
	}
	return vals, nil
}

// Run does one iteration on a batch (query and key views [N,3,H,W], target
// [N,1,H,W] or nil) in the official order (spec 4.3): MoCo forward with
// momentum update, generator loss, SGD step; then, with a discriminator, its
// LSGAN step on the restoration made before the generator step; then the
// enqueue of this batch's keys. perm is the shuffle-BN permutation (nil: none).
// If a loss term is NaN or Inf, Run stops before any update and returns its
// name as bad (vals[bad] is the value).
func (st *Step) Run(q, k, target *ts.Tensor, perm []int64) (vals map[string]float64, bad string, err error) {
	defer torch.Catch("train step", &err)
	out, err := st.MoCo.Forward(q, k, model.Mode{Train: true, Groups: st.Groups}, st.Momentum, st.Temperature, perm)
	if err != nil {
		return nil, "", err
	}
	defer out.Drop()
	l, err := st.losses(out, target)
	if err != nil {
		return nil, "", err
	}
	defer l.drop()
	vals = map[string]float64{}
	for _, term := range []struct {
		name string
		t    *ts.Tensor
	}{{"nce", l.nce}, {"mse", l.mse}, {"adv_g", l.advG}, {"loss", l.total}} {
		if term.t == nil {
			continue
		}
		v := term.t.Float64Values()[0]
		vals[term.name] = v
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return vals, term.name, nil
		}
	}

	ZeroGrad(st.SGD.Params)
	torch.Check(l.total.Backward())
	if err := st.SGD.Step(); err != nil {
		return nil, "", err
	}
	if st.Disc != nil {
		// 0.5*(LS(D(real),1) + LS(D(fake),0)) on the pre-step restoration.
		ZeroGrad(st.Adam.Params)
		fake := torch.Must(out.Rec.Detach(false))
		dReal, err := st.Disc.Forward(target)
		if err != nil {
			return nil, "", err
		}
		dFake, err := st.Disc.Forward(fake)
		if err != nil {
			return nil, "", err
		}
		lr, lf := lsgan(dReal, 1), lsgan(dFake, 0)
		ld := torch.Must(lr.Add(lf, false))
		half := ts.FloatScalar(0.5)
		torch.Check(torch.InPlace(ld, func() error { return ld.MulScalar_(half) }))
		half.MustDrop()
		dv := ld.Float64Values()[0]
		vals["d_loss"] = dv
		if math.IsNaN(dv) || math.IsInf(dv, 0) {
			torch.Drop(fake, dReal, dFake, lr, lf, ld)
			return vals, "d_loss", nil
		}
		torch.Check(ld.Backward())
		torch.Drop(fake, dReal, dFake, lr, lf, ld)
		if err := st.Adam.Step(); err != nil {
			return nil, "", err
		}
	}
	if err := st.MoCo.Enqueue(out.Keys); err != nil {
		return nil, "", err
	}
	return vals, "", nil
}

// nonFinite records the batch that produced a NaN/Inf loss and returns the
// error that stops the stage; the last checkpoint on disk is the last good one.
func (tr *trainer) nonFinite(b *data.Batch, term string, v float64) error {
	step := tr.meta.Step + 1
	p := filepath.Join(tr.dir, fmt.Sprintf("nonfinite-step%d.txt", step))
	os.WriteFile(p, []byte(strings.Join(b.Names, "\n")+"\n"), 0o644)
	return fmt.Errorf("step %d (epoch %d, batch %d): loss term %s is %v; the batch's files are listed in %s; %s is the last good checkpoint",
		step, b.Epoch, b.Index, term, v, p, tr.lastPath())
}

// batchTensors copies a batch into tensors [N,3,H,W], [N,3,H,W], [N,1,H,W].
func batchTensors(b *data.Batch) (q, k, target *ts.Tensor) {
	n, h, w := int64(b.N), int64(b.H), int64(b.W)
	q = torch.Must(ts.NewTensorFromData(b.Query, []int64{n, 3, h, w}))
	k = torch.Must(ts.NewTensorFromData(b.Key, []int64{n, 3, h, w}))
	if b.Target != nil {
		target = torch.Must(ts.NewTensorFromData(b.Target, []int64{n, 1, h, w}))
	}
	return q, k, target
}

// validate returns the mean total weighted loss over the validation set (NaN
// without one), with BN in eval mode. By default it leaves the key encoder and
// the queue alone; validation_moves_keys reproduces the official code, which
// momentum-updates the key encoder and enqueues validation keys (spec 8.3).
func (tr *trainer) validate(ctx context.Context, epoch int) (float64, error) {
	if tr.val == nil {
		return math.NaN(), nil
	}
	ep := tr.val.Epoch(ctx, epoch)
	defer ep.Close()
	momentum := 1.0
	if tr.stage.ValidationMovesKeys {
		momentum = tr.cfg.MoCo.Momentum
	}
	var sum float64
	n := 0
	for {
		b, err := ep.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, err
		}
		var v float64
		var stepErr error
		torch.NoGrad(func() {
			defer torch.Catch(fmt.Sprintf("validation batch %d", b.Index), &stepErr)
			q, k, target := batchTensors(b)
			defer torch.Drop(q, k, target)
			out, err := tr.moco.Forward(q, k, model.Eval, momentum, tr.cfg.MoCo.Temperature, nil)
			if err != nil {
				torch.Check(err)
			}
			defer out.Drop()
			l, err := tr.core.losses(out, target)
			if err != nil {
				torch.Check(err)
			}
			v = l.total.Float64Values()[0]
			l.drop()
			if tr.stage.ValidationMovesKeys {
				if err := tr.moco.Enqueue(out.Keys); err != nil {
					torch.Check(err)
				}
			}
			if n == 0 && tr.restore {
				stepErr = tr.writeSamples(epoch, q, out.Rec, target)
			}
		})
		if stepErr != nil {
			return 0, stepErr
		}
		sum += v
		n++
		b.Release()
	}
	if n == 0 {
		return math.NaN(), nil
	}
	return sum / float64(n), nil
}
