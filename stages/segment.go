package stages

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"dira/data"
	"dira/internal/torch"
	"dira/metrics"
	"dira/model"
	"dira/optim"
	"dira/report"
	"dira/statedict"
)

// segmentTask is segmentation as main_segmentation.py does it, with the whole
// U-Net initialised from pre-training as the DiRA README's segmentation
// snippet loads it (encoder and decoder; the head new): one output channel
// after a sigmoid, the soft Dice loss (or BCE + Dice), Dice and IoU on the
// test masks at threshold 0.5.
type segmentTask struct {
	model model.Config
	loss  string // dice or bce_dice

	// samples keeps the first test images, truths and predictions of each
	// trial for the overlay figure.
	samples []overlaySample
}

func (s *segmentTask) setTargets(data.Targets) {}
func (s *segmentTask) initBest() float64       { return optim.SegmentationInitBest }
func (s *segmentTask) metric() string          { return "dice" }
func (s *segmentTask) exportName() string      { return "segmenter.onnx" }

func (s *segmentTask) newResults(d data.LabeledConfig) report.Results {
	return report.Results{Task: "segmentation", Metric: "dice", Dataset: datasetName(d)}
}

// segmenterConfig is the model config of a binary segmenter: the configured
// encoder and decoder, one output channel, sigmoid.
func (s *segmentTask) segmenterConfig() model.Config {
	c := s.model
	c.OutChannels, c.Activation = 1, "sigmoid"
	return c
}

// segmenter is a segmentation learner.
type segmenter struct {
	u       *model.UNet
	ps      *model.Params
	lossKey string // dice or bce_dice
}

func (s *segmentTask) newLearner(seed uint64, pre *pretrained) (learner, error) {
	u, ps, err := model.NewUNet(s.segmenterConfig(), seed)
	if err != nil {
		return nil, err
	}
	if pre != nil {
		// Everything but the head, which stays as the seed drew it; a file
		// without a decoder (a ResNet, mode di) gives the encoder only.
		w, err := pre.unet.Rename(func(n string) (string, bool) { return n, !strings.HasPrefix(n, "segmentation_head.") })
		if err != nil {
			ps.Drop()
			return nil, err
		}
		prefix := "encoder."
		if hasDecoder(w) {
			prefix = ""
		}
		required := func(n string) bool {
			return strings.HasPrefix(n, prefix) && !strings.HasPrefix(n, "segmentation_head.")
		}
		if _, err := statedict.Load(ps, statedict.Identity(w), required); err != nil {
			ps.Drop()
			return nil, fmt.Errorf("%s into the segmenter: %w", pre.source, err)
		}
	}
	return &segmenter{u: u, ps: ps, lossKey: s.loss}, nil
}

func hasDecoder(sd statedict.StateDict) bool {
	for _, t := range sd {
		if strings.HasPrefix(t.Name, "decoder.") {
			return true
		}
	}
	return false
}

func (m *segmenter) params() *model.Params { return m.ps }

func (m *segmenter) trainable() []*model.Param {
	var out []*model.Param
	for _, p := range m.ps.List() {
		if !p.Buffer {
			out = append(out, p)
		}
	}
	return out
}

// masks runs the U-Net on a batch: sigmoid probabilities [N, 1, H, W].
func (m *segmenter) masks(b *data.LabeledBatch, train bool) *ts.Tensor {
	x := torch.FromFloat32(b.Images, []int64{int64(b.N), 3, int64(b.H), int64(b.W)})
	defer torch.Drop(x)
	y, err := m.u.Forward(x, model.Mode{Train: train})
	torch.Check(err)
	return y
}

// loss is the official torch_dice_coef_loss on the sigmoid output,
// 1 - (2·Σ p·t + 1) / (Σ p + Σ t + 1) over the whole batch, or nn.BCELoss plus
// that.
func (m *segmenter) loss(b *data.LabeledBatch, train bool) *ts.Tensor {
	p := m.masks(b, train)
	defer torch.Drop(p)
	t := torch.FromFloat32(b.Masks, []int64{int64(b.N), 1, int64(b.H), int64(b.W)})
	defer torch.Drop(t)
	d := diceLoss(p, t)
	if m.lossKey != "bce_dice" {
		return d
	}
	defer torch.Drop(d)
	bce := torch.Must(p.BinaryCrossEntropy(t, ts.None, 1, false))
	defer torch.Drop(bce)
	return torch.Must(bce.Add(d, false))
}

// diceLoss is 1 - (2·Σ p·t + 1) / (Σ p + Σ t + 1).
func diceLoss(p, t *ts.Tensor) *ts.Tensor {
	pt := torch.Must(p.Mul(t, false))
	inter := torch.Must(pt.Sum(gotch.Float, true))
	sp := torch.Must(p.Sum(gotch.Float, false))
	st := torch.Must(t.Sum(gotch.Float, false))
	den := torch.Must(sp.Add(st, true))
	torch.Drop(st)
	one := torch.FloatScalar(1)
	two := torch.FloatScalar(2)
	defer torch.DropScalars(one, two)
	num := torch.Must(inter.MulScalar(two, true))
	num = torch.Must(num.AddScalar(one, true))
	den = torch.Must(den.AddScalar(one, true))
	ratio := torch.Must(num.Div(den, true))
	torch.Drop(den)
	return torch.Must(ratio.RsubScalar(one, true))
}

// overlaySample is one test image with its true and predicted mask.
type overlaySample struct {
	Trial             string    // the trial's folder
	Gray, Truth, Pred []float32 // [H, W]: the input's first channel as fed to the network, the masks
	H, W              int
}

// test predicts the test masks and scores them: Dice and IoU over the whole
// test set at threshold 0.5 (engine.py's dice(test_p, test_y)), and their
// per-image means (mean_dice_coef).
func (s *segmentTask) test(ctx context.Context, net learner, tl *data.LabeledLoader, dir string) (trialResult, error) {
	m := net.(*segmenter)
	var seg metrics.Segmentation
	ep := tl.Epoch(ctx, 0)
	defer ep.Close()
	kept := 0
	for {
		b, err := ep.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return trialResult{}, err
		}
		var pred []float32
		err = catch(func() {
			torch.NoGrad(func() {
				p := m.masks(b, false)
				pred = torch.Float32s(p)
				torch.Drop(p)
			})
		})
		if err != nil {
			return trialResult{}, err
		}
		if err := seg.Add(pred, b.Masks, b.N); err != nil {
			return trialResult{}, err
		}
		hw := b.H * b.W
		for i := 0; i < b.N && kept < 4; i, kept = i+1, kept+1 {
			s.samples = append(s.samples, overlaySample{
				Trial: dir,
				Gray:  append([]float32(nil), b.Images[i*3*hw:i*3*hw+hw]...),
				Truth: append([]float32(nil), b.Masks[i*hw:(i+1)*hw]...),
				Pred:  append([]float32(nil), pred[i*hw:(i+1)*hw]...),
				H:     b.H, W: b.W,
			})
		}
	}
	sc := seg.Scores()
	var t trialResult
	if sc.Images == 0 {
		t.Error = "the test split gave no image"
		return t, nil
	}
	dice := sc.Dice
	t.Score = &dice
	t.Note = fmt.Sprintf("dice %.4f, mean per-image dice %.4f, IoU %.4f, mean per-image IoU %.4f on %d images",
		sc.Dice, sc.MeanDice, sc.IoU, sc.MeanIoU, sc.Images)
	t.Segmentation = &sc
	return t, nil
}
