// Package checkpoint reads and writes dira's training checkpoints (.ckpt):
// a zip archive (stored, not compressed) holding meta.json and one NumPy .npy
// file per tensor under tensors/, in state_dict order, so NumPy reads every
// tensor of it. Tensor names carry a group prefix (model/, disc/, sgd/, ...)
// saying what they belong to.
//
// Writes are atomic (a crash leaves the previous file intact) and hash the
// file while writing it, for the run manifest. Reads name the file in every
// error.
//
// It does not know how a stage turns its state into tensors (package stages
// does) nor libtorch tensors (entries are statedict tensors).
package checkpoint
