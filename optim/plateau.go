package optim

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
)

// Plateau modes and threshold modes, as PyTorch spells them.
const (
	ModeMin      = "min"
	ModeMax      = "max"
	ThresholdRel = "rel"
	ThresholdAbs = "abs"
)

// PlateauConfig holds the arguments of torch.optim.lr_scheduler.ReduceLROnPlateau.
type PlateauConfig struct {
	Mode          string  // min: a lower metric is better; max: a higher one
	Factor        float64 // new lr = lr * Factor, in (0, 1)
	Patience      int     // bad epochs tolerated before the lr is reduced
	Threshold     float64 // smallest change that counts as an improvement
	ThresholdMode string  // rel: relative to the best value; abs: absolute
	Cooldown      int     // epochs after a reduction during which bad epochs are not counted
	MinLR         float64 // the lr never goes below this
	Eps           float64 // a reduction smaller than Eps is not applied
}

// OfficialPlateau returns the scheduler classification_engine (engine.py)
// builds: ReduceLROnPlateau(optimizer, factor=0.5, patience=patience // 2,
// mode='min', threshold=0.0001, min_lr=0), with PyTorch's defaults for the
// rest (threshold_mode 'rel', cooldown 0, eps 1e-8). Pass the engine's
// --patience (default 10); the halving happens here.
func OfficialPlateau(patience int) PlateauConfig {
	return PlateauConfig{
		Mode:          ModeMin,
		Factor:        0.5,
		Patience:      patience / 2,
		Threshold:     1e-4,
		ThresholdMode: ThresholdRel,
		Cooldown:      0,
		MinLR:         0,
		Eps:           1e-8,
	}
}

// Validate reports every invalid field, as torch's constructor would refuse it.
func (c PlateauConfig) Validate() error {
	var errs []error
	if c.Mode != ModeMin && c.Mode != ModeMax {
		errs = append(errs, fmt.Errorf("optim: plateau mode must be min or max, got %q", c.Mode))
	}
	if c.ThresholdMode != ThresholdRel && c.ThresholdMode != ThresholdAbs {
		errs = append(errs, fmt.Errorf("optim: plateau threshold mode must be rel or abs, got %q", c.ThresholdMode))
	}
	if !(c.Factor > 0 && c.Factor < 1) {
		errs = append(errs, fmt.Errorf("optim: plateau factor must be in (0, 1), got %v", c.Factor))
	}
	if c.Patience < 0 {
		errs = append(errs, fmt.Errorf("optim: plateau patience must be >= 0, got %d", c.Patience))
	}
	if c.Cooldown < 0 {
		errs = append(errs, fmt.Errorf("optim: plateau cooldown must be >= 0, got %d", c.Cooldown))
	}
	if !(c.Threshold >= 0) || !(c.MinLR >= 0) || !(c.Eps >= 0) {
		errs = append(errs, fmt.Errorf("optim: plateau threshold, min lr and eps must be >= 0, got %v, %v, %v", c.Threshold, c.MinLR, c.Eps))
	}
	return errors.Join(errs...)
}

// Plateau is ReduceLROnPlateau of PyTorch 1.13 for one parameter group. Its
// exported fields are its whole state: saving and restoring them resumes the
// schedule exactly (Best is +Inf, or -Inf in max mode, before the first step).
type Plateau struct {
	Config    PlateauConfig
	LR        float64 // the current learning rate
	Best      float64 // best metric so far
	BadEpochs int     // torch's num_bad_epochs
	Cooldown  int     // torch's cooldown_counter: cooldown epochs left
	Epoch     int     // torch's last_epoch: number of Step calls
}

// NewPlateau returns a Plateau starting at learning rate lr.
func NewPlateau(cfg PlateauConfig, lr float64) (*Plateau, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Plateau{Config: cfg, LR: lr, Best: math.Inf(1)}
	if cfg.Mode == ModeMax {
		p.Best = math.Inf(-1)
	}
	return p, nil
}

// better is torch's is_better(a, best). A NaN metric is never better.
func (p *Plateau) better(a float64) bool {
	c := p.Config
	switch {
	case c.Mode == ModeMin && c.ThresholdMode == ThresholdRel:
		return a < p.Best*(1-c.Threshold)
	case c.Mode == ModeMin:
		return a < p.Best-c.Threshold
	case c.ThresholdMode == ThresholdRel:
		return a > p.Best*(c.Threshold+1)
	default:
		return a > p.Best+c.Threshold
	}
}

// Step records one epoch's metric (the validation loss in the official code)
// and returns the learning rate for the next epoch and whether this step
// reduced it. It follows ReduceLROnPlateau.step line by line: the bad-epoch
// count is reset by an improvement and zeroed during cooldown, and the rate is
// reduced once the count exceeds the patience.
func (p *Plateau) Step(metric float64) (lr float64, reduced bool) {
	p.Epoch++
	if p.better(metric) {
		p.Best = metric
		p.BadEpochs = 0
	} else {
		p.BadEpochs++
	}
	if p.Cooldown > 0 {
		p.Cooldown--
		p.BadEpochs = 0 // bad epochs in cooldown are ignored
	}
	if p.BadEpochs > p.Config.Patience {
		newLR := math.Max(p.LR*p.Config.Factor, p.Config.MinLR)
		if p.LR-newLR > p.Config.Eps {
			p.LR = newLR
			reduced = true
		}
		p.Cooldown = p.Config.Cooldown
		p.BadEpochs = 0
	}
	return p.LR, reduced
}

// plateauJSON is Plateau's JSON form: Best as a string, because before the
// first step it is infinite, which JSON numbers cannot hold.
type plateauJSON struct {
	Config    PlateauConfig `json:"config"`
	LR        float64       `json:"lr"`
	Best      string        `json:"best"`
	BadEpochs int           `json:"bad_epochs"`
	Cooldown  int           `json:"cooldown"`
	Epoch     int           `json:"epoch"`
}

// MarshalJSON writes the whole state (checkpoints keep it to resume exactly).
func (p Plateau) MarshalJSON() ([]byte, error) {
	return json.Marshal(plateauJSON{p.Config, p.LR, strconv.FormatFloat(p.Best, 'g', -1, 64), p.BadEpochs, p.Cooldown, p.Epoch})
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (p *Plateau) UnmarshalJSON(b []byte) error {
	var j plateauJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	best, err := strconv.ParseFloat(j.Best, 64)
	if err != nil {
		return fmt.Errorf("optim: plateau best %q: %w", j.Best, err)
	}
	*p = Plateau{j.Config, j.LR, best, j.BadEpochs, j.Cooldown, j.Epoch}
	return nil
}
