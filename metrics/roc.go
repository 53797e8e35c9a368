package metrics

import (
	"errors"
	"fmt"
	"math"
	"sort"
)

// ErrUndefined marks an AUC that does not exist: the labels hold no positive
// or no negative.
var ErrUndefined = errors.New("roc auc undefined")

// Curve is a ROC curve as scikit-learn's roc_curve returns it with
// drop_intermediate=True: the points where the curve changes direction,
// starting at (0, 0). Thresholds[0] is the highest score plus one
// (scikit-learn 1.2 and the 0.22 the official code pinned; later versions
// write +Inf there); point i counts the scores >= Thresholds[i] as positive.
type Curve struct {
	FPR, TPR, Thresholds []float64
}

// ROC returns the ROC curve of scores against binary labels (each 0 or 1).
// It fails on mismatched lengths, an empty input, a label other than 0 or 1,
// or a NaN or infinite score (scikit-learn refuses those too); when the labels
// hold one class only, the curve is returned together with an error wrapping
// ErrUndefined (its FPR or TPR is then NaN, as in scikit-learn).
func ROC(labels, scores []float64) (Curve, error) {
	n := len(labels)
	if n != len(scores) {
		return Curve{}, fmt.Errorf("metrics: roc: %d labels but %d scores", n, len(scores))
	}
	if n == 0 {
		return Curve{}, errors.New("metrics: roc: no samples")
	}
	pos := 0
	for i, y := range labels {
		if y != 0 && y != 1 {
			return Curve{}, fmt.Errorf("metrics: roc: label %d is %v, want 0 or 1", i, y)
		}
		if math.IsNaN(scores[i]) || math.IsInf(scores[i], 0) {
			return Curve{}, fmt.Errorf("metrics: roc: score %d is %v", i, scores[i])
		}
		if y == 1 {
			pos++
		}
	}
	// Scores in decreasing order. scikit-learn sorts ascending with a stable
	// mergesort and reverses, so equal scores end up in reverse input order;
	// within a tie the order does not matter for the counts below.
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return scores[idx[a]] > scores[idx[b]] })
	// One point per distinct score (the last index of each run of ties), with
	// the true and false positives among the scores >= it.
	var tps, fps, thr []float64
	tp := 0.0
	for k, i := range idx {
		tp += labels[i]
		if k == n-1 || scores[idx[k+1]] != scores[i] {
			tps = append(tps, tp)
			fps = append(fps, float64(k+1)-tp)
			thr = append(thr, scores[i])
		}
	}
	// drop_intermediate: keep the ends and every point where the second
	// difference of fps or tps is non-zero (a corner of the curve).
	if len(fps) > 2 {
		keep := []int{0}
		for i := 1; i < len(fps)-1; i++ {
			if fps[i-1]-2*fps[i]+fps[i+1] != 0 || tps[i-1]-2*tps[i]+tps[i+1] != 0 {
				keep = append(keep, i)
			}
		}
		keep = append(keep, len(fps)-1)
		tps, fps, thr = pick(tps, keep), pick(fps, keep), pick(thr, keep)
	}
	c := Curve{
		FPR:        make([]float64, len(fps)+1),
		TPR:        make([]float64, len(tps)+1),
		Thresholds: append([]float64{thr[0] + 1}, thr...),
	}
	nFP, nTP := fps[len(fps)-1], tps[len(tps)-1]
	for i := range fps {
		c.FPR[i+1] = fps[i] / nFP // 0/0 = NaN when there is no negative, as in scikit-learn
		c.TPR[i+1] = tps[i] / nTP
	}
	if nFP == 0 {
		c.FPR[0] = math.NaN()
	}
	if nTP == 0 {
		c.TPR[0] = math.NaN()
	}
	switch {
	case pos == 0:
		return c, fmt.Errorf("metrics: roc: no positive among %d samples: %w", n, ErrUndefined)
	case pos == n:
		return c, fmt.Errorf("metrics: roc: no negative among %d samples: %w", n, ErrUndefined)
	}
	return c, nil
}

func pick(v []float64, idx []int) []float64 {
	out := make([]float64, len(idx))
	for i, j := range idx {
		out[i] = v[j]
	}
	return out
}

// Area is the trapezoidal area under the curve, computed as numpy.trapz(TPR,
// FPR) does (scikit-learn's auc).
func (c Curve) Area() float64 {
	if len(c.FPR) < 2 {
		return math.NaN()
	}
	parts := make([]float64, len(c.FPR)-1)
	for i := range parts {
		parts[i] = (c.FPR[i+1] - c.FPR[i]) * (c.TPR[i+1] + c.TPR[i]) / 2.0
	}
	return pairwiseSum(parts)
}

// AUC is scikit-learn's roc_auc_score(labels, scores) for binary labels: the
// area under the ROC curve, ties scored as half (the trapezoid over distinct
// thresholds). It returns an error wrapping ErrUndefined when the labels hold
// one class only.
func AUC(labels, scores []float64) (float64, error) {
	c, err := ROC(labels, scores)
	if err != nil {
		return math.NaN(), err
	}
	return c.Area(), nil
}

// ClassAUC is the ROC AUC of one class.
type ClassAUC struct {
	Class     int
	Name      string  // the class's name, when given
	AUC       float64 // NaN when undefined
	Defined   bool
	Reason    string // why the AUC is undefined, naming the class; empty when defined
	Positives int
	Negatives int
	Curve     Curve
}

// AUCReport is the per-class AUC of a multi-label test set.
type AUCReport struct {
	Classes []ClassAUC
	// Mean over the defined classes; NaN when none is defined. The official
	// engine (engine.py classification_engine) takes numpy's mean over all
	// classes and crashes before that when a class is undefined, so with every
	// class defined the two agree.
	Mean    float64
	Defined int // number of defined classes
}

// Undefined returns the classes without an AUC.
func (r AUCReport) Undefined() []ClassAUC {
	var out []ClassAUC
	for _, c := range r.Classes {
		if !c.Defined {
			out = append(out, c)
		}
	}
	return out
}

// PerClassAUC computes the AUC of every column of row-major [n, classes]
// labels and scores, as utils.metric_AUROC does (one roc_auc_score per
// class). names, when not nil, names the classes in reasons and must have one
// entry per class. Errors are reserved for unusable input (shapes, labels not
// 0/1, non-finite scores); an undefined class is reported in the result.
func PerClassAUC(labels, scores []float32, n, classes int, names []string) (AUCReport, error) {
	if n < 1 || classes < 1 {
		return AUCReport{}, fmt.Errorf("metrics: auc: need n >= 1 and classes >= 1, got %d and %d", n, classes)
	}
	if len(labels) != n*classes || len(scores) != n*classes {
		return AUCReport{}, fmt.Errorf("metrics: auc: %d labels and %d scores, want %d x %d = %d of each", len(labels), len(scores), n, classes, n*classes)
	}
	if names != nil && len(names) != classes {
		return AUCReport{}, fmt.Errorf("metrics: auc: %d class names for %d classes", len(names), classes)
	}
	rep := AUCReport{Classes: make([]ClassAUC, classes)}
	y, s := make([]float64, n), make([]float64, n)
	var defined []float64
	for c := 0; c < classes; c++ {
		ca := ClassAUC{Class: c, AUC: math.NaN()}
		label := fmt.Sprintf("class %d", c)
		if names != nil {
			ca.Name = names[c]
			label = fmt.Sprintf("class %d (%s)", c, names[c])
		}
		for i := 0; i < n; i++ {
			y[i], s[i] = float64(labels[i*classes+c]), float64(scores[i*classes+c])
			if y[i] == 1 {
				ca.Positives++
			} else {
				ca.Negatives++
			}
		}
		curve, err := ROC(y, s)
		ca.Curve = curve
		switch {
		case errors.Is(err, ErrUndefined):
			kind := "positive"
			if ca.Positives > 0 {
				kind = "negative"
			}
			ca.Reason = fmt.Sprintf("%s: no %s among %d test samples, roc auc undefined", label, kind, n)
		case err != nil:
			return AUCReport{}, fmt.Errorf("metrics: auc: %s: %w", label, err)
		default:
			ca.AUC, ca.Defined = curve.Area(), true
			defined = append(defined, ca.AUC)
		}
		rep.Classes[c] = ca
	}
	rep.Defined = len(defined)
	rep.Mean = math.NaN()
	if len(defined) > 0 {
		rep.Mean, _ = MeanStd(defined)
	}
	return rep, nil
}
