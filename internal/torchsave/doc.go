// Package torchsave reads the files torch.save writes, in both layouts
// torch.load reads: the zip archive of PyTorch >= 1.6 (archive/data.pkl and
// one record per storage under archive/data/, stored or deflated) and the
// legacy stream (magic, protocol, system info, the object, the storage keys,
// then each storage's bytes).
//
// Its pickle machine executes nothing: the few callables a saved tensor
// needs (torch._utils._rebuild_tensor_v2, _rebuild_parameter,
// collections.OrderedDict, the torch.*Storage types) are interpreted, and
// every other class is recorded by name (Global, Object) and never called.
//
// Memory is bounded by what the file holds, not by what it declares: the
// pickle is read only up to Limits.MaxPickleBytes, every length inside it
// is checked against the bytes that follow, every storage against its
// record (or the rest of the legacy file) and against Limits.MaxTensorBytes,
// every tensor view against its storage, and storages are read only when a
// tensor's values are asked for (Float32s, Int64s), within
// Limits.MaxTotalBytes. Errors say "truncated" when the file ends early and
// name the tensor by its path from the top object.
//
// It does not know state_dict layouts or dira's networks (package transfer
// does), and it does not write PyTorch files (package export does).
package torchsave
