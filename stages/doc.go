// Package stages implements the kinds of stage a run is made of, one file
// each, registered by kind in registry.go (Build):
//
//	pretrain.go   warmup (DiRA "dir": MoCo-v2 + U-Net restoration),
//	              adversarial (DiRA "dira": + the patch discriminator) and
//	              moco (the "di" baseline): the training loop, top to bottom
//	batches.go    its data, one training step, the validation pass
//	objective.go  the DiRA objective, Eq. (4), and the update order
//	state.go      what a checkpoint holds, saved and resumed
//	metrics.go    metrics.jsonl, loss plots, sample grids, the progress line
//	export.go     export: ONNX and .pth artifacts checked in ONNX Runtime
//	import.go     official PyTorch checkpoints as a dira run (dira import)
//
// Every stage runs its tensor work inside torch.Do: a libtorch error ends the
// stage with an error naming the epoch and step, never the process.
//
// It does not parse YAML (package pipeline does), define networks (package
// model) or optimisers (package optim), or know file formats (packages
// checkpoint, export, transfer).
package stages
