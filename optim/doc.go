// Package optim owns the learning-rate schedules and the stopping rule of
// downstream fine-tuning, as the DiRA benchmark code (BenchmarkTransferLearning,
// Version1) uses them:
//
//   - Plateau: torch.optim.lr_scheduler.ReduceLROnPlateau of PyTorch 1.13,
//     which classification_engine (engine.py) steps once per epoch with the
//     validation loss (factor 0.5, patience = --patience // 2, mode min,
//     threshold 1e-4 relative, cooldown 0, min_lr 0, eps 1e-8).
//   - EarlyStop: the patience counter both engines keep by hand: an epoch
//     improves when its validation loss is strictly below the best so far, and
//     training stops when more than patience epochs in a row did not improve.
//   - Cosine: torch.optim.lr_scheduler.CosineAnnealingLR of PyTorch 1.13, in
//     its recursive (chainable) form, per epoch.
//   - AnnealCosine and SegmentationLR: the closed-form cosine schedule of
//     utils.cosine_anneal_schedule that segmentation_engine actually uses (it
//     does not use CosineAnnealingLR).
//
// Everything here is plain float64 arithmetic on the learning rate; nothing
// touches tensors. The optimisers themselves (SGD, Adam) live in stages/ for
// now and are not part of this package.
package optim
