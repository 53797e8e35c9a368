// Package statedict is dira's one idea of a PyTorch state_dict: an ordered
// list of named tensors held in Go memory (float32 or int64 values in C
// order), and the one strict loader that puts such tensors into a network.
//
// Every reader and writer of weights speaks it: training checkpoints
// (package checkpoint), PyTorch files read (package transfer) and written
// (package export), and the networks' parameters (model.Params). Loading is
// strict, unlike PyTorch's load_state_dict(strict=False): every assignment
// must find its target with the same shape, no target may be given twice,
// and every required target must be given; nothing is copied until all of
// that holds, and the error lists every problem.
//
// It holds no libtorch tensors and does not know the networks' key layouts
// (package transfer has the DiRA README's renaming rules).
package statedict
