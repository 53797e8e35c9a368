//go:build nccl

package dist

// With the nccl build tag, c10d.cpp compiles its ProcessGroupNCCL path. It
// needs a libtorch built with NCCL (PyTorch's CUDA builds define the same
// macro for their own code); Debian's CPU-only libtorch has none.

// #cgo CXXFLAGS: -DUSE_C10D_NCCL
// #cgo LDFLAGS: -ltorch_cuda -lc10_cuda
import "C"
