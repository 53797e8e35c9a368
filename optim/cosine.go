package optim

import (
	"fmt"
	"math"
)

// Cosine is torch.optim.lr_scheduler.CosineAnnealingLR of PyTorch 1.13 for one
// parameter group, stepped once per epoch. PyTorch computes it recursively
// from the current rate (get_lr), not from the closed form, so after many
// epochs the two differ by rounding; this type follows the recursion so that
// the rates equal torch's, and it continues past TMax as torch does (the rate
// climbs back up: a period of 2·TMax). The exported fields are the whole state.
type Cosine struct {
	BaseLR float64 // torch's base_lrs[0] (the group's initial_lr)
	EtaMin float64
	TMax   int
	LR     float64 // the current rate: the group's 'lr'
	Epoch  int     // torch's last_epoch
	Steps  int     // torch's _step_count
}

// NewCosine returns the scheduler as torch's constructor leaves it: lastEpoch
// -1 for a fresh schedule (the rate is baseLR, Epoch 0); a lastEpoch >= 0
// resumes the way torch does when built with last_epoch=lastEpoch, whose
// initial step jumps to the closed form at lastEpoch+1.
func NewCosine(baseLR, etaMin float64, tMax, lastEpoch int) (*Cosine, error) {
	if tMax < 1 {
		return nil, fmt.Errorf("optim: cosine T_max must be >= 1, got %d", tMax)
	}
	if lastEpoch < -1 {
		return nil, fmt.Errorf("optim: cosine last epoch must be >= -1, got %d", lastEpoch)
	}
	c := &Cosine{BaseLR: baseLR, EtaMin: etaMin, TMax: tMax, LR: baseLR, Epoch: lastEpoch}
	c.Step() // torch's _initial_step
	return c, nil
}

// Step advances one epoch and returns the new rate (get_last_lr()[0]).
func (c *Cosine) Step() float64 {
	c.Steps++
	c.Epoch++
	t, T := float64(c.Epoch), float64(c.TMax)
	switch {
	case c.Epoch == 0:
		// keep the group's rate
	case c.Steps == 1 && c.Epoch > 0:
		c.LR = c.EtaMin + (c.BaseLR-c.EtaMin)*(1+math.Cos(t*math.Pi/T))/2
	case (c.Epoch-1-c.TMax)%(2*c.TMax) == 0:
		c.LR = c.LR + (c.BaseLR-c.EtaMin)*(1-math.Cos(math.Pi/T))/2
	default:
		c.LR = (1+math.Cos(math.Pi*t/T))/(1+math.Cos(math.Pi*(t-1)/T))*(c.LR-c.EtaMin) + c.EtaMin
	}
	return c.LR
}

// ClosedForm is torch's _get_closed_form_lr at epoch t: the rate the
// recursion approximates.
func (c *Cosine) ClosedForm(t int) float64 {
	return c.EtaMin + (c.BaseLR-c.EtaMin)*(1+math.Cos(math.Pi*float64(t)/float64(c.TMax)))/2
}

// AnnealCosine is utils.cosine_anneal_schedule(t, epochs, learning_rate) of the
// official benchmark code, with its M = 1 snapshot:
//
//	lr/2 · (cos(π · (t mod epochs) / epochs) + 1)
//
// epochs must be >= 1.
func AnnealCosine(t, epochs int, lr float64) float64 {
	inner := math.Pi * float64(t%epochs)
	inner /= float64(epochs)
	return lr / 2 * (math.Cos(inner) + 1)
}

// SegmentationLR is the rate segmentation_engine (engine.py) trains epoch
// epoch (0-based) with: Adam's initial lr for epoch 0, and
// AnnealCosine(epoch-1, epochs, lr) afterwards, because the engine sets the
// rate from the epoch just finished, after training it. Epochs 0 and 1 both
// train at lr.
func SegmentationLR(epoch, epochs int, lr float64) float64 {
	if epoch == 0 {
		return lr
	}
	return AnnealCosine(epoch-1, epochs, lr)
}
