package stages

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"dira/data"
	"dira/internal/torch"
	"dira/optim"
	"dira/pipeline"
)

// Pretrain is the warmup, adversarial and moco stages: one loop over the
// DiRA objective (objective.go), resumable from its last.ckpt (state.go),
// logging to metrics.jsonl (metrics.go).
type Pretrain struct {
	cfg   pipeline.Config
	kind  string
	train *pipeline.Training
	adv   *pipeline.AdversarialStage // nil outside the adversarial stage
	hooks Hooks
}

func newPretrain(cfg pipeline.Config, s pipeline.StageSettings, o Options) (pipeline.Stage, error) {
	tr, ok := pipeline.TrainingOf(s)
	if !ok {
		return nil, fmt.Errorf("stages: %s is not a training stage", s.Kind())
	}
	adv, _ := s.(*pipeline.AdversarialStage)
	return &Pretrain{cfg: cfg, kind: s.Kind(), train: tr, adv: adv, hooks: o.Hooks}, nil
}

// Name is the stage kind, also its folder in the run.
func (p *Pretrain) Name() string { return p.kind }

// Run trains the stage, resuming from its last.ckpt when there is one.
func (p *Pretrain) Run(ctx context.Context, r *pipeline.Run) error {
	return torch.Do(func() error { return p.run(ctx, r) })
}

func (p *Pretrain) run(ctx context.Context, r *pipeline.Run) error {
	c, s := p.cfg, p.train
	dir := r.StageDir(p.kind)
	last, best := filepath.Join(dir, "last.ckpt"), filepath.Join(dir, "best.ckpt")
	log := r.Log

	// Networks and optimisers: resumed, started from the warm-up, or fresh.
	st, err := newState(c, p.kind, s, p.adv)
	if err != nil {
		return err
	}
	defer st.close()
	switch {
	case fileExists(last):
		if err := st.resume(last); err != nil {
			return err
		}
		fmt.Fprintf(log, "%s: resuming from %s (epoch %d, step %d)\n", p.kind, last, st.meta.Epoch, st.meta.Step)
	case p.adv != nil && p.adv.InitFrom != "none":
		src := filepath.Join(r.Dir, pipeline.StageWarmup, p.adv.InitFrom+".ckpt")
		if err := st.initFrom(src); err != nil {
			return fmt.Errorf("init_from %s: %w", p.adv.InitFrom, err)
		}
		fmt.Fprintf(log, "%s: starting from %s\n", p.kind, src)
	}
	obj := p.objective(st)
	m, err := openMetrics(dir, st.meta.Step, st.meta.Epoch)
	if err != nil {
		return err
	}
	defer m.close()
	train, val, err := p.loaders()
	if err != nil {
		return err
	}
	save := func(path string) error {
		sum, err := st.save(path)
		if err != nil {
			return err
		}
		return r.RecordArtifactSum(p.kind, path, sum)
	}

	steps := train.BatchesPerEpoch()
	if s.StepsPerEpoch > 0 && s.StepsPerEpoch < steps {
		steps = s.StepsPerEpoch
	}
	prog := newProgress(log, p.kind, s.Epochs, steps)
	for epoch := st.meta.Epoch; epoch < s.Epochs; epoch++ {
		st.sgd.LR = optim.LR(s.Optimizer.LR, s.Optimizer.Schedule, s.Optimizer.Milestones, epoch, s.Epochs)
		if st.meta.Position.Batch == 0 || st.meta.EpochSums == nil {
			// The running sums of the epoch's losses live in the state, so a
			// mid-epoch resume logs the uninterrupted run's epoch means.
			st.meta.EpochSums, st.meta.EpochSteps = map[string]float64{}, 0
		}
		fresh, skippedBefore := st.meta.Position.Batch == 0, len(train.Skipped())
		ep := train.EpochFrom(ctx, epoch, st.meta.Position)
		for st.meta.Position.Batch < steps {
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
				m.log(map[string]any{"kind": "skipped", "epoch": epoch, "step": st.meta.Step, "file": sk.Name, "error": sk.Err.Error()})
				fmt.Fprintf(log, "%s: skipped unreadable image %s: %v\n", p.kind, sk.Name, sk.Err)
			}
			start := time.Now()
			losses, bad, err := p.step(obj, st, b)
			if bad != "" {
				err = nonFinite(b, dir, st.meta.Step+1, bad, losses[bad], last)
			}
			if err != nil {
				ep.Close()
				return fmt.Errorf("epoch %d step %d: %w", epoch+1, st.meta.Step+1, err)
			}
			st.meta.Step++
			st.meta.Position = b.Next
			st.meta.EpochSteps++
			for k, v := range losses {
				st.meta.EpochSums[k] += v
			}
			imgPerS := float64(b.N) / time.Since(start).Seconds()
			if st.meta.Step%int64(s.LogEverySteps) == 0 {
				rec := map[string]any{"kind": "step", "epoch": epoch, "step": st.meta.Step, "lr": st.sgd.LR, "img_per_s": imgPerS}
				for k, v := range losses {
					rec[k] = v
				}
				if err := m.log(rec); err != nil {
					ep.Close()
					return err
				}
			}
			prog.step(epoch, b.Index+1, imgPerS, losses)
			b.Release()
			if s.CheckpointEverySteps > 0 && st.meta.Step%int64(s.CheckpointEverySteps) == 0 {
				st.meta.Epoch = epoch
				if err := save(last); err != nil {
					ep.Close()
					return err
				}
				if p.hooks.AfterCheckpoint != nil {
					p.hooks.AfterCheckpoint(p.kind, st.meta.Step)
				}
			}
			if err := ctx.Err(); err != nil {
				ep.Close()
				return err
			}
		}
		ep.Close()
		if fresh && st.meta.Position.Batch == 0 {
			// Every image skipped (max_skipped_fraction 1 allows it): an
			// epoch without a step must not write untrained checkpoints.
			return fmt.Errorf("epoch %d: no usable image: %d images were unreadable and skipped (bad_images: skip), not one batch of %d was left; nothing was trained",
				epoch+1, len(train.Skipped())-skippedBefore, s.BatchSize)
		}

		// Epoch end: validation, best and last checkpoints, metrics, plots.
		point := epochPoint{Epoch: epoch, TrainLoss: map[string]float64{}}
		for k, v := range st.meta.EpochSums {
			point.TrainLoss[k] = v / float64(max(st.meta.EpochSteps, 1))
		}
		point.ValLoss, err = p.validate(ctx, obj, val, dir, epoch)
		if err != nil {
			return fmt.Errorf("epoch %d validation: %w", epoch+1, err)
		}
		st.meta.Epoch, st.meta.Position = epoch+1, data.Position{}
		st.meta.EpochSums, st.meta.EpochSteps = nil, 0
		// Best = lowest validation loss; without a validation set, the
		// epoch's mean training loss stands in (and the log says so).
		sel := point.ValLoss
		if math.IsNaN(sel) {
			sel = point.TrainLoss["loss"]
		}
		if st.meta.BestEpoch < 0 || sel < st.meta.BestLoss {
			st.meta.BestLoss, st.meta.BestEpoch = sel, epoch
			if err := save(best); err != nil {
				return err
			}
		}
		if err := save(last); err != nil {
			return err
		}
		rec := map[string]any{"kind": "epoch", "epoch": epoch, "step": st.meta.Step, "train": point.TrainLoss, "best_epoch": st.meta.BestEpoch}
		if !math.IsNaN(point.ValLoss) {
			rec["val_loss"] = point.ValLoss
		}
		if err := m.log(rec); err != nil {
			return err
		}
		prog.epoch(epoch, point)
		if err := writePlots(dir); err != nil {
			return err
		}
		r.Progress()
	}
	prog.done()
	return nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
