package stages

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"dira/data"
	"dira/internal/torch"
	"dira/pipeline"
)

// FineTune is the classify and segment stages: for each initialisation and
// trial, train a downstream network with the protocol of DiRA's benchmark code
// (Adam, early stopping on the validation loss, the best-validation checkpoint
// tested on the test split), then compare the initialisations and export the
// best network. What differs between the two kinds (network, loss, test
// scores, export) is a task (classify.go, segment.go); the rest is here.
//
//	<stage>/results.json, comparison.md, comparison.png, roc.png or overlays.png,
//	        classifier.onnx or segmenter.onnx, export-report.json
//	<stage>/<init>/trial-<k>/last.ckpt, best.ckpt, metrics.jsonl, loss.png, result.json
type FineTune struct {
	cfg    pipeline.Config
	kind   string
	ft     *pipeline.FineTune
	task   task
	hooks  Hooks
	ortLib string
}

func newFineTune(cfg pipeline.Config, s pipeline.StageSettings, o Options) (pipeline.Stage, error) {
	ft, ok := pipeline.FineTuneOf(s)
	if !ok {
		return nil, fmt.Errorf("stages: %s is not a fine-tuning stage", s.Kind())
	}
	f := &FineTune{cfg: cfg, kind: s.Kind(), ft: ft, hooks: o.Hooks, ortLib: o.ORTLib}
	switch st := s.(type) {
	case *pipeline.ClassifyStage:
		f.task = &classifyTask{model: cfg.Model, data: ft.Data, probe: st.LinearProbe}
	case *pipeline.SegmentStage:
		f.task = &segmentTask{model: cfg.Model, loss: st.Loss}
	}
	return f, nil
}

// Name is the stage kind, also its folder in the run.
func (f *FineTune) Name() string { return f.kind }

// Run trains every (initialisation, trial) not done yet, then writes the
// comparison and the export. A killed run resumes inside its trial.
func (f *FineTune) Run(ctx context.Context, r *pipeline.Run) error {
	return torch.Do(func() error { return f.run(ctx, r) })
}

func (f *FineTune) run(ctx context.Context, r *pipeline.Run) error {
	dir := r.StageDir(f.kind)
	train, val, test, err := data.OpenLabeled(f.ft.Data)
	if err != nil {
		return fmt.Errorf("data: %w", err)
	}
	if val == nil || test == nil {
		return errors.New("data: fine-tuning needs a validation and a test split")
	}
	f.task.setTargets(train.Targets())
	subset := subsetID(train)
	res := f.task.newResults(f.ft.Data)
	var trials []trialResult
	for _, init := range f.ft.Inits {
		pre, err := f.pretrained(r, init)
		if err != nil {
			return fmt.Errorf("init %s: %w", init, err)
		}
		for k := 0; k < f.ft.Trials; k++ {
			t, err := f.trial(ctx, r, dir, init, k, pre, train, val, test)
			if err == nil && t.TrainSubset != subset {
				err = fmt.Errorf("its result.json was trained on another subset of the training images (%s, now %s): remove %s to train it again", t.TrainSubset, subset, t.Dir)
			}
			if err != nil {
				return fmt.Errorf("init %s trial %d: %w", init, k+1, err)
			}
			res.Trials = append(res.Trials, t.Trial)
			res.ROC = append(res.ROC, t.ROC...)
			trials = append(trials, t)
			r.Progress()
		}
	}
	if err := writeComparison(dir, f.task, res, trials); err != nil {
		return err
	}
	if f.ft.Export {
		return f.export(r, dir, trials)
	}
	return nil
}

// trial trains one network from init with trial k's seed, resuming from its
// last.ckpt, tests its best checkpoint and returns the scores. A trial with a
// result.json is done and not run again.
func (f *FineTune) trial(ctx context.Context, r *pipeline.Run, stageDir, init string, k int, pre *pretrained,
	trainSrc, valSrc, testSrc data.LabeledSource) (trialResult, error) {
	dir := filepath.Join(stageDir, initDir(init), fmt.Sprintf("trial-%d", k+1))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return trialResult{}, err
	}
	resultPath := filepath.Join(dir, "result.json")
	var done trialResult
	if readJSON(resultPath, &done) == nil {
		fmt.Fprintf(r.Log, "%s: init %s trial %d: done before, score %s\n", f.kind, init, k+1, scoreString(done.Score))
		return done, nil
	}
	seed := f.cfg.Run.Seed + uint64(k)
	st, err := f.newState(init, k, seed, pre)
	if err != nil {
		return trialResult{}, err
	}
	defer st.close()
	last, best := filepath.Join(dir, "last.ckpt"), filepath.Join(dir, "best.ckpt")
	if fileExists(last) {
		if err := st.resume(last); err != nil {
			return trialResult{}, err
		}
		fmt.Fprintf(r.Log, "%s: init %s trial %d: resuming from %s (epoch %d, step %d)\n", f.kind, init, k+1, last, st.meta.Epoch, st.meta.Step)
	}
	if err := f.train(ctx, r, dir, st, trainSrc, valSrc, seed); err != nil {
		return trialResult{}, err
	}

	// Test the best-validation checkpoint, as the official engines do.
	if err := st.loadWeights(best); err != nil {
		return trialResult{}, err
	}
	tl, err := data.NewLabeledLoader(testSrc, f.ft.Data, data.SplitTest, f.ft.BatchSize, seed)
	if err != nil {
		return trialResult{}, err
	}
	t, err := f.task.test(ctx, st.net, tl, dir)
	if err != nil {
		return trialResult{}, fmt.Errorf("test: %w", err)
	}
	t.Init, t.Run, t.Seed, t.LabelFraction, t.BestEpoch, t.ValLoss, t.Dir = init, k, seed, f.ft.Data.LabelPercent/100, st.meta.BestEpoch, st.meta.BestLoss, dir
	t.TrainImages, t.TrainSubset = trainSrc.Len(), subsetID(trainSrc)
	for i := range t.ROC {
		t.ROC[i].Init, t.ROC[i].Run, t.ROC[i].LabelFraction = init, k, t.LabelFraction
	}
	if err := writeJSON(resultPath, t); err != nil {
		return trialResult{}, err
	}
	fmt.Fprintf(r.Log, "%s: init %s trial %d: test %s %s\n", f.kind, init, k+1, f.task.metric(), scoreString(t.Score))
	return t, nil
}

// train runs a trial's epochs from where its state stands: one pass over the
// training split, the validation loss, the schedule, the stopping rule, the
// checkpoints.
func (f *FineTune) train(ctx context.Context, r *pipeline.Run, dir string, st *ftState, trainSrc, valSrc data.LabeledSource, seed uint64) error {
	ft := f.ft
	if st.extra.Done {
		return nil
	}
	train, err := data.NewLabeledLoader(trainSrc, ft.Data, data.SplitTrain, ft.BatchSize, seed)
	if err != nil {
		return err
	}
	val, err := data.NewLabeledLoader(valSrc, ft.Data, data.SplitVal, ft.BatchSize, seed^0x5eed)
	if err != nil {
		return err
	}
	m, err := openMetrics(dir, st.meta.Step, st.meta.Epoch)
	if err != nil {
		return err
	}
	defer m.close()
	last, best := filepath.Join(dir, "last.ckpt"), filepath.Join(dir, "best.ckpt")
	save := func(path string) error {
		sum, err := st.save(path)
		if err != nil {
			return err
		}
		return r.RecordArtifactSum(f.kind, path, sum)
	}
	label := fmt.Sprintf("%s %s #%d", f.kind, st.extra.Init, st.extra.Trial+1)
	prog := newProgress(r.Log, label, ft.Epochs, train.BatchesPerEpoch())
	for epoch := st.meta.Epoch; epoch < ft.Epochs; epoch++ {
		st.adam.LR = f.lr(st, epoch)
		if st.meta.Position.Batch == 0 || st.meta.EpochSums == nil {
			st.meta.EpochSums, st.meta.EpochSteps = map[string]float64{}, 0
		}
		ep := train.EpochFrom(ctx, epoch, st.meta.Position)
		for {
			b, err := ep.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				ep.Close()
				return err
			}
			start := time.Now()
			loss, err := f.step(st, b)
			if err != nil {
				ep.Close()
				return fmt.Errorf("epoch %d step %d: %w", epoch+1, st.meta.Step+1, err)
			}
			st.meta.Step++
			st.meta.Position = b.Next
			st.meta.EpochSteps++
			st.meta.EpochSums["loss"] += loss * float64(b.N) // the official meter weights by batch size
			st.meta.EpochSums["images"] += float64(b.N)
			imgPerS := float64(b.N) / time.Since(start).Seconds()
			if st.meta.Step%int64(ft.LogEverySteps) == 0 {
				if err := m.log(map[string]any{"kind": "step", "epoch": epoch, "step": st.meta.Step, "lr": st.adam.LR, "loss": loss, "img_per_s": imgPerS}); err != nil {
					ep.Close()
					return err
				}
			}
			prog.step(epoch, b.Index+1, imgPerS, map[string]float64{"loss": loss})
			if ft.CheckpointEverySteps > 0 && st.meta.Step%int64(ft.CheckpointEverySteps) == 0 {
				st.meta.Epoch = epoch
				if err := save(last); err != nil {
					ep.Close()
					return err
				}
				if f.hooks.AfterCheckpoint != nil {
					f.hooks.AfterCheckpoint(f.kind+"/"+filepath.Base(filepath.Dir(dir))+"/"+filepath.Base(dir), st.meta.Step)
				}
			}
			if err := ctx.Err(); err != nil {
				ep.Close()
				return err
			}
		}
		ep.Close()

		trainLoss := st.meta.EpochSums["loss"] / max(st.meta.EpochSums["images"], 1)
		valLoss, err := f.validate(ctx, st, val, epoch)
		if err != nil {
			return fmt.Errorf("epoch %d validation: %w", epoch+1, err)
		}
		improved, stop := st.extra.Stop.Step(valLoss)
		if st.extra.Plateau != nil {
			st.extra.Plateau.Step(valLoss)
		}
		st.meta.Epoch, st.meta.Position = epoch+1, data.Position{}
		st.meta.EpochSums, st.meta.EpochSteps = nil, 0
		st.extra.Done = stop || epoch+1 == ft.Epochs
		if improved {
			st.meta.BestLoss, st.meta.BestEpoch = valLoss, epoch
			if err := save(best); err != nil {
				return err
			}
		}
		if err := save(last); err != nil {
			return err
		}
		if err := m.log(map[string]any{"kind": "epoch", "epoch": epoch, "step": st.meta.Step, "lr": st.adam.LR,
			"train": map[string]float64{"loss": trainLoss}, "val_loss": valLoss, "best_epoch": st.meta.BestEpoch}); err != nil {
			return err
		}
		prog.epoch(epoch, epochPoint{Epoch: epoch, TrainLoss: map[string]float64{"loss": trainLoss}, ValLoss: valLoss})
		if err := writePlots(dir); err != nil {
			return err
		}
		if stop {
			fmt.Fprintf(r.Log, "%s: early stop after epoch %d: no lower validation loss for %d epochs (best %.4g at epoch %d)\n",
				label, epoch+1, st.extra.Stop.Counter, st.meta.BestLoss, st.meta.BestEpoch+1)
			break
		}
	}
	if st.meta.BestEpoch < 0 {
		return errors.New("no epoch improved on the initial validation loss: nothing to test")
	}
	prog.done()
	return nil
}
