// Package data owns DiRA's input pipeline up to the batch tensors: list files
// in the ChestX-ray14 format, folder and synthetic image sources, PNG/JPEG
// decoding, the two augmented views and the restoration distortion of the
// official code (docs/dira-spec.md, sections 3.1, 3.2 and 5.1), a
// parallel prefetching Loader, and a PNG preview of what the network sees.
//
// For downstream fine-tuning it also owns what the official benchmark code
// (BenchmarkTransferLearning Version1, dataloader.py) reads: labelled lists
// (ChestX-ray14's space-separated 14 labels, Shenzhen's comma-separated one),
// class folders, images paired with one or more mask folders, the official
// label-fraction subset (random.Random(99).shuffle, reproduced with CPython's
// Mersenne Twister), the classification transforms (train, valid, ten-crop
// test, equal to torchvision's), the segmentation resize and augmentation
// (albumentations 0.4.3's pipeline, masks moved with the images), labelled
// synthetic radiographs with findings and lung masks, and a LabeledLoader on
// the same engine as Loader.
//
// It is pure Go and knows nothing of tensors' gradients or devices: a Batch
// holds flat float32 slices ([N,3,H,W] views, [N,1,H,W] target) that the
// training stages copy into tensors.
//
// # Fidelity
//
// The official code augments PIL images with torchvision 0.14. This package
// works like PIL, on 8-bit images, rounding where PIL rounds: the bilinear
// resize of RandomResizedCrop (PIL's antialiased separable filter in 22-bit
// fixed point), the ImageEnhance blends behind ColorJitter, PIL's 8-bit HSV
// round trip for hue, and PIL's GaussianBlur (three extended-box passes per
// axis). testdata/golden holds torchvision/PIL outputs for fixed parameters
// (made by testdata/gen_golden.py); the test requires agreement within 1/255,
// and currently all cases agree exactly. Random draws come from math/rand/v2
// PCG streams, so they follow the same distributions as torch's but not the
// same sequence.
//
// Two known bugs of the official code are reproduced by default and can be
// switched off: the restoration target is not flipped with view 1
// (augment.flip_target), and the patch-swap overlap test always passes
// (augment.swap_reject_overlap).
//
// # Determinism
//
// Every sample draws from its own stream, seeded by (seed, epoch, source index)
// (SampleRNG), and an epoch's order is a permutation drawn from (seed, epoch)
// (Order). Workers may finish in any order; the Loader reassembles samples in
// epoch order, so batches are identical for a given seed whatever the number of
// workers.
//
// # Not here
//
// Tensors and devices belong to the training stages; pre-training batches are
// [0,1] values without normalisation (as DiRA feeds them), fine-tuning batches
// are normalised as the benchmark's configuration says. Metrics belong to
// package metrics, schedules to optim. YAML parsing belongs to pipeline and
// cmd/dira, which fill Config and LabeledConfig.
package data
