package stages

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/sugarme/gotch/ts"

	"dira/checkpoint"
	"dira/data"
	"dira/internal/torch"
	"dira/metrics"
	"dira/model"
	"dira/optim"
	"dira/pipeline"
	"dira/report"
	"dira/statedict"
	"dira/transfer"
)

// learner is a downstream network in training: what the fine-tuning loop
// needs of a classifier or a segmenter.
type learner interface {
	params() *model.Params
	// trainable lists the parameters Adam updates, in the network's order.
	trainable() []*model.Param
	// loss is the mean loss of a batch: with train, batch norm in training
	// mode and the graph recorded for backward; without, running statistics.
	loss(b *data.LabeledBatch, train bool) *ts.Tensor
}

// trialResult is a finished trial: its entry of results.json, its ROC curves
// (classification) and where its files are.
type trialResult struct {
	report.Trial
	ValLoss float64 `json:"val_loss"` // best validation loss, which picks the trial to export
	Note    string  `json:"note,omitempty"`
	// TrainImages and TrainSubset identify the training images (after the
	// label fraction): their count and a hash of their names, the same for
	// every initialisation and trial.
	TrainImages int    `json:"train_images"`
	TrainSubset string `json:"train_subset"`
	// Segmentation holds every segmentation score (Score is the Dice over
	// the whole test set).
	Segmentation *metrics.SegScores `json:"segmentation,omitempty"`
	ROC          []report.ROCPoint  `json:"roc,omitempty"`
	Dir          string             `json:"dir"`
}

// trialState is what a trial keeps in its checkpoint's meta besides the
// position: the schedule and the stopping rule, whole.
type trialState struct {
	Init    string           `json:"init"`
	Trial   int              `json:"trial"`
	Seed    uint64           `json:"seed"`
	Plateau *optim.Plateau   `json:"plateau,omitempty"` // classification's ReduceLROnPlateau
	Stop    *optim.EarlyStop `json:"stop"`
	Done    bool             `json:"done"` // training ended (epochs or early stop)
}

// ftState is a trial in training: the network, Adam, and where it stands.
type ftState struct {
	net   learner
	adam  *optim.Adam
	meta  checkpoint.Meta
	extra trialState
}

// newState builds trial k's network from its seed, loads the pre-trained
// weights into it (none for random), and starts Adam, the schedule and the
// stopping rule.
func (f *FineTune) newState(init string, k int, seed uint64, pre *pretrained) (*ftState, error) {
	net, err := f.task.newLearner(seed, pre)
	if err != nil {
		return nil, err
	}
	st := &ftState{net: net, meta: checkpoint.Meta{Stage: f.kind, BestEpoch: -1}}
	var params []*ts.Tensor
	for _, p := range net.trainable() {
		params = append(params, p.T)
	}
	st.adam = &optim.Adam{Params: params, LR: f.ft.LR, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}
	st.extra = trialState{Init: init, Trial: k, Seed: seed}
	if st.extra.Stop, err = optim.NewEarlyStop(f.ft.Patience, f.task.initBest()); err != nil {
		return nil, err
	}
	if f.kind == pipeline.StageClassify {
		if st.extra.Plateau, err = optim.NewPlateau(optim.OfficialPlateau(f.ft.Patience), f.ft.LR); err != nil {
			return nil, err
		}
	}
	cfgYAML, err := f.cfg.YAML()
	if err != nil {
		return nil, err
	}
	st.meta.Config = string(cfgYAML)
	return st, nil
}

// lr is the learning rate epoch trains with: classification's comes from
// ReduceLROnPlateau (stepped at each epoch end), segmentation's from the
// official cosine schedule (optim.SegmentationLR).
func (f *FineTune) lr(st *ftState, epoch int) float64 {
	if st.extra.Plateau != nil {
		return st.extra.Plateau.LR
	}
	return optim.SegmentationLR(epoch, f.ft.Epochs, f.ft.LR)
}

func (st *ftState) close() {
	st.net.params().Drop()
	torch.Drop(st.adam.M...)
	torch.Drop(st.adam.V...)
}

// save writes the trial's state to path atomically.
func (st *ftState) save(path string) (string, error) {
	entries := paramEntries(checkpoint.GroupModel, st.net.params())
	meta := st.meta
	extra, err := json.Marshal(st.extra)
	if err != nil {
		return "", fmt.Errorf("checkpoint %s: %w", path, err)
	}
	meta.Extra = extra
	if st.adam.M != nil {
		meta.AdamSteps = st.adam.Steps
		for i, p := range st.net.trainable() {
			name := p.Name
			m, v, n := st.adam.M[i], st.adam.V[i], name
			entries = append(entries,
				checkpoint.Entry{Name: checkpoint.GroupAdamM + n, Value: func() (statedict.Tensor, error) { return model.TensorOf(n, m) }},
				checkpoint.Entry{Name: checkpoint.GroupAdamV + n, Value: func() (statedict.Tensor, error) { return model.TensorOf(n, v) }})
		}
	}
	return checkpoint.Write(path, meta, entries)
}

// resume restores a trial's state from its last.ckpt.
func (st *ftState) resume(path string) error {
	ck, err := checkpoint.Read(path)
	if err != nil {
		return err
	}
	if ck.Meta.Stage != st.meta.Stage {
		return fmt.Errorf("checkpoint %s belongs to stage %q, not %q", path, ck.Meta.Stage, st.meta.Stage)
	}
	if err := loadGroup(ck, checkpoint.GroupModel, st.net.params()); err != nil {
		return err
	}
	var extra trialState
	if err := json.Unmarshal(ck.Meta.Extra, &extra); err != nil || extra.Stop == nil {
		return fmt.Errorf("checkpoint %s: trial state: %v", path, err)
	}
	if extra.Init != st.extra.Init || extra.Trial != st.extra.Trial {
		return fmt.Errorf("checkpoint %s is init %s trial %d, not init %s trial %d", path, extra.Init, extra.Trial+1, st.extra.Init, st.extra.Trial+1)
	}
	if ck.Meta.AdamSteps > 0 {
		st.adam.Steps = ck.Meta.AdamSteps
		for _, p := range st.net.trainable() {
			name := p.Name
			m, err := tensorFrom(ck, checkpoint.GroupAdamM+name)
			if err != nil {
				return err
			}
			v, err := tensorFrom(ck, checkpoint.GroupAdamV+name)
			if err != nil {
				return err
			}
			st.adam.M, st.adam.V = append(st.adam.M, m), append(st.adam.V, v)
		}
	}
	cfg := st.meta.Config
	st.meta, st.extra = ck.Meta, extra
	st.meta.Config = cfg
	return nil
}

// loadWeights puts the network weights of a checkpoint (best.ckpt) into the
// trial's network.
func (st *ftState) loadWeights(path string) error {
	ck, err := checkpoint.Read(path)
	if err != nil {
		return err
	}
	return loadGroup(ck, checkpoint.GroupModel, st.net.params())
}

// step runs one Adam step on a training batch and returns its loss.
func (f *FineTune) step(st *ftState, b *data.LabeledBatch) (loss float64, err error) {
	defer torch.Catch("", &err)
	torch.Check(optim.ZeroGrad(st.adam.Params))
	l := st.net.loss(b, true)
	defer torch.Drop(l)
	loss = torch.Item(l)
	torch.Backward(l)
	torch.Check(st.adam.Step())
	return loss, nil
}

// validate is the validation loss: the mean of the batch losses weighted by
// batch size (the official evaluate's AverageMeter), batch norm in eval mode,
// autograd off.
func (f *FineTune) validate(ctx context.Context, st *ftState, val *data.LabeledLoader, epoch int) (float64, error) {
	ep := val.Epoch(ctx, epoch)
	defer ep.Close()
	var sum, n float64
	for {
		b, err := ep.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, err
		}
		err = func() (err error) {
			defer torch.Catch(fmt.Sprintf("batch %d", b.Index+1), &err)
			torch.NoGrad(func() {
				l := st.net.loss(b, false)
				sum += torch.Item(l) * float64(b.N)
				torch.Drop(l)
			})
			return nil
		}()
		if err != nil {
			return 0, err
		}
		n += float64(b.N)
	}
	if n == 0 {
		return 0, errors.New("the validation split gave no batch")
	}
	return sum / n, nil
}

// pretrained is an initialisation's weights under smp's U-Net names
// (transfer.UNetWeights): the encoder for a classifier, the encoder and
// decoder for a segmenter. nil is the random initialisation.
type pretrained struct {
	source string
	unet   statedict.StateDict
}

// pretrained reads an initialisation: nothing for random, the checkpoint of a
// training stage of this run, or a file (a dira .ckpt or a PyTorch .pth).
func (f *FineTune) pretrained(r *pipeline.Run, init string) (*pretrained, error) {
	if init == pipeline.InitRandom {
		return nil, nil
	}
	path := init
	if !strings.ContainsAny(init, "/.") {
		path = filepath.Join(r.Dir, init, f.ft.Checkpoint+".ckpt")
	}
	var sd statedict.StateDict
	if strings.HasSuffix(path, ".ckpt") {
		ck, err := checkpoint.Read(path)
		if err != nil {
			return nil, err
		}
		sd = ck.Group(checkpoint.GroupModel)
	} else {
		pf, err := transfer.ReadFile(path)
		if err != nil {
			return nil, err
		}
		sd = pf.StateDict
	}
	unet, layout, err := transfer.UNetWeights(sd)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	fmt.Fprintf(r.Log, "%s: init %s: %s (layout %s, %d tensors)\n", f.kind, init, path, layout, len(unet))
	return &pretrained{source: path, unet: unet}, nil
}

// initDir is the folder name of an initialisation: its name, or for a file
// its base name without extension.
func initDir(init string) string {
	if !strings.ContainsAny(init, "/.") {
		return init
	}
	base := filepath.Base(init)
	return "file-" + strings.TrimSuffix(strings.TrimSuffix(base, filepath.Ext(base)), ".pth")
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func scoreString(s *float64) string {
	if s == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.4f", *s)
}

// subsetID is a hash of the names of a source's images, in order: which
// images a trial was trained on.
func subsetID(src data.LabeledSource) string {
	h := sha256.New()
	for i := range src.Len() {
		io.WriteString(h, src.Name(i))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}
