package stages

import (
	"encoding/json"
	"fmt"

	"github.com/sugarme/gotch/ts"

	"dira/checkpoint"
	"dira/internal/torch"
	"dira/model"
	"dira/optim"
	"dira/pipeline"
	"dira/statedict"
)

// state is everything a pre-training stage resumes from: the networks, the
// optimisers' state and where training stands (checkpoint.Meta). A
// checkpoint holds exactly this; save and resume are inverses.
type state struct {
	kind   string
	moco   *model.MoCo
	discPs *model.Params        // nil outside the adversarial stage
	disc   *model.Discriminator // nil outside the adversarial stage
	sgd    *optim.SGD
	adam   *optim.Adam       // nil outside the adversarial stage
	scaler *optim.GradScaler // run.precision fp16 only
	meta   checkpoint.Meta
}

// stateExtra is what a pre-training checkpoint keeps in its meta's extra
// field: the loss scaler of an fp16 run (absent otherwise). Tensors are fp32
// at every precision, so a checkpoint resumes under any of them; an fp16
// resume without a saved scaler starts a fresh one.
type stateExtra struct {
	GradScaler *optim.GradScaler `json:"grad_scaler,omitempty"`
}

// newState builds the networks and optimisers of a stage kind from the config
// seed, with no training done.
func newState(c pipeline.Config, kind string, tr *pipeline.Training, adv *pipeline.AdversarialStage) (*state, error) {
	s := &state{kind: kind, meta: checkpoint.Meta{Stage: kind, BestEpoch: -1}}
	var err error
	if s.moco, err = model.NewMoCo(c.Model, c.MoCo.QueueSize, kind != pipeline.StageMoCo, c.Run.Seed); err != nil {
		return nil, err
	}
	s.sgd = &optim.SGD{Params: s.moco.Params.Trainable(), Momentum: tr.Optimizer.Momentum, WeightDecay: tr.Optimizer.WeightDecay}
	if adv != nil {
		s.discPs = model.NewParams()
		s.disc = model.NewDiscriminator(s.discPs, c.Model.Discriminator, c.Run.Seed)
		o := adv.DiscOptimizer
		s.adam = &optim.Adam{Params: s.discPs.Trainable(), LR: o.LR, Beta1: o.Beta1, Beta2: o.Beta2, Eps: 1e-8}
	}
	if c.Run.Precision == pipeline.PrecisionFP16 {
		s.scaler = optim.NewGradScaler()
	}
	cfgYAML, err := c.YAML()
	if err != nil {
		s.close()
		return nil, err
	}
	s.meta.Config = string(cfgYAML)
	return s, nil
}

func (s *state) close() {
	if s.moco != nil {
		s.moco.Params.Drop()
	}
	if s.discPs != nil {
		s.discPs.Drop()
	}
	if s.sgd != nil {
		torch.Drop(s.sgd.Bufs...)
	}
	if s.adam != nil {
		torch.Drop(s.adam.M...)
		torch.Drop(s.adam.V...)
	}
}

// trainableNames lists the names of the parameters SGD updates, in the order
// of sgd.Params and sgd.Bufs.
func (s *state) trainableNames() []string {
	var out []string
	for _, p := range s.moco.Params.List() {
		if !p.Buffer && !p.Frozen {
			out = append(out, p.Name)
		}
	}
	return out
}

// save writes the state to path atomically and returns the file's sha256.
func (s *state) save(path string) (string, error) {
	entries := paramEntries(checkpoint.GroupModel, s.moco.Params)
	if s.discPs != nil {
		entries = append(entries, paramEntries(checkpoint.GroupDisc, s.discPs)...)
	}
	add := func(name string, t *ts.Tensor) {
		entries = append(entries, checkpoint.Entry{Name: name, Value: func() (statedict.Tensor, error) { return model.TensorOf(name, t) }})
	}
	if s.sgd.Bufs != nil {
		for i, name := range s.trainableNames() {
			if b := s.sgd.Bufs[i]; b != nil {
				add(checkpoint.GroupSGD+name, b)
			}
		}
	}
	meta := s.meta
	meta.Extra = nil
	if s.scaler != nil {
		b, err := json.Marshal(stateExtra{GradScaler: s.scaler})
		if err != nil {
			return "", fmt.Errorf("checkpoint %s: grad scaler: %w", path, err)
		}
		meta.Extra = b
	}
	if s.adam != nil && s.adam.M != nil {
		meta.AdamSteps = s.adam.Steps
		for i, p := range s.discPs.List() {
			add(checkpoint.GroupAdamM+p.Name, s.adam.M[i])
			add(checkpoint.GroupAdamV+p.Name, s.adam.V[i])
		}
	}
	return checkpoint.Write(path, meta, entries)
}

// resume restores everything a checkpoint of this stage holds; the meta's
// config stays the one of this run.
func (s *state) resume(path string) error {
	ck, err := checkpoint.Read(path)
	if err != nil {
		return err
	}
	if ck.Meta.Stage != s.kind {
		return fmt.Errorf("checkpoint %s belongs to stage %q, not %q", path, ck.Meta.Stage, s.kind)
	}
	if err := loadGroup(ck, checkpoint.GroupModel, s.moco.Params); err != nil {
		return err
	}
	if s.discPs != nil {
		if err := loadGroup(ck, checkpoint.GroupDisc, s.discPs); err != nil {
			return err
		}
	}
	if bufs := ck.Group(checkpoint.GroupSGD); len(bufs) > 0 {
		s.sgd.Bufs = make([]*ts.Tensor, len(s.sgd.Params))
		for i, name := range s.trainableNames() {
			if s.sgd.Bufs[i], err = tensorFrom(ck, checkpoint.GroupSGD+name); err != nil {
				return err
			}
		}
	}
	if s.adam != nil && ck.Meta.AdamSteps > 0 {
		s.adam.Steps = ck.Meta.AdamSteps
		for _, p := range s.discPs.List() {
			m, err := tensorFrom(ck, checkpoint.GroupAdamM+p.Name)
			if err != nil {
				return err
			}
			v, err := tensorFrom(ck, checkpoint.GroupAdamV+p.Name)
			if err != nil {
				return err
			}
			s.adam.M = append(s.adam.M, m)
			s.adam.V = append(s.adam.V, v)
		}
	}
	if s.scaler != nil && len(ck.Meta.Extra) > 0 {
		var ex stateExtra
		if err := json.Unmarshal(ck.Meta.Extra, &ex); err != nil {
			return fmt.Errorf("checkpoint %s: meta extra: %w", path, err)
		}
		if ex.GradScaler != nil {
			*s.scaler = *ex.GradScaler
		}
	}
	cfg := s.meta.Config
	s.meta = ck.Meta
	s.meta.Config = cfg
	return nil
}

// initFrom starts the adversarial stage as the official
// --generator_pre_trained_weights does: networks, queue and pointer from the
// warm-up checkpoint; fresh optimisers, schedule and discriminator (spec 4.5).
func (s *state) initFrom(path string) error {
	ck, err := checkpoint.Read(path)
	if err != nil {
		return err
	}
	return loadGroup(ck, checkpoint.GroupModel, s.moco.Params)
}

// loadGroup loads one group of a checkpoint into ps with the strict loader:
// every entry of ps must be there with its shape, and nothing else.
func loadGroup(ck *checkpoint.File, group string, ps *model.Params) error {
	if _, err := statedict.Load(ps, statedict.Identity(ck.Group(group)), nil); err != nil {
		return fmt.Errorf("checkpoint %s: %s: %w", ck.Path, group[:len(group)-1], err)
	}
	return nil
}

// tensorFrom makes a new libtorch tensor of a checkpoint entry.
func tensorFrom(ck *checkpoint.File, name string) (t *ts.Tensor, err error) {
	defer torch.Catch("checkpoint "+ck.Path, &err)
	e, ok := ck.Tensors.Get(name)
	if !ok {
		return nil, fmt.Errorf("checkpoint %s: no tensor %s", ck.Path, name)
	}
	return torch.FromFloat32(e.Float32(), e.Shape), nil
}
