// Package optim holds the optimisers, learning-rate schedules and stopping
// rule of training, written so their state can be checkpointed and resumed
// exactly:
//
//   - SGD and Adam: torch.optim's, as PyTorch 1.13 computes them, on libtorch
//     tensors (gotch exposes libtorch's optimisers but not their state).
//   - LR: the pre-training schedules of the official DiRA code (cosine per
//     epoch, step decay).
//   - Plateau: torch.optim.lr_scheduler.ReduceLROnPlateau of PyTorch 1.13,
//     which the downstream benchmark code (BenchmarkTransferLearning, Version1,
//     classification_engine in engine.py) steps once per epoch with the
//     validation loss (factor 0.5, patience = --patience // 2, mode min,
//     threshold 1e-4 relative, cooldown 0, min_lr 0, eps 1e-8).
//   - EarlyStop: the patience counter both downstream engines keep by hand: an
//     epoch improves when its validation loss is strictly below the best so
//     far, and training stops when more than patience epochs in a row did not.
//   - Cosine: torch.optim.lr_scheduler.CosineAnnealingLR of PyTorch 1.13, in
//     its recursive (chainable) form, per epoch.
//   - AnnealCosine and SegmentationLR: the closed-form cosine schedule of
//     utils.cosine_anneal_schedule that segmentation_engine actually uses.
//   - GradScaler: torch.cuda.amp.GradScaler's dynamic loss scaling for
//     float16 training (skip steps with Inf/NaN gradients, back off, grow).
//
// The schedules are plain float64 arithmetic on the learning rate. It does not
// know which parameters belong to which network, nor checkpoints.
package optim
