package stages

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"

	"github.com/sugarme/gotch/ts"

	"dira/data"
	"dira/internal/atomicfile"
	"dira/internal/torch"
)

// The per-batch parts of the pre-training loop: its data, one training step,
// the validation pass.

// objective is the DiRA objective over a state's networks and optimisers.
func (p *Pretrain) objective(st *state) *Objective {
	c := p.cfg
	return &Objective{MoCo: st.moco, Disc: st.disc, SGD: st.sgd, Adam: st.adam, Losses: c.Losses,
		Momentum: c.MoCo.Momentum, Temperature: c.MoCo.Temperature, Groups: c.MoCo.GhostBNGroups,
		Precision: c.Run.Precision, Scaler: st.scaler}
}

// loaders opens the training and validation data of the config, with
// restoration targets unless the kind is moco (official mode di).
func (p *Pretrain) loaders() (train, val *data.Loader, err error) {
	dc := p.cfg.DataFor(p.kind)
	trainSrc, valSrc, err := data.OpenSources(dc)
	if err != nil {
		return nil, nil, err
	}
	batch := p.train.BatchSize
	if train, err = data.NewLoader(trainSrc, dc, batch, p.cfg.Run.Seed); err != nil {
		return nil, nil, err
	}
	if train.BatchesPerEpoch() == 0 {
		return nil, nil, fmt.Errorf("the training set has %d images, fewer than batch_size %d", trainSrc.Len(), batch)
	}
	if valSrc != nil {
		// Validation draws its own augmentations (the official code uses the
		// same random transform); its order is fixed.
		if val, err = data.NewLoader(valSrc, dc, batch, p.cfg.Run.Seed^0x5eed, data.WithShuffle(false)); err != nil {
			return nil, nil, err
		}
		if val.BatchesPerEpoch() == 0 {
			val = nil
		}
	}
	return train, val, nil
}

// step runs one training iteration on b and returns its loss values, or the
// name of a non-finite loss term (no update was made then).
func (p *Pretrain) step(obj *Objective, st *state, b *data.Batch) (vals map[string]float64, bad string, err error) {
	defer torch.Catch("", &err)
	q, k, target := batchTensors(b)
	defer torch.Drop(q, k, target)
	if p.hooks.BeforeStep != nil {
		p.hooks.BeforeStep(p.kind, st.meta.Step+1, q, k, target)
	}
	var perm []int64
	if obj.Groups > 1 {
		// Shuffle-BN: a permutation of the key batch before the ghost
		// groups, drawn from (seed, step) so a resumed run draws the same.
		r := rand.New(rand.NewPCG(p.cfg.Run.Seed, uint64(st.meta.Step)))
		for _, i := range r.Perm(b.N) {
			perm = append(perm, int64(i))
		}
	}
	return obj.Step(q, k, target, perm)
}

// nonFinite records the batch that produced a NaN/Inf loss in the stage
// folder and returns the error that stops the stage; the last checkpoint on
// disk is the last good one.
func nonFinite(b *data.Batch, dir string, step int64, term string, v float64, last string) error {
	p := filepath.Join(dir, fmt.Sprintf("nonfinite-step%d.txt", step))
	if err := atomicfile.WriteFile(p, []byte(strings.Join(b.Names, "\n")+"\n"), 0o644); err != nil {
		return fmt.Errorf("loss term %s is %v (and the batch's file list could not be written: %w)", term, v, err)
	}
	return fmt.Errorf("loss term %s is %v; the batch's files are listed in %s; %s is the last good checkpoint", term, v, p, last)
}

// validate returns the mean total weighted loss over the validation set (NaN
// without one), with BN in eval mode, and writes the first batch's
// restorations as samples/epoch_NNN.png. By default it leaves the key encoder
// and the queue alone; validation_moves_keys reproduces the official code,
// which momentum-updates the key encoder and enqueues validation keys.
func (p *Pretrain) validate(ctx context.Context, obj *Objective, val *data.Loader, dir string, epoch int) (float64, error) {
	if val == nil {
		return math.NaN(), nil
	}
	ep := val.Epoch(ctx, epoch)
	defer ep.Close()
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
		if err := func() (err error) {
			defer torch.Catch(fmt.Sprintf("batch %d", b.Index+1), &err)
			q, k, target := batchTensors(b)
			defer torch.Drop(q, k, target)
			v, rec, err := obj.Eval(q, k, target, p.train.ValidationMovesKeys)
			if err != nil {
				return err
			}
			defer torch.Drop(rec)
			sum += v
			if n == 0 && rec != nil {
				return writeSamples(dir, epoch, q, rec, target)
			}
			return nil
		}(); err != nil {
			return 0, err
		}
		n++
		b.Release()
	}
	if n == 0 {
		return math.NaN(), nil
	}
	return sum / float64(n), nil
}

// batchTensors copies a batch into tensors [N,3,H,W], [N,3,H,W], [N,1,H,W].
func batchTensors(b *data.Batch) (q, k, target *ts.Tensor) {
	n, h, w := int64(b.N), int64(b.H), int64(b.W)
	q = torch.FromFloat32(b.Query, []int64{n, 3, h, w})
	k = torch.FromFloat32(b.Key, []int64{n, 3, h, w})
	if b.Target != nil {
		target = torch.FromFloat32(b.Target, []int64{n, 1, h, w})
	}
	return q, k, target
}
