package model

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"dira/internal/torch"
)

// Net is one side of MoCo: an encoder (inside a U-Net when the decoder is
// built) and its projection head. The official code's DiRA_UNet.
type Net struct {
	UNet *UNet // Decoder and Head are nil when the net has no decoder
	Proj *Projection
}

// MoCo is DiRA's MoCo-v2 wrapper (the official DiRA_MoCo, spec 2.2): query
// network with U-Net decoder and projection head, key network (momentum copy
// of the query's encoder and projection head), the queue of negative keys
// [dim, K] and its pointer.
//
// Keys follow the official checkpoint without the DDP "module." prefix:
// queue, queue_ptr, encoder_q.backbone.{encoder,decoder,segmentation_head}.*,
// encoder_q.fc.*, encoder_k.backbone.encoder.*, encoder_k.fc.*. In mode "di"
// (no restoration) the encoder sits directly under encoder_q / encoder_k, as
// torchvision's resnet does in the official MoCo class.
//
// Deliberate difference: the key network has no decoder. The official key
// U-Net computes a decoder output it throws away and momentum-updates decoder
// weights it never uses (spec 8.6); nothing that reaches a loss or an
// artifact depends on them.
type MoCo struct {
	Params   *Params
	Q, K     *Net
	Queue    *ts.Tensor // [dim, K], columns unit length
	QueuePtr *ts.Tensor // int64 [1]
	// keyParams[i] is updated from queryTwins[i] (the same name under encoder_q).
	keyParams, queryTwins []*ts.Tensor
}

// NewMoCo builds the MoCo wrapper. restoration=false builds the mode "di"
// baseline (no decoder). Weights and the initial queue come from seed.
func NewMoCo(c Config, queueSize int, restoration bool, seed uint64) (*MoCo, error) {
	ps := NewParams()
	root := scope{ps: ps, rng: newRNG(seed, "moco")}
	m := &MoCo{Params: ps}

	// Buffers first: PyTorch lists a module's own buffers before its children's.
	dim := int64(c.Projection.OutDim)
	q := root.normal(dim*int64(queueSize), 1)
	normalizeColumns(q, dim, int64(queueSize))
	m.Queue = root.buffer("queue", torch.FromFloat32(q, []int64{dim, int64(queueSize)}))
	m.QueuePtr = root.buffer("queue_ptr", torch.Zeros([]int64{1}, gotch.Int64))

	var err error
	if m.Q, err = newNet(root.sub("encoder_q"), c, restoration, true); err != nil {
		return nil, err
	}
	ks := root.sub("encoder_k")
	ks.frozen = true // key parameters get no gradients (requires_grad=False)
	if m.K, err = newNet(ks, c, restoration, false); err != nil {
		return nil, err
	}
	// Pair key parameters with query parameters by name, copy, freeze.
	for _, p := range ps.List() {
		if p.Buffer || !strings.HasPrefix(p.Name, "encoder_k.") {
			continue
		}
		qp := ps.Get("encoder_q." + strings.TrimPrefix(p.Name, "encoder_k."))
		if qp == nil {
			return nil, fmt.Errorf("model: key parameter %s has no query twin", p.Name)
		}
		torch.CopyInto(p.T, qp.T)
		m.keyParams, m.queryTwins = append(m.keyParams, p.T), append(m.queryTwins, qp.T)
	}
	return m, nil
}

func newNet(s scope, c Config, restoration, withDecoder bool) (*Net, error) {
	enc, err := EncoderChannels(c.Arch)
	if err != nil {
		return nil, err
	}
	n := &Net{UNet: &UNet{Activation: c.Activation}}
	if restoration {
		bb := s.sub("backbone")
		if n.UNet.Encoder, err = newResNet(bb.sub("encoder"), c.Arch); err != nil {
			return nil, err
		}
		if withDecoder {
			n.UNet.Decoder = newDecoder(bb.sub("decoder"), enc, c.DecoderChannels)
			n.UNet.Head = newConv2d(bb.sub("segmentation_head.0"), int64(c.DecoderChannels[4]), int64(c.OutChannels), 3, 1, 1, true, xavierUniform)
		}
	} else if n.UNet.Encoder, err = newResNet(s, c.Arch); err != nil {
		return nil, err
	}
	n.Proj = newProjection(s.sub("fc"), enc[5], c.Projection)
	return n, nil
}

// MomentumUpdate sets theta_k = m*theta_k + (1-m)*theta_q for every key
// parameter (official _momentum_update_key_encoder; buffers are not touched).
func (m *MoCo) MomentumUpdate(momentum float64) error {
	if err := torch.MomentumUpdate(m.queryTwins, m.keyParams, momentum); err != nil {
		return fmt.Errorf("model: %w", err)
	}
	return nil
}

// StepOutput is what one MoCo forward produces; the caller drops it.
type StepOutput struct {
	Logits *ts.Tensor // [N, 1+K]: [l_pos, l_neg] / T, positive at index 0
	Rec    *ts.Tensor // [N, classes, H, W] restoration (nil without decoder)
	Keys   *ts.Tensor // [N, dim] normalised keys, to enqueue after the step
}

// Drop frees the output tensors.
func (o StepOutput) Drop() { torch.Drop(o.Logits, o.Rec, o.Keys) }

// Forward is the official DiRA_MoCo.forward for one device: the query pass
// with ghost batch-norm groups, the momentum update, the key pass with
// shuffle-BN (perm permutes the key batch before the ghost groups and is
// undone after; nil = no shuffle), then InfoNCE logits against the queue as it
// was before this step. It does not enqueue: call Enqueue(out.Keys) after.
// momentum >= 1 skips the momentum update.
func (m *MoCo) Forward(imQ, imK *ts.Tensor, mode Mode, momentum, temperature float64, perm []int64) (out StepOutput, err error) {
	defer torch.Catch("model: moco forward", &err)
	f := m.Q.UNet.Encoder.forward(imQ, mode)
	if m.Q.UNet.Decoder != nil {
		out.Rec = m.Q.UNet.decode(f, mode)
	}
	pq := pool(f[4])
	torch.Drop(f[:]...)
	qRaw := m.Q.Proj.forward(pq)
	torch.Drop(pq)
	q := normalize(qRaw)
	torch.Drop(qRaw)
	defer torch.Drop(q)

	if momentum < 1 { // m = 1 keeps the key network as it is (validation)
		if err := m.MomentumUpdate(momentum); err != nil {
			torch.Check(err)
		}
	}
	torch.NoGrad(func() {
		x := imK
		var idx, inv *ts.Tensor
		if perm != nil {
			idx = torch.FromInt64(perm, []int64{int64(len(perm))})
			invp := make([]int64, len(perm))
			for i, p := range perm {
				invp[p] = int64(i)
			}
			inv = torch.FromInt64(invp, []int64{int64(len(invp))})
			x = torch.Must(imK.IndexSelect(0, idx, false))
		}
		fk := m.K.UNet.Encoder.forward(x, mode)
		if perm != nil {
			torch.Drop(x)
		}
		pk := pool(fk[4])
		torch.Drop(fk[:]...)
		kRaw := m.K.Proj.forward(pk)
		torch.Drop(pk)
		k := normalize(kRaw)
		torch.Drop(kRaw)
		if perm != nil {
			out.Keys = torch.Must(k.IndexSelect(0, inv, true))
			torch.Drop(idx, inv)
		} else {
			out.Keys = k
		}
	})
	// l_pos = sum_c q*k [N,1]; l_neg = q @ queue [N,K] (queue detached).
	prod := torch.Must(q.Mul(out.Keys, false))
	lpos := torch.Must(prod.SumDimIntlist([]int64{1}, true, gotch.Float, true))
	lneg := torch.Must(q.Mm(m.Queue, false))
	logits := torch.Must(ts.Cat([]ts.Tensor{*lpos, *lneg}, 1))
	torch.Drop(lpos, lneg)
	t := ts.FloatScalar(temperature)
	out.Logits = torch.Must(logits.DivScalar(t, true))
	torch.DropScalars(t)
	return out, nil
}

// Enqueue writes keys [B, dim] into the queue at the pointer and advances it
// (official _dequeue_and_enqueue; K % B must be 0).
func (m *MoCo) Enqueue(keys *ts.Tensor) (err error) {
	defer torch.Catch("model: enqueue", &err)
	b := torch.Size(keys)[0]
	kq := torch.Size(m.Queue)[1]
	if kq%b != 0 {
		return fmt.Errorf("model: queue size %d is not a multiple of the batch %d", kq, b)
	}
	ptr := torch.Int64s(m.QueuePtr)[0]
	torch.NoGrad(func() {
		kt := torch.Must(keys.T(false))
		view := torch.Must(m.Queue.Narrow(1, ptr, b, false))
		torch.CopyInto(view, kt)
		torch.Drop(kt, view)
		next := ts.IntScalar((ptr + b) % kq)
		torch.Check(torch.InPlace(m.QueuePtr, func() error { return m.QueuePtr.Fill_(next) }))
		torch.DropScalars(next)
	})
	return nil
}

// normalize is F.normalize(x, dim=1): x / max(||x||_2, 1e-12).
func normalize(x *ts.Tensor) *ts.Tensor {
	sq := torch.Must(x.Mul(x, false))
	s := torch.Must(sq.SumDimIntlist([]int64{1}, true, gotch.Float, true))
	n := torch.Must(s.Sqrt(true))
	eps := ts.FloatScalar(1e-12)
	n = torch.Must(n.ClampMin(eps, true))
	torch.DropScalars(eps)
	y := torch.Must(x.Div(n, false))
	torch.Drop(n)
	return y
}

func normalizeColumns(v []float32, rows, cols int64) {
	for c := int64(0); c < cols; c++ {
		var s float64
		for r := int64(0); r < rows; r++ {
			x := float64(v[r*cols+c])
			s += x * x
		}
		n := math.Max(math.Sqrt(s), 1e-12)
		for r := int64(0); r < rows; r++ {
			v[r*cols+c] = float32(float64(v[r*cols+c]) / n)
		}
	}
}

// newRNG derives an independent generator for one part of the model from the
// run seed, so adding a part does not change the others' initial weights.
func newRNG(seed uint64, part string) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(part))
	return rand.New(rand.NewPCG(seed, h.Sum64()))
}
