package metrics

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"strings"
	"testing"
)

// golden mirrors testdata/metrics.json, written by testdata/gen_metrics.py with
// scikit-learn 1.2 and numpy (Debian bookworm).
type golden struct {
	Sklearn string `json:"sklearn"`
	Numpy   string `json:"numpy"`
	AUC     []struct {
		Name       string     `json:"name"`
		Labels     []float64  `json:"labels"`
		Scores     []float64  `json:"scores"`
		AUC        *float64   `json:"auc"`
		Error      string     `json:"error"`
		FPR        []*float64 `json:"fpr"`
		TPR        []*float64 `json:"tpr"`
		Thresholds []*float64 `json:"thresholds"`
	} `json:"auc"`
	Multi []struct {
		Name    string     `json:"name"`
		N       int        `json:"n"`
		Classes int        `json:"classes"`
		Labels  []float32  `json:"labels"`
		Scores  []float32  `json:"scores"`
		AUC     []*float64 `json:"auc"`
		Mean    *float64   `json:"mean"`
	} `json:"multi"`
	Masks []struct {
		Name     string    `json:"name"`
		N        int       `json:"n"`
		Pred     []float32 `json:"pred"`
		Truth    []float32 `json:"truth"`
		Dice     float64   `json:"dice"`
		MeanDice float64   `json:"mean_dice"`
		IoU      float64   `json:"iou"`
		MeanIoU  float64   `json:"mean_iou"`
	} `json:"masks"`
	Trials []struct {
		Values []float64 `json:"values"`
		Mean   float64   `json:"mean"`
		Std    float64   `json:"std"`
	} `json:"trials"`
}

// tolerance is the largest difference allowed from scikit-learn and numpy.
const tolerance = 1e-9

func loadGolden(t *testing.T) golden {
	t.Helper()
	b, err := os.ReadFile("testdata/metrics.json")
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatalf("testdata/metrics.json: %v", err)
	}
	return g
}

// worst tracks the largest difference seen by a test.
type worst struct{ d float64 }

func (w *worst) check(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.IsNaN(want) {
		if !math.IsNaN(got) {
			t.Errorf("%s: %v, want NaN", what, got)
		}
		return
	}
	d := math.Abs(got - want)
	w.d = max(w.d, d)
	if !(d <= tolerance) {
		t.Errorf("%s: %.17g, want %.17g (|diff| %.3g > %g)", what, got, want, d, tolerance)
	}
}

func orNaN(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}

func TestAUCMatchesSklearn(t *testing.T) {
	g := loadGolden(t)
	var w worst
	ties := 0
	for _, tc := range g.AUC {
		t.Run(tc.Name, func(t *testing.T) {
			seen := map[float64]bool{}
			for _, s := range tc.Scores {
				if seen[s] {
					ties++
					break
				}
				seen[s] = true
			}
			got, err := AUC(tc.Labels, tc.Scores)
			if tc.AUC == nil {
				if !errors.Is(err, ErrUndefined) {
					t.Fatalf("err %v, want ErrUndefined (scikit-learn: %s)", err, tc.Error)
				}
				if !math.IsNaN(got) {
					t.Fatalf("undefined AUC returned %v, want NaN", got)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				w.check(t, "auc", got, *tc.AUC)
			}
			c, _ := ROC(tc.Labels, tc.Scores)
			if len(c.FPR) != len(tc.FPR) {
				t.Fatalf("%d curve points, scikit-learn %d", len(c.FPR), len(tc.FPR))
			}
			for i := range tc.FPR {
				w.check(t, "fpr", c.FPR[i], orNaN(tc.FPR[i]))
				w.check(t, "tpr", c.TPR[i], orNaN(tc.TPR[i]))
				w.check(t, "threshold", c.Thresholds[i], orNaN(tc.Thresholds[i]))
			}
		})
	}
	if ties < 20 {
		t.Fatalf("only %d cases have tied scores", ties)
	}
	t.Logf("scikit-learn %s: %d cases (%d with ties), max |diff| %.3g (tolerance %g)", g.Sklearn, len(g.AUC), ties, w.d, tolerance)
}

func TestPerClassAUCMatchesSklearn(t *testing.T) {
	g := loadGolden(t)
	var w worst
	for _, tc := range g.Multi {
		t.Run(tc.Name, func(t *testing.T) {
			var names []string
			for c := 0; c < tc.Classes; c++ {
				names = append(names, "finding"+string(rune('A'+c)))
			}
			rep, err := PerClassAUC(tc.Labels, tc.Scores, tc.N, tc.Classes, names)
			if err != nil {
				t.Fatal(err)
			}
			defined := 0
			for c, want := range tc.AUC {
				got := rep.Classes[c]
				if want == nil {
					if got.Defined || !math.IsNaN(got.AUC) {
						t.Errorf("class %d: defined %v auc %v, scikit-learn refuses it", c, got.Defined, got.AUC)
					}
					if !strings.Contains(got.Reason, names[c]) || !strings.Contains(got.Reason, "undefined") {
						t.Errorf("class %d: reason %q does not name the class and say undefined", c, got.Reason)
					}
					continue
				}
				defined++
				if !got.Defined || got.Reason != "" {
					t.Errorf("class %d: undefined (%s), scikit-learn gives %v", c, got.Reason, *want)
				}
				w.check(t, "class auc", got.AUC, *want)
			}
			if rep.Defined != defined || len(rep.Undefined()) != tc.Classes-defined {
				t.Errorf("defined %d / undefined %d, want %d / %d", rep.Defined, len(rep.Undefined()), defined, tc.Classes-defined)
			}
			w.check(t, "mean", rep.Mean, orNaN(tc.Mean))
		})
	}
	t.Logf("scikit-learn %s: max |diff| %.3g (tolerance %g)", g.Sklearn, w.d, tolerance)
}

func TestSegmentationMatchesNumpy(t *testing.T) {
	g := loadGolden(t)
	var w worst
	for _, tc := range g.Masks {
		t.Run(tc.Name, func(t *testing.T) {
			// Feed the set in two uneven batches: the scores must not depend on batching.
			var s Segmentation
			per := len(tc.Pred) / tc.N
			k := tc.N / 2
			if err := s.Add(tc.Pred[:k*per], tc.Truth[:k*per], k); err != nil {
				t.Fatal(err)
			}
			if err := s.Add(tc.Pred[k*per:], tc.Truth[k*per:], tc.N-k); err != nil {
				t.Fatal(err)
			}
			got := s.Scores()
			if got.Images != tc.N {
				t.Fatalf("%d images, want %d", got.Images, tc.N)
			}
			w.check(t, "dice", got.Dice, tc.Dice)
			w.check(t, "mean dice", got.MeanDice, tc.MeanDice)
			w.check(t, "iou", got.IoU, tc.IoU)
			w.check(t, "mean iou", got.MeanIoU, tc.MeanIoU)
		})
	}
	t.Logf("numpy %s: max |diff| %.3g (tolerance %g)", g.Numpy, w.d, tolerance)
}

func TestMeanStdMatchesNumpy(t *testing.T) {
	g := loadGolden(t)
	var w worst
	for _, tc := range g.Trials {
		m, s := MeanStd(tc.Values)
		w.check(t, "mean", m, tc.Mean)
		w.check(t, "std", s, tc.Std)
	}
	if m, s := MeanStd(nil); !math.IsNaN(m) || !math.IsNaN(s) {
		t.Errorf("MeanStd(nil) = %v, %v, want NaN", m, s)
	}
	t.Logf("max |diff| %.3g", w.d)
}

func TestMaskRules(t *testing.T) {
	for _, tc := range []struct {
		name        string
		pred, truth []float32
		dice, iou   float64
	}{
		{"both_empty", []float32{0, 0.5, 0.2}, []float32{0, 0, 0}, 1, 1},
		{"half_is_background", []float32{0.5, 0.51}, []float32{1, 1}, 2.0 / 3, 0.5},
		{"disjoint", []float32{1, 0}, []float32{0, 1}, 0, 0},
		{"empty_truth", []float32{1, 0}, []float32{0, 0}, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := Count(tc.pred, tc.truth)
			if err != nil {
				t.Fatal(err)
			}
			if o.Dice() != tc.dice || o.IoU() != tc.iou {
				t.Fatalf("dice %v iou %v, want %v %v", o.Dice(), o.IoU(), tc.dice, tc.iou)
			}
		})
	}
	var s Segmentation
	if sc := s.Scores(); !math.IsNaN(sc.Dice) || !math.IsNaN(sc.MeanDice) {
		t.Fatalf("empty accumulator scores %+v, want NaN", sc)
	}
	if err := s.Add(make([]float32, 10), make([]float32, 10), 3); err == nil {
		t.Fatal("10 values accepted as 3 masks")
	}
	if _, err := Count(make([]float32, 2), make([]float32, 3)); err == nil {
		t.Fatal("mismatched lengths accepted")
	}
}

func TestROCRejectsBadInput(t *testing.T) {
	for _, tc := range []struct {
		name           string
		labels, scores []float64
		want           string
	}{
		{"length", []float64{0, 1}, []float64{0.1}, "2 labels but 1 scores"},
		{"empty", nil, nil, "no samples"},
		{"label", []float64{0, 2}, []float64{0.1, 0.2}, "label 1 is 2"},
		{"nan", []float64{0, 1}, []float64{math.NaN(), 0.2}, "score 0 is NaN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := AUC(tc.labels, tc.scores)
			if err == nil || errors.Is(err, ErrUndefined) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one containing %q", err, tc.want)
			}
		})
	}
	_, err := PerClassAUC([]float32{0, 1, 1, 0}, []float32{0.1, 0.2, 0.3, float32(math.NaN())}, 2, 2, []string{"a", "b"})
	if err == nil || !strings.Contains(err.Error(), "class 1 (b)") {
		t.Fatalf("err %v, want one naming class 1 (b)", err)
	}
}
