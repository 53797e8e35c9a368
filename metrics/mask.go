package metrics

import (
	"fmt"
	"math"
)

// Threshold is the cut above which a mask value counts as foreground, strictly:
// the official utils.dice tests value > 0.5.
const Threshold = 0.5

// Overlap is the pixel counts of a predicted and a true binary mask.
type Overlap struct {
	Pred, Truth, Inter int64 // foreground pixels in each, and in both
}

// Union is the number of pixels foreground in either mask.
func (o Overlap) Union() int64 { return o.Pred + o.Truth - o.Inter }

// Dice is 2·|P∩T| / (|P| + |T|), or 1 when both masks are empty (utils.dice's
// empty_score).
func (o Overlap) Dice() float64 {
	s := o.Pred + o.Truth
	if s == 0 {
		return 1
	}
	return 2. * float64(o.Inter) / float64(s)
}

// IoU is |P∩T| / |P∪T|, or 1 when both masks are empty. The official code
// reports no IoU; the empty case follows its Dice.
func (o Overlap) IoU() float64 {
	u := o.Union()
	if u == 0 {
		return 1
	}
	return float64(o.Inter) / float64(u)
}

// Count thresholds pred and truth at 0.5 (strictly above is foreground) and
// counts their overlap.
func Count(pred, truth []float32) (Overlap, error) {
	if len(pred) != len(truth) {
		return Overlap{}, fmt.Errorf("metrics: mask: %d predicted values but %d true ones", len(pred), len(truth))
	}
	var o Overlap
	for i, p := range pred {
		pp, tt := p > Threshold, truth[i] > Threshold
		if pp {
			o.Pred++
		}
		if tt {
			o.Truth++
		}
		if pp && tt {
			o.Inter++
		}
	}
	return o, nil
}

// Segmentation accumulates Dice and IoU over a test set, batch by batch. The
// zero value is ready to use.
type Segmentation struct {
	total           Overlap
	diceSum, iouSum float64
	images          int
}

// Add scores a batch of n masks of equal size, row-major [n, ...] predicted
// probabilities and true masks.
func (s *Segmentation) Add(pred, truth []float32, n int) error {
	if n < 1 || len(pred)%n != 0 {
		return fmt.Errorf("metrics: segmentation: %d values do not split into %d masks", len(pred), n)
	}
	if len(pred) != len(truth) {
		return fmt.Errorf("metrics: segmentation: %d predicted values but %d true ones", len(pred), len(truth))
	}
	per := len(pred) / n
	for i := 0; i < n; i++ {
		o, _ := Count(pred[i*per:(i+1)*per], truth[i*per:(i+1)*per])
		s.total.Pred += o.Pred
		s.total.Truth += o.Truth
		s.total.Inter += o.Inter
		s.diceSum += o.Dice()
		s.iouSum += o.IoU()
		s.images++
	}
	return nil
}

// SegScores are the segmentation scores of a test set.
type SegScores struct {
	Dice     float64 // over all pixels of all images (engine.py: dice(test_p, test_y))
	MeanDice float64 // mean of the per-image Dice (engine.py: mean_dice_coef)
	IoU      float64 // over all pixels of all images
	MeanIoU  float64 // mean of the per-image IoU
	Images   int
}

// Scores returns the scores of everything added so far; all are NaN when
// nothing was added.
func (s *Segmentation) Scores() SegScores {
	if s.images == 0 {
		nan := math.NaN()
		return SegScores{Dice: nan, MeanDice: nan, IoU: nan, MeanIoU: nan}
	}
	n := float64(s.images)
	return SegScores{
		Dice:     s.total.Dice(),
		MeanDice: s.diceSum / n,
		IoU:      s.total.IoU(),
		MeanIoU:  s.iouSum / n,
		Images:   s.images,
	}
}
