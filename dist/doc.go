// Package dist is dira's multi-process layer: PyTorch's own c10d engine
// (TCPStore, ProcessGroupGloo, the DDP Reducer) reached through a small C++
// shim, c10d.cpp, which is the only file in the project that includes c10d
// headers. It owns the process group and its collectives on gotch tensors
// (all-reduce, coalesced averaging, all-gather, broadcast, reduce, barrier),
// DDP-style gradient averaging overlapped with backward (GradSync), and
// reading a launcher's environment (torchrun, Slurm, plain RANK/WORLD_SIZE).
//
// It does not own training semantics (which ranks sample what, shuffle-BN,
// the MoCo queue): stages uses these primitives for that. model and data must
// not import it; a network never knows how many processes train it.
//
// Facts about c10d as Debian's libtorch 1.13.1 ships it, which shaped the code:
//
//   - c10d with Gloo is inside libtorch_cpu; Gloo's own headers come from
//     Debian's libgloo-dev. The shim compiles with -DUSE_C10D_GLOO and needs
//     no -lgloo.
//   - Gloo's all-reduce of a list of tensors also reduces across the list, so
//     several tensors are flattened into one buffer instead; it refuses
//     ReduceOp::AVG (averages divide the sum by the world size) and
//     _allgather_base (all-gather writes into per-rank views of the output).
//   - A timed-out Work::wait throws but leaves the operation running. Every
//     collective therefore also gives Gloo the timeout, which fails the
//     transfer itself; the wait allows a grace on top so that Gloo's message
//     (which names a lost peer's address) is the one reported.
//   - reducer.hpp includes torch/csrc/distributed/autograd/context/context.h,
//     which Debian does not ship; include/ holds a stand-in declaring the two
//     names the Reducer uses. The Reducer neither broadcasts the initial
//     parameters nor the buffers: Broadcast does both.
//   - The build has no NCCL and no CUDA. The NCCL code path compiles only with
//     the build tag nccl (which defines USE_C10D_NCCL) against a libtorch that
//     has ProcessGroupNCCL; otherwise Available reports nccl as missing and New
//     refuses the backend.
//
// The store layout is torch.distributed.init_process_group's (prefixes
// "default_pg" and "0", its store barrier, torchrun's agent-store prefix), so
// Python processes join the same group as Go ones.
package dist
