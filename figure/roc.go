package figure

import (
	"fmt"
	"math"
	"sort"

	"gonum.org/v1/plot/vg"
)

// ROCCurve is one class's ROC curve: false and true positive rates at
// decreasing thresholds, as scikit-learn's roc_curve returns them.
type ROCCurve struct {
	Name     string
	FPR, TPR []float64
}

// AUC is the area under c by the trapezoidal rule over its points in the
// order given (scikit-learn's auc on roc_curve's output, which equals
// roc_auc_score). NaN when fewer than two points are finite.
func (c ROCCurve) AUC() float64 {
	pts := finite(c.FPR, c.TPR)
	if len(pts) < 2 {
		return math.NaN()
	}
	var a float64
	for i := 1; i < len(pts); i++ {
		a += (pts[i].X - pts[i-1].X) * (pts[i].Y + pts[i-1].Y) / 2
	}
	return math.Abs(a)
}

// MeanROC averages curves vertically: the mean true positive rate at each
// of n+1 evenly spaced false positive rates, each curve interpolated
// linearly (as in scikit-learn's macro-average ROC example). Curves with
// fewer than two finite points are left out; nil when none is left.
func MeanROC(curves []ROCCurve, n int) (fpr, tpr []float64) {
	var usable [][2][]float64
	for _, c := range curves {
		pts := finite(c.FPR, c.TPR)
		if len(pts) < 2 {
			continue
		}
		// Sort by FPR (stable, so equal FPRs keep their rising TPR order).
		sort.SliceStable(pts, func(i, j int) bool { return pts[i].X < pts[j].X })
		x, y := make([]float64, len(pts)), make([]float64, len(pts))
		for i, p := range pts {
			x[i], y[i] = p.X, p.Y
		}
		usable = append(usable, [2][]float64{x, y})
	}
	if len(usable) == 0 || n < 1 {
		return nil, nil
	}
	for i := 0; i <= n; i++ {
		f := float64(i) / float64(n)
		var sum float64
		for _, c := range usable {
			sum += interp(f, c[0], c[1])
		}
		fpr, tpr = append(fpr, f), append(tpr, sum/float64(len(usable)))
	}
	return fpr, tpr
}

// interp is NumPy's interp: linear between the points of the increasing xs,
// the end values outside them; at a repeated x the last point's y.
func interp(x float64, xs, ys []float64) float64 {
	if x < xs[0] {
		return ys[0]
	}
	if x >= xs[len(xs)-1] {
		return ys[len(ys)-1]
	}
	j := sort.Search(len(xs), func(i int) bool { return xs[i] > x }) // xs[j-1] <= x < xs[j]
	x0, x1, y0, y1 := xs[j-1], xs[j], ys[j-1], ys[j]
	return y0 + (y1-y0)*(x-x0)/(x1-x0)
}

// ROC draws one curve per class and their vertical mean (thick, black) on
// a square [0,1] panel with the chance diagonal, each legend entry carrying
// the curve's AUC.
func ROC(curves []ROCCurve, title string) ([]byte, error) {
	p := Panel{Title: title, YLabel: "true positive rate", YMin: 0, YMax: 1, YFixed: true}
	p.Series = append(p.Series, Series{Name: "chance", X: []float64{0, 1}, Y: []float64{0, 1}, Color: midGrey, Dash: true})
	var aucs []float64
	for i, c := range curves {
		auc := c.AUC()
		if !math.IsNaN(auc) {
			aucs = append(aucs, auc)
		}
		p.Series = append(p.Series, Series{Name: fmt.Sprintf("%s (AUC %s)", c.Name, fmtNum(auc)), X: c.FPR, Y: c.TPR, Color: paletteColor(i)})
	}
	if mx, my := MeanROC(curves, 100); mx != nil {
		mean := math.NaN()
		if len(aucs) > 0 {
			mean = 0
			for _, a := range aucs {
				mean += a
			}
			mean /= float64(len(aucs))
		}
		p.Series = append(p.Series, Series{Name: fmt.Sprintf("mean of classes (mean AUC %s)", fmtNum(mean)), X: mx, Y: my, Color: black, Thick: true})
	}
	return Panels([]Panel{p}, Options{XLabel: "false positive rate", XMin: 0, XMax: 1, XFixed: true, Columns: 1,
		PanelWidth: 3.6 * vg.Inch, PanelHeight: 3.6 * vg.Inch})
}

// fmtNum prints a metric with 3 decimals, or n/a.
func fmtNum(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "n/a"
	}
	return fmt.Sprintf("%.3f", v)
}
