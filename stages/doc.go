// Package stages implements the steps of a run: warmup (DiRA "dir": MoCo-v2
// plus U-Net restoration), adversarial (DiRA "dira": plus the patch
// discriminator), moco (the "di" baseline) and export. It owns the training
// loop, the losses, the optimisers and schedules, and checkpoints.
//
// It does not parse YAML (package pipeline does) and does not define networks
// (package model does).
package stages
