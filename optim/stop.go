package optim

import "fmt"

// Initial best losses of the official engines (engine.py): classification
// starts from init_loss = 1000000, segmentation from best_val_loss = 100000.
// An epoch whose validation loss is not below these does not count as an
// improvement.
const (
	ClassificationInitBest = 1e6
	SegmentationInitBest   = 1e5
)

// EarlyStop is the patience rule of classification_engine and
// segmentation_engine (engine.py): an epoch improves when its validation loss
// is strictly below the best so far (no threshold); an improvement resets the
// counter, any other epoch increments it, and training stops after the epoch
// where the counter exceeds Patience, that is after Patience+1 epochs in a row
// without improvement. The official classification engine applies it whatever
// its --early_stop flag says. The exported fields are the whole state.
type EarlyStop struct {
	Patience int
	Best     float64 // best validation loss so far (the initial best before any improvement)
	BestAt   int     // epoch index (0-based) of Best; -1 before any improvement
	Counter  int     // epochs since the last improvement
	Epoch    int     // number of Step calls
}

// NewEarlyStop returns the rule with the given patience and initial best loss
// (ClassificationInitBest or SegmentationInitBest to match the official code).
func NewEarlyStop(patience int, initBest float64) (*EarlyStop, error) {
	if patience < 0 {
		return nil, fmt.Errorf("optim: early stop patience must be >= 0, got %d", patience)
	}
	return &EarlyStop{Patience: patience, Best: initBest, BestAt: -1}, nil
}

// Step records one epoch's validation loss. improved says the loss is a new
// best (the official engines save their checkpoint then); stop says training
// ends after this epoch. A NaN loss never improves.
func (e *EarlyStop) Step(valLoss float64) (improved, stop bool) {
	if valLoss < e.Best {
		e.Best, e.BestAt, e.Counter = valLoss, e.Epoch, 0
		improved = true
	} else {
		e.Counter++
	}
	e.Epoch++
	return improved, e.Counter > e.Patience
}
