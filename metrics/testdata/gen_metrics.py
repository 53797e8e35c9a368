#!/usr/bin/python3
"""Writes metrics.json, the golden of metrics/*_test.go, with Debian's
python3-sklearn 1.2 and python3-numpy:  /usr/bin/python3 gen_metrics.py

  auc:    binary cases: labels, scores, and scikit-learn's roc_auc_score
          (or the error it raises) and roc_curve(drop_intermediate=True).
          Scores are often rounded to one decimal so that ties are common;
          there are cases with a single positive, a single negative, all
          negative and all positive.
  multi:  multi-label cases [n, c] as utils.metric_AUROC sees them, with the
          AUC of each class (null where scikit-learn refuses) and the mean
          over the classes that have one.
  masks:  predicted probabilities and true masks [n, h, w]; Dice as
          utils.dice (threshold > 0.5, empty score 1) over the whole set and
          per image as utils.mean_dice_coef; IoU the same way.
  trials: numpy mean and std (ddof 0) of a few per-trial values.

Tolerance in the Go test: 1e-9 for every number.
"""
import json
import os
import sys
import warnings

import numpy as np
import sklearn
from sklearn.metrics import roc_auc_score, roc_curve

rng = np.random.RandomState(20240229)


def auc_case(name, y, s):
    case = {"name": name, "labels": [int(v) for v in y], "scores": [float(v) for v in s]}
    try:
        case["auc"] = float(roc_auc_score(y, s))
    except ValueError as e:
        case["auc"] = None
        case["error"] = str(e)
    with warnings.catch_warnings():  # one-class cases: "No positive samples", NaN rates
        warnings.simplefilter("ignore")
        fpr, tpr, thr = roc_curve(y, s, drop_intermediate=True)
    nan = lambda a: [None if np.isnan(v) else float(v) for v in a]
    case["fpr"], case["tpr"], case["thresholds"] = nan(fpr), nan(tpr), nan(thr)
    return case


def scores(n, decimals):
    s = rng.rand(n)
    return np.round(s, decimals) if decimals is not None else s


auc = []
for i in range(40):
    n = int(rng.choice([5, 10, 37, 100, 257, 1000]))
    dec = [1, 1, 2, None][i % 4]
    y = (rng.rand(n) < rng.uniform(0.1, 0.9)).astype(int)
    if y.sum() in (0, n):
        y[0] = 1 - y[0]
    s = scores(n, dec)
    # Make the scores informative for part of the cases.
    if i % 3 == 0:
        s = np.round(np.clip(s * 0.6 + 0.4 * y, 0, 1), 1 if dec is not None else 12)
    auc.append(auc_case("random_%02d_n%d" % (i, n), y, s))
y = np.zeros(50, int); y[17] = 1
auc.append(auc_case("one_positive", y, scores(50, 1)))
y = np.ones(50, int); y[3] = 0
auc.append(auc_case("one_negative", y, scores(50, 1)))
auc.append(auc_case("all_negative", np.zeros(20, int), scores(20, 1)))
auc.append(auc_case("all_positive", np.ones(20, int), scores(20, 1)))
auc.append(auc_case("all_tied", np.array([0, 1, 0, 1, 1]), np.full(5, 0.3)))
auc.append(auc_case("perfect", np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9])))
auc.append(auc_case("inverted", np.array([0, 0, 1, 1]), np.array([0.9, 0.8, 0.2, 0.1])))
auc.append(auc_case("two_samples", np.array([1, 0]), np.array([0.5, 0.5])))

multi = []
for i, (n, c) in enumerate([(64, 14), (200, 5), (31, 3), (500, 1)]):
    y = (rng.rand(n, c) < rng.uniform(0.05, 0.5, size=c)).astype(int)
    if c > 2:
        y[:, 1] = 0          # a class without positives
        y[:, 2] = 0
        y[rng.randint(n), 2] = 1  # a class with exactly one positive
    s = np.round(np.clip(rng.rand(n, c) * 0.7 + 0.3 * y, 0, 1), 1 + i % 2).astype(np.float32)
    per = []
    for k in range(c):
        try:
            per.append(float(roc_auc_score(y[:, k], s[:, k])))
        except ValueError:
            per.append(None)
    defined = [v for v in per if v is not None]
    multi.append({"name": "multi_%d_%dx%d" % (i, n, c), "n": n, "classes": c,
                  "labels": y.astype(float).ravel().tolist(),
                  "scores": [float(v) for v in s.ravel()],
                  "auc": per, "mean": float(np.mean(defined)) if defined else None})


def dice(im1, im2, empty_score=1.0):
    im1 = np.asarray(im1 > 0.5).astype(bool)
    im2 = np.asarray(im2 > 0.5).astype(bool)
    im_sum = im1.sum() + im2.sum()
    if im_sum == 0:
        return empty_score
    return 2. * np.logical_and(im1, im2).sum() / im_sum


def iou(im1, im2):
    im1, im2 = im1 > 0.5, im2 > 0.5
    u = np.logical_or(im1, im2).sum()
    if u == 0:
        return 1.0
    return np.logical_and(im1, im2).sum() / u


masks = []
for i, (n, h, w) in enumerate([(6, 16, 16), (3, 32, 24), (5, 8, 8)]):
    y = (rng.rand(n, h, w) < 0.3).astype(np.float32)
    p = np.clip(y * 0.5 + rng.rand(n, h, w) * 0.6, 0, 1).astype(np.float32)
    p[0] = 0.2; y[0] = 0            # both empty: Dice 1
    p[1, :4] = 0.5                  # exactly 0.5 is background
    if n > 2:
        y[2] = 0                    # empty truth, some predicted
    mean_d = sum(dice(y[k], p[k]) for k in range(n)) / n
    mean_i = sum(iou(p[k], y[k]) for k in range(n)) / n
    masks.append({"name": "masks_%d" % i, "n": n, "pred": [float(v) for v in p.ravel()],
                  "truth": [float(v) for v in y.ravel()],
                  "dice": float(dice(p, y)), "mean_dice": float(mean_d),
                  "iou": float(iou(p, y)), "mean_iou": float(mean_i)})

trials = []
for vals in ([0.81, 0.83, 0.79], [0.5], [0.7123, 0.7311, 0.7208, 0.7159, 0.7402, 0.7287, 0.7351, 0.7096, 0.7188, 0.7244]):
    a = np.array(vals)
    trials.append({"values": vals, "mean": float(np.mean(a)), "std": float(np.std(a))})

out = {"sklearn": sklearn.__version__, "numpy": np.__version__,
       "auc": auc, "multi": multi, "masks": masks, "trials": trials}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "metrics.json")
with open(path, "w") as f:
    json.dump(out, f, separators=(",", ":"))
print("wrote", path, file=sys.stderr)
