package stages

import (
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"dira/internal/torch"
	"dira/model"
	"dira/optim"
	"dira/pipeline"
)

// Objective is DiRA's training objective, Eq. (4) of the paper,
//
//	L = l_dis*L_dis + l_res*L_res + l_adv*L_adv
//
// with the official code's terms (spec 4.2): L_dis the InfoNCE loss of MoCo-v2
// (cross-entropy of the logits against class 0), L_res the MSE between the
// restoration and the target, L_adv the least-squares GAN loss of the
// generator, and the discriminator's own LSGAN loss. The three pre-training
// kinds use parts of it:
//
//	moco        (official mode di)   L = l_dis*InfoNCE                       no decoder
//	warmup      (official mode dir)  L = l_dis*InfoNCE + l_res*MSE(rec, target)
//	adversarial (official mode dira) L = ... + l_adv*LSGAN_G, then the discriminator's step
//
// Step runs one iteration in the official order (spec 4.3); bench/step runs
// it on random tensors.
type Objective struct {
	MoCo        *model.MoCo
	Disc        *model.Discriminator // nil outside the adversarial stage
	SGD         *optim.SGD
	Adam        *optim.Adam // nil outside the adversarial stage
	Losses      pipeline.LossConfig
	Momentum    float64 // key encoder momentum m
	Temperature float64 // InfoNCE temperature T
	Groups      int     // ghost batch-norm groups
	// Precision is run.precision: fp32 ("" too) computes everything in
	// float32; bf16 runs the forward passes and losses under CPU autocast to
	// bfloat16, fp16 under CUDA autocast to float16 with Scaler (see
	// autocast).
	Precision string
	Scaler    *optim.GradScaler // dynamic loss scaling; fp16 only (nil otherwise)

	channelsLast bool // the networks' weights have been made channels-last
}

// autocast runs fn, the forward passes and losses of one step, in the
// objective's precision, where PyTorch's AMP recipe puts its autocast region:
//
//	with torch.autocast(...): output = model(im_q, im_k); loss = criterion(...)
//	optimizer.zero_grad(); loss.backward(); optimizer.step()
//
// Convolutions, linear layers and the queue product then run in bf16 while
// autocast's fp32 ops (cross-entropy, MSE) cast their inputs back to fp32, so
// every loss term is an fp32 scalar; the keys come out of F.normalize's fp32
// sum as fp32 (model.MoCo.Forward), so the queue is fed fp32. Weights, their
// gradients, optimiser state, the queue and the BN running statistics are
// fp32 tensors that autocast never rewrites. Each region is left before the
// backward pass, which clears autocast's cache of bf16 weight copies: the
// next region (the discriminator's, the next step's) casts the updated
// weights afresh. fp32 calls fn directly: not a single op changes.
//
// Under bf16 the first region also gives the networks' 4-D weights the
// channels-last (NHWC) layout, as PyTorch's CPU performance recipe does with
// model.to(memory_format=torch.channels_last): oneDNN then runs the bf16
// convolutions on NHWC activations directly instead of reordering each
// activation to its blocked layout and back around every convolution, which
// took about 45% of the oneDNN time of a bf16 ResNet-50 DiRA step
// (docs/benchmarks.md). Values do not change; later loads into the weights
// (resume) keep the layout. fp32 keeps PyTorch's default layout, so its
// results stay bit-identical to the reference.
func (o *Objective) autocast(fn func()) {
	switch o.Precision {
	case pipeline.PrecisionBF16:
		if !o.channelsLast {
			torch.Check(torch.ChannelsLast(o.weights()))
			o.channelsLast = true
		}
		torch.Autocast(torch.CPU, torch.BFloat16, fn)
	case pipeline.PrecisionFP16:
		torch.Autocast(torch.CUDA, torch.Float16, fn)
	case pipeline.PrecisionFP32, "":
		fn()
	default:
		torch.Fail("unknown precision %q", o.Precision)
	}
}

// weights lists the tensors of the MoCo networks and the discriminator.
func (o *Objective) weights() []*ts.Tensor {
	var out []*ts.Tensor
	for _, p := range o.MoCo.Params.List() {
		out = append(out, p.T)
	}
	if o.Disc != nil {
		for _, c := range o.Disc.Convs {
			out = append(out, c.Weight)
		}
	}
	return out
}

// update is backward + optimiser step for one loss: directly, or through the
// loss scaler under fp16 (a step whose gradients overflowed is skipped).
func (o *Objective) update(loss *ts.Tensor, params []*ts.Tensor, step func() error) {
	if o.Scaler == nil {
		torch.Backward(loss)
		torch.Check(step())
		return
	}
	scaled, err := o.Scaler.ScaleLoss(loss)
	torch.Check(err)
	defer torch.Drop(scaled)
	torch.Backward(scaled)
	_, err = o.Scaler.Step(params, step)
	torch.Check(err)
}

// lossTerms is what one forward computes; every value is a scalar tensor.
type lossTerms struct {
	total, nce, mse, advG *ts.Tensor
}

func (l lossTerms) drop() { torch.Drop(l.total, l.nce, l.mse, l.advG) }

// losses builds the weighted generator loss of a MoCo forward.
func (o *Objective) losses(out model.StepOutput, target *ts.Tensor) (l lossTerms) {
	w := o.Losses
	n := torch.Size(out.Logits)[0]
	labels := torch.Zeros([]int64{n}, gotch.Int64) // the positive key is class 0
	l.nce = torch.Must(out.Logits.CrossEntropyLoss(labels, ts.None, 1, -100, 0, false))
	torch.Drop(labels)
	l.total = scaled(l.nce, w.ContrastiveWeight)
	if out.Rec != nil {
		l.mse = torch.Must(out.Rec.MseLoss(target, 1, false))
		addScaled(l.total, l.mse, w.MSEWeight)
	}
	if o.Disc != nil {
		d, err := o.Disc.Forward(out.Rec)
		torch.Check(err)
		l.advG = lsgan(d, 1)
		torch.Drop(d)
		addScaled(l.total, l.advG, w.AdvWeight)
	}
	return l
}

// scaled returns w*x as a new tensor.
func scaled(x *ts.Tensor, w float64) *ts.Tensor {
	s := torch.FloatScalar(w)
	defer torch.DropScalars(s)
	return torch.Must(x.MulScalar(s, false))
}

// addScaled does acc += w*x (out of place on the graph: acc is a fresh sum).
func addScaled(acc, x *ts.Tensor, w float64) {
	t := scaled(x, w)
	torch.Check(torch.InPlace(acc, func() error { return acc.Add_(t) }))
	torch.Drop(t)
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
	defer torch.Drop(target)
	return torch.Must(d.MseLoss(target, 1, false))
}

// Step does one iteration on a batch (query and key views [N,3,H,W], target
// [N,1,H,W] or nil) in the official order (spec 4.3): MoCo forward with
// momentum update, generator loss, SGD step; then, with a discriminator, its
// LSGAN step on the restoration made before the generator step; then the
// enqueue of this batch's keys. perm is the shuffle-BN permutation (nil:
// none). If a loss term is NaN or Inf, Step stops before any update and
// returns its name as bad (vals[bad] is the value). A libtorch error is
// returned as an error.
func (o *Objective) Step(q, k, target *ts.Tensor, perm []int64) (vals map[string]float64, bad string, err error) {
	defer torch.Catch("", &err)
	var out model.StepOutput
	var l lossTerms
	defer func() { out.Drop() }()
	defer func() { l.drop() }()
	o.autocast(func() {
		var ferr error
		out, ferr = o.MoCo.Forward(q, k, model.Mode{Train: true, Groups: o.Groups}, o.Momentum, o.Temperature, perm)
		torch.Check(ferr)
		l = o.losses(out, target)
	})
	vals = map[string]float64{}
	for _, term := range []struct {
		name string
		t    *ts.Tensor
	}{{"nce", l.nce}, {"mse", l.mse}, {"adv_g", l.advG}, {"loss", l.total}} {
		if term.t == nil {
			continue
		}
		v := torch.Item(term.t)
		vals[term.name] = v
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return vals, term.name, nil
		}
	}

	torch.Check(optim.ZeroGrad(o.SGD.Params))
	o.update(l.total, o.SGD.Params, o.SGD.Step)
	if o.Disc != nil {
		v, bad := o.discriminatorStep(out.Rec, target)
		vals["d_loss"] = v
		if bad {
			return vals, "d_loss", nil
		}
	}
	if o.Scaler != nil {
		o.Scaler.Update()
	}
	torch.Check(o.MoCo.Enqueue(out.Keys))
	return vals, "", nil
}

// discriminatorStep is 0.5*(LS(D(real),1) + LS(D(fake),0)) on the
// restoration made before the generator's step, then Adam. bad reports a
// non-finite loss (no update is made then).
func (o *Objective) discriminatorStep(rec, target *ts.Tensor) (v float64, bad bool) {
	torch.Check(optim.ZeroGrad(o.Adam.Params))
	var fake, dReal, dFake, lr, lf, ld *ts.Tensor
	defer func() { torch.Drop(fake, dReal, dFake, lr, lf, ld) }()
	o.autocast(func() {
		fake = torch.Must(rec.Detach(false))
		var err error
		dReal, err = o.Disc.Forward(target)
		torch.Check(err)
		dFake, err = o.Disc.Forward(fake)
		torch.Check(err)
		lr, lf = lsgan(dReal, 1), lsgan(dFake, 0)
		ld = torch.Must(lr.Add(lf, false))
		half := torch.FloatScalar(0.5)
		torch.Check(torch.InPlace(ld, func() error { return ld.MulScalar_(half) }))
		torch.DropScalars(half)
	})
	v = torch.Item(ld)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return v, true
	}
	o.update(ld, o.Adam.Params, o.Adam.Step)
	return v, false
}

// Eval is the total weighted loss of one validation batch with batch norm in
// eval mode and autograd off. movesKeys momentum-updates the key encoder and
// enqueues the batch's keys, as the official validation does (spec 8.3);
// without it both are left alone. It returns the restoration for the sample
// grid (the caller drops it; nil without a decoder).
func (o *Objective) Eval(q, k, target *ts.Tensor, movesKeys bool) (loss float64, rec *ts.Tensor, err error) {
	momentum := 1.0 // 1 skips the momentum update
	if movesKeys {
		momentum = o.Momentum
	}
	defer torch.Catch("", &err)
	torch.NoGrad(func() {
		var out model.StepOutput
		defer func() { torch.Drop(out.Logits, out.Keys) }()
		o.autocast(func() {
			var ferr error
			out, ferr = o.MoCo.Forward(q, k, model.Eval, momentum, o.Temperature, nil)
			torch.Check(ferr)
			l := o.losses(out, target)
			defer l.drop()
			loss = torch.Item(l.total)
		})
		if movesKeys {
			torch.Check(o.MoCo.Enqueue(out.Keys))
		}
		rec = out.Rec
	})
	return loss, rec, nil
}
