// Package optim holds the optimisers and learning-rate schedules of training,
// written so that their state can be checkpointed and resumed exactly:
// torch.optim.SGD and Adam as PyTorch 1.13 computes them (gotch exposes
// libtorch's optimisers but not their state), and the schedules of the
// official code (cosine per epoch, step decay).
//
// It does not know which parameters belong to which network, nor checkpoints.
package optim
