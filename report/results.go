package report

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"slices"

	"dira/metrics"
)

// Results is <stage>/results.json, the file a fine-tuning stage writes for
// the report: every trial's test score and, optionally, per-epoch history
// and ROC points. One file holds all initialisations and label fractions
// of the stage. Example (classification, two classes, one trial):
//
//	{
//	  "task": "classification",
//	  "dataset": "ChestX-ray14",
//	  "metric": "auc",
//	  "classes": ["Atelectasis", "Cardiomegaly"],
//	  "trials": [
//	    {"init": "dira", "label_fraction": 1.0, "run": 0, "seed": 1,
//	     "score": 0.812, "per_class": [0.79, 0.834], "best_epoch": 7,
//	     "history": [{"epoch": 0, "train_loss": 0.31, "val_loss": 0.29, "val_score": 0.74}]}
//	  ],
//	  "summary": [
//	    {"init": "dira", "label_fraction": 1.0, "n": 1, "mean": 0.812, "std": 0,
//	     "per_class_mean": [0.79, 0.834], "per_class_std": [0, 0]}
//	  ],
//	  "roc": [
//	    {"init": "dira", "label_fraction": 1.0, "run": 0, "class": "Atelectasis",
//	     "fpr": [0, 0.1, 1], "tpr": [0, 0.6, 1]}
//	  ]
//	}
//
// JSON has no NaN: a value that does not exist (the std of one run, the
// score of a failed trial) is left out or null. Unknown fields are ignored.
type Results struct {
	Task    string   `json:"task"`              // "classification" or "segmentation"
	Dataset string   `json:"dataset,omitempty"` // shown in titles
	Metric  string   `json:"metric"`            // the score's name: "auc" (mean over classes) or "dice"
	Classes []string `json:"classes,omitempty"` // names of the per_class entries, in order
	Trials  []Trial  `json:"trials"`
	// Summary is mean and std per (init, label_fraction). When absent the
	// report computes it from Trials (Summarize).
	Summary []Summary  `json:"summary,omitempty"`
	ROC     []ROCPoint `json:"roc,omitempty"` // optional: drawn when <stage>/roc.png is absent
}

// Trial is one fine-tuning run: one initialisation, one label fraction, one
// repetition.
type Trial struct {
	Init          string       `json:"init"`           // "dira", "random", "imagenet", or a checkpoint name
	LabelFraction float64      `json:"label_fraction"` // share of the training labels used, in (0,1]
	Run           int          `json:"run"`            // repetition index, from 0
	Seed          uint64       `json:"seed"`
	Score         *float64     `json:"score"`               // test metric; null for a failed trial
	PerClass      []*float64   `json:"per_class,omitempty"` // test metric per class, in Classes order; null where undefined
	BestEpoch     int          `json:"best_epoch"`          // epoch (from 0) of the checkpoint tested
	Error         string       `json:"error,omitempty"`     // why the trial failed
	History       []EpochScore `json:"history,omitempty"`
}

// EpochScore is one epoch of a trial's training.
type EpochScore struct {
	Epoch     int      `json:"epoch"` // from 0
	TrainLoss *float64 `json:"train_loss"`
	ValLoss   *float64 `json:"val_loss"`
	ValScore  *float64 `json:"val_score"` // validation metric
}

// Summary is the mean and standard deviation of the scores of the trials
// of one initialisation at one label fraction.
type Summary struct {
	Init          string     `json:"init"`
	LabelFraction float64    `json:"label_fraction"`
	N             int        `json:"n"` // trials with a score
	Mean          *float64   `json:"mean"`
	Std           *float64   `json:"std"`
	PerClassMean  []*float64 `json:"per_class_mean,omitempty"` // null where no trial defines the class
	PerClassStd   []*float64 `json:"per_class_std,omitempty"`
}

// ROCPoint is one class's ROC curve from one trial.
type ROCPoint struct {
	Init          string    `json:"init"`
	LabelFraction float64   `json:"label_fraction"`
	Run           int       `json:"run"`
	Class         string    `json:"class"`
	FPR           []float64 `json:"fpr"`
	TPR           []float64 `json:"tpr"`
}

// ParseResults decodes results.json. name is used in errors.
func ParseResults(name string, b []byte) (Results, error) {
	var r Results
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("report: %s: %w", name, err)
	}
	if len(r.Summary) == 0 {
		r.Summary = Summarize(r.Trials)
	}
	slices.SortStableFunc(r.Summary, func(a, b Summary) int {
		return cmp.Or(cmp.Compare(b.LabelFraction, a.LabelFraction), cmp.Compare(a.Init, b.Init))
	})
	return r, nil
}

// Summarize groups trials by (init, label fraction) and computes each
// group's mean score and population standard deviation (numpy's np.std,
// as the official engine reports the trials), and the same per class.
// Trials without a score, and undefined per-class values, are left out of the
// numbers.
func Summarize(trials []Trial) []Summary {
	type key struct {
		init string
		frac float64
	}
	var order []key
	groups := map[key][]Trial{}
	for _, t := range trials {
		k := key{t.Init, t.LabelFraction}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], t)
	}
	var out []Summary
	for _, k := range order {
		s := Summary{Init: k.init, LabelFraction: k.frac}
		var scores []float64
		var perClass [][]float64
		for _, t := range groups[k] {
			if t.Score == nil || t.Error != "" {
				continue
			}
			scores = append(scores, *t.Score)
			for c, v := range t.PerClass {
				for c >= len(perClass) {
					perClass = append(perClass, nil)
				}
				if v != nil {
					perClass[c] = append(perClass[c], *v)
				}
			}
		}
		s.N = len(scores)
		s.Mean, s.Std = meanStd(scores)
		for _, vs := range perClass {
			m, sd := meanStd(vs)
			s.PerClassMean = append(s.PerClassMean, m)
			s.PerClassStd = append(s.PerClassStd, sd)
		}
		out = append(out, s)
	}
	return out
}

// meanStd is the mean and the population standard deviation of vs (nil
// without values).
func meanStd(vs []float64) (mean, std *float64) {
	if len(vs) == 0 {
		return nil, nil
	}
	m, sd := metrics.MeanStd(vs)
	return &m, &sd
}

func deref(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}
