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
	"dira/transfer"
)

// task is what differs between the classify and segment stages.
type task interface {
	// setTargets learns the classes from the training source.
	setTargets(data.Targets)
	// newLearner builds a trial's network from seed with pre's weights (nil:
	// random).
	newLearner(seed uint64, pre *pretrained) (learner, error)
	// initBest is the official engine's starting best validation loss.
	initBest() float64
	// test scores a network on the test split; dir is the trial's folder.
	test(ctx context.Context, net learner, test *data.LabeledLoader, dir string) (trialResult, error)
	metric() string
	newResults(data.LabeledConfig) report.Results
	// exportName is the ONNX file of the exported network.
	exportName() string
}

// classifyTask is classification as main_classification.py does it: the
// encoder with a new head, sigmoid + BCE (multi-label) or softmax +
// cross-entropy (multi-class), ten-crop test predictions averaged, per-class
// AUC.
type classifyTask struct {
	model   model.Config
	data    data.LabeledConfig
	probe   bool
	classes []string
}

func (c *classifyTask) setTargets(t data.Targets) { c.classes = t.Classes }
func (c *classifyTask) initBest() float64         { return optim.ClassificationInitBest }
func (c *classifyTask) metric() string            { return "auc" }
func (c *classifyTask) exportName() string        { return "classifier.onnx" }
func (c *classifyTask) multiclass() bool          { return c.data.Task == data.TaskMultiClass }

func (c *classifyTask) newResults(d data.LabeledConfig) report.Results {
	return report.Results{Task: "classification", Metric: "auc", Classes: c.classes, Dataset: datasetName(d)}
}

// classifier is a classification learner.
type classifier struct {
	net   *model.Classifier
	ps    *model.Params
	probe bool
	multi bool // multi-class
}

func (c *classifyTask) newLearner(seed uint64, pre *pretrained) (learner, error) {
	// The official multi-label head is Sequential(Linear, Sigmoid): keys fc.0.*.
	head := "fc.0"
	if c.multiclass() {
		head = "fc"
	}
	net, ps, err := model.NewClassifier(c.model, len(c.classes), head, seed)
	if err != nil {
		return nil, err
	}
	if pre != nil {
		// The README's classification snippet: the encoder's torchvision
		// names, every encoder key required; the head stays new.
		enc, err := transfer.Classification.StateDict(pre.unet)
		if err != nil {
			ps.Drop()
			return nil, fmt.Errorf("%s: %w", pre.source, err)
		}
		if _, err := statedict.Load(ps, statedict.Identity(enc), func(n string) bool { return !strings.HasPrefix(n, "fc") }); err != nil {
			ps.Drop()
			return nil, fmt.Errorf("%s into the classifier: %w", pre.source, err)
		}
	}
	return &classifier{net: net, ps: ps, probe: c.probe, multi: c.multiclass()}, nil
}

func (m *classifier) params() *model.Params { return m.ps }

// trainable is every parameter, or the head alone for a linear probe.
func (m *classifier) trainable() []*model.Param {
	var out []*model.Param
	for _, p := range m.ps.List() {
		if !p.Buffer && (!m.probe || strings.HasPrefix(p.Name, m.net.HeadKey+".")) {
			out = append(out, p)
		}
	}
	return out
}

// logits runs the network on a batch's images [N·crops, 3, H, W]. A linear
// probe runs the encoder frozen: batch norm in eval mode, no graph.
func (m *classifier) logits(b *data.LabeledBatch, train bool) *ts.Tensor {
	x := torch.FromFloat32(b.Images, []int64{int64(b.N * b.Crops), 3, int64(b.H), int64(b.W)})
	defer torch.Drop(x)
	mode := model.Mode{Train: train}
	if !m.probe {
		y, err := m.net.Forward(x, mode)
		torch.Check(err)
		return y
	}
	var feat *ts.Tensor
	torch.NoGrad(func() {
		var err error
		feat, err = m.net.Features(x, model.Eval)
		torch.Check(err)
	})
	defer torch.Drop(feat)
	y, err := m.net.Head(feat)
	torch.Check(err)
	return y
}

// loss is BCELoss(sigmoid(logits), labels), as the official model ends in a
// Sigmoid and the engine uses nn.BCELoss, or CrossEntropyLoss(logits, class).
func (m *classifier) loss(b *data.LabeledBatch, train bool) *ts.Tensor {
	if b.Crops != 1 {
		torch.Fail("a training or validation batch has %d crops per image", b.Crops)
	}
	y := m.logits(b, train)
	defer torch.Drop(y)
	if m.multi {
		cls := torch.FromInt64(b.Class, []int64{int64(b.N)})
		defer torch.Drop(cls)
		return torch.Must(y.CrossEntropyLoss(cls, ts.None, 1, -100, 0, false))
	}
	p := torch.Must(y.Sigmoid(false))
	defer torch.Drop(p)
	t := torch.FromFloat32(b.Labels, []int64{int64(b.N), int64(len(b.Classes))})
	defer torch.Drop(t)
	return torch.Must(p.BinaryCrossEntropy(t, ts.None, 1, false))
}

// probabilities is the test prediction: the sigmoid (softmax) of each crop,
// averaged over an image's crops as test_classification does ([N, C]).
func (m *classifier) probabilities(b *data.LabeledBatch) []float32 {
	var out []float32
	torch.NoGrad(func() {
		y := m.logits(b, false)
		defer torch.Drop(y)
		var p *ts.Tensor
		if m.multi {
			p = torch.Must(y.Softmax(1, gotch.Float, false))
		} else {
			p = torch.Must(y.Sigmoid(false))
		}
		defer torch.Drop(p)
		v := torch.Must(p.View([]int64{int64(b.N), int64(b.Crops), -1}, false))
		defer torch.Drop(v)
		mean := torch.Must(v.MeanDim([]int64{1}, false, gotch.Float, false))
		defer torch.Drop(mean)
		out = torch.Float32s(mean)
	})
	return out
}

// test predicts the test split and scores it: per-class ROC AUC (one class
// against the rest for multi-class) and their mean over the defined classes.
func (c *classifyTask) test(ctx context.Context, net learner, tl *data.LabeledLoader, _ string) (trialResult, error) {
	m := net.(*classifier)
	var probs, labels []float32
	n := 0
	ep := tl.Epoch(ctx, 0)
	defer ep.Close()
	for {
		b, err := ep.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return trialResult{}, err
		}
		var p []float32
		if err := catch(func() { p = m.probabilities(b) }); err != nil {
			return trialResult{}, err
		}
		probs = append(probs, p...)
		if m.multi {
			for _, cl := range b.Class {
				oneHot := make([]float32, len(c.classes))
				oneHot[cl] = 1
				labels = append(labels, oneHot...)
			}
		} else {
			labels = append(labels, b.Labels...)
		}
		n += b.N
	}
	rep, err := metrics.PerClassAUC(labels, probs, n, len(c.classes), c.classes)
	if err != nil {
		return trialResult{}, err
	}
	return aucResult(rep), nil
}

// aucResult is a trial's scores from its per-class AUCs: the mean over the
// defined classes, null for an undefined class (no positive or no negative
// test image) with the reason in the note, and the ROC curves.
func aucResult(rep metrics.AUCReport) trialResult {
	var t trialResult
	if rep.Defined > 0 {
		mean := rep.Mean
		t.Score = &mean
	} else {
		t.Error = "no class has both positive and negative test images: AUC undefined"
	}
	var undefined []string
	for _, ca := range rep.Classes {
		if !ca.Defined {
			t.PerClass = append(t.PerClass, nil)
			undefined = append(undefined, ca.Reason)
			continue
		}
		auc := ca.AUC
		t.PerClass = append(t.PerClass, &auc)
		t.ROC = append(t.ROC, report.ROCPoint{Class: ca.Name, FPR: ca.Curve.FPR, TPR: ca.Curve.TPR})
	}
	if len(undefined) > 0 {
		t.Note = "AUC undefined for " + strings.Join(undefined, "; ")
	}
	return t
}

// catch runs tensor code and returns a libtorch error it raised.
func catch(fn func()) (err error) {
	defer torch.Catch("", &err)
	fn()
	return nil
}

// datasetName names the labelled data for figure titles.
func datasetName(d data.LabeledConfig) string {
	if d.Source == data.SourceSynthetic {
		return "synthetic radiographs"
	}
	for _, s := range []string{d.Train.List, d.Train.Images, d.Root} {
		if s != "" {
			return s
		}
	}
	return d.Source
}
