// Package metrics owns the scores that downstream evaluation reports, computed
// as the DiRA benchmark code (BenchmarkTransferLearning, Version1) computes
// them:
//
//   - ROC AUC per class, equal to scikit-learn's roc_auc_score (utils.py
//     metric_AUROC calls it once per class), and the ROC curve points of
//     roc_curve with drop_intermediate=True, for plots. A class whose test
//     labels hold only one value has no AUC; scikit-learn raises there and the
//     official script stops, while this package reports the class as
//     undefined with a reason and averages over the defined classes.
//   - Dice and IoU of binary masks thresholded at 0.5, over the whole test set
//     (utils.dice on all pixels) and as a mean over images (utils.mean_dice_coef),
//     with the official empty-mask rule: two empty masks score 1.
//   - Mean and population standard deviation over trials (numpy's mean and
//     std with ddof=0, as classification_engine reports them).
//
// It is pure Go on float slices; it knows nothing of tensors, models or files.
package metrics
