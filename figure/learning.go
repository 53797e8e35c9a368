package figure

import "fmt"

// LearningCurve is one fine-tuning trial's per-epoch values. Epoch[i] is
// the x of the i-th values: 1 for the end of the first epoch.
type LearningCurve struct {
	Name      string
	Epoch     []float64
	TrainLoss []float64
	ValLoss   []float64
	Metric    []float64 // validation metric (AUC, Dice, ...)
}

// LearningCurves draws fine-tuning trials as two panels sharing the epoch
// axis: training (dashed) and validation (solid) loss, and the validation
// metric. Each trial has its own colour.
func LearningCurves(curves []LearningCurve, metric, title string) ([]byte, error) {
	loss := Panel{Title: "loss"}
	met := Panel{Title: "validation " + metric}
	for i, c := range curves {
		clr := paletteColor(i)
		train, val := c.Name+": train", c.Name+": validation"
		loss.Series = append(loss.Series,
			Series{Name: train, X: c.Epoch, Y: c.TrainLoss, Style: LinePoints, Dash: true, Color: clr},
			Series{Name: val, X: c.Epoch, Y: c.ValLoss, Style: LinePoints, Color: clr})
		met.Series = append(met.Series, Series{Name: val, X: c.Epoch, Y: c.Metric, Style: LinePoints, Color: clr})
	}
	if len(curves) == 0 {
		title = fmt.Sprintf("%s (no trials)", title)
	}
	return Panels([]Panel{loss, met}, Options{Title: title, XLabel: "epoch", EpochTicks: true})
}
