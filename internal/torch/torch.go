package torch

// #cgo CXXFLAGS: -std=c++17
// #cgo LDFLAGS: -ltorch_cpu -lc10 -lstdc++
// #include <stdlib.h>
// #include <malloc.h>
// #include "glue.h"
import "C"

import (
	"errors"
	"fmt"
	"strings"
	"unsafe"

	"github.com/sugarme/gotch/ts"

	// Before gotch's init, which needs a cache folder (see the package).
	_ "dira/internal/gotchcache"
)

// SetThreads sets libtorch's intra-op thread count for the whole process.
// libtorch on these machines starts with one thread (toolchain.md), so every
// entry point calls this with the configured value.
func SetThreads(n int) error {
	if n < 1 {
		return fmt.Errorf("torch: thread count must be >= 1, got %d", n)
	}
	C.dira_set_num_threads(C.int(n))
	return nil
}

// Threads reports libtorch's current intra-op thread count.
func Threads() int { return int(C.dira_get_num_threads()) }

// Seed seeds libtorch's default CPU generator (at::manual_seed), which drives
// randn/rand and dropout-like ops inside libtorch.
func Seed(seed uint64) { C.dira_manual_seed(C.uint64_t(seed)) }

// Version is the version the loaded libtorch reports in its build settings
// (at::show_config). Debian's libtorch 1.13.1 package reports "1.13.0".
func Version() string {
	c := C.dira_torch_config()
	defer C.free(unsafe.Pointer(c))
	cfg := C.GoString(c)
	_, rest, ok := strings.Cut(cfg, "TORCH_VERSION=")
	if !ok {
		return "unknown"
	}
	v, _, _ := strings.Cut(rest, ",")
	return strings.TrimSpace(v)
}

// LeakyReLU is torch.nn.functional.leaky_relu(x, slope) with autograd.
// gotch v0.7.0's generated LeakyRelu has no slope argument (it is fixed at
// PyTorch's default 0.01); the DiRA discriminator needs 0.2.
func LeakyReLU(x *ts.Tensor, slope float64) (*ts.Tensor, error) {
	var cerr *C.char
	out := C.dira_leaky_relu(x.Ctensor(), C.double(slope), &cerr)
	if out == nil {
		return nil, fmt.Errorf("leaky_relu: %w", cError(cerr))
	}
	return ts.FromCtensor(out), nil
}

// SetGradEnabled switches autograd recording on or off for the calling OS
// thread and returns the previous setting. gotch v0.7.0's GradSetEnabled
// misreads the C int it gets back and always reports false, so a NoGrad block
// built on it never turns recording back on.
func SetGradEnabled(on bool) (prev bool) {
	c := C.int(0)
	if on {
		c = 1
	}
	return C.dira_grad_set_enabled(c) != 0
}

// NoGrad runs fn with autograd recording off, restoring the previous mode
// afterwards (also when fn panics). Grad mode is per OS thread in libtorch,
// so the caller must run on a pinned thread (Do); NoGrad checks it.
func NoGrad(fn func()) {
	assertPinned()
	prev := SetGradEnabled(false)
	defer SetGradEnabled(prev)
	fn()
}

// InPlace runs op, an in-place gotch method on t (t.Relu_, or a closure
// calling t.Add_(u)), and frees the C handle it replaced. gotch v0.7.0's
// in-place methods allocate a new handle for the result and overwrite t's,
// leaking the old one; for an activation that leak keeps the tensor and its
// autograd graph alive for ever (measured: 72 MB per ResNet-18 U-Net step).
func InPlace(t *ts.Tensor, op func() error) error {
	assertPinned()
	old := ts.FromCtensor(t.Ctensor())
	if err := op(); err != nil {
		return libtorchError(err)
	}
	if old.Ctensor() != t.Ctensor() {
		Drop(old)
	}
	return nil
}

// cHandles copies tensor handles into C memory (cgo may not keep Go pointers
// to Go memory inside memory passed to C). The caller frees the result.
func cHandles(ts []*ts.Tensor) **C.void {
	size := C.size_t(len(ts)) * C.size_t(unsafe.Sizeof(uintptr(0)))
	arr := (*[1 << 28]unsafe.Pointer)(C.malloc(max(size, 1)))[:len(ts):len(ts)]
	for i, t := range ts {
		if t == nil {
			arr[i] = nil
		} else {
			arr[i] = t.Ctensor()
		}
	}
	return (**C.void)(unsafe.Pointer(&arr[0]))
}

// cError takes a malloc'd message from the glue and returns it as a libtorch
// *Error (its first line).
func cError(cerr *C.char) error {
	msg := C.GoString(cerr)
	C.free(unsafe.Pointer(cerr))
	return libtorchError(errors.New(msg))
}

// SGDStep runs torch.optim.SGD's step (PyTorch 1.13 single-tensor algorithm,
// dampening 0, no Nesterov) over params in one call. bufs holds the momentum
// buffers (nil entries before a parameter's first step); entries it creates
// are new tensors owned by the caller.
func SGDStep(params, bufs []*ts.Tensor, lr, momentum, weightDecay float64) error {
	if len(params) != len(bufs) {
		return fmt.Errorf("torch: sgd: %d parameters, %d buffers", len(params), len(bufs))
	}
	if len(params) == 0 {
		return nil
	}
	ps, bs := cHandles(params), cHandles(bufs)
	defer C.free(unsafe.Pointer(ps))
	defer C.free(unsafe.Pointer(bs))
	var cerr *C.char
	if C.dira_sgd_step((*unsafe.Pointer)(unsafe.Pointer(ps)), (*unsafe.Pointer)(unsafe.Pointer(bs)), C.int(len(params)), C.double(lr), C.double(momentum), C.double(weightDecay), &cerr) != 0 {
		return fmt.Errorf("sgd step: %w", cError(cerr))
	}
	out := (*[1 << 28]unsafe.Pointer)(unsafe.Pointer(bs))[:len(bufs):len(bufs)]
	for i := range bufs {
		if bufs[i] == nil && out[i] != nil {
			bufs[i] = ts.FromCtensor(out[i])
		}
	}
	return nil
}

// AdamStep runs optim.Adam's update over params in one call (see glue.cpp):
// m and v are the moment buffers, one per parameter; parameters without a
// gradient are skipped. The arithmetic is the Go code's it replaced, op for
// op.
func AdamStep(params, m, v []*ts.Tensor, beta1, beta2, invSqrtBC2, eps, step float64) error {
	assertPinned()
	if len(params) != len(m) || len(params) != len(v) {
		return fmt.Errorf("torch: adam: %d parameters, %d and %d moments", len(params), len(m), len(v))
	}
	if len(params) == 0 {
		return nil
	}
	ps, ms, vs := cHandles(params), cHandles(m), cHandles(v)
	defer C.free(unsafe.Pointer(ps))
	defer C.free(unsafe.Pointer(ms))
	defer C.free(unsafe.Pointer(vs))
	var cerr *C.char
	if C.dira_adam_step((*unsafe.Pointer)(unsafe.Pointer(ps)), (*unsafe.Pointer)(unsafe.Pointer(ms)), (*unsafe.Pointer)(unsafe.Pointer(vs)),
		C.int(len(params)), C.double(beta1), C.double(beta2), C.double(invSqrtBC2), C.double(eps), C.double(step), &cerr) != 0 {
		return fmt.Errorf("adam step: %w", cError(cerr))
	}
	return nil
}

// ZeroGrad fills the defined gradients of params with zeros in one call, as
// PyTorch 1.13's zero_grad() (gotch's Tensor.ZeroGrad leaks a handle per
// call).
func ZeroGrad(params []*ts.Tensor) error {
	assertPinned()
	if len(params) == 0 {
		return nil
	}
	ps := cHandles(params)
	defer C.free(unsafe.Pointer(ps))
	var cerr *C.char
	if C.dira_zero_grad((*unsafe.Pointer)(unsafe.Pointer(ps)), C.int(len(params)), &cerr) != 0 {
		return fmt.Errorf("zero grad: %w", cError(cerr))
	}
	return nil
}

// MomentumUpdate sets k = k*m + q*(1-m) for each pair without autograd.
func MomentumUpdate(q, k []*ts.Tensor, m float64) error {
	if len(q) != len(k) {
		return fmt.Errorf("torch: momentum update: %d query, %d key tensors", len(q), len(k))
	}
	if len(q) == 0 {
		return nil
	}
	qs, ks := cHandles(q), cHandles(k)
	defer C.free(unsafe.Pointer(qs))
	defer C.free(unsafe.Pointer(ks))
	var cerr *C.char
	if C.dira_momentum_update((*unsafe.Pointer)(unsafe.Pointer(qs)), (*unsafe.Pointer)(unsafe.Pointer(ks)), C.int(len(q)), C.double(m), &cerr) != 0 {
		return fmt.Errorf("momentum update: %w", cError(cerr))
	}
	return nil
}

// TuneAllocator keeps glibc's malloc from returning large tensor buffers to
// the kernel after every step: a training step frees and re-allocates
// hundreds of MB, and with glibc's defaults each re-allocation is fresh
// mmap'd memory that page-faults in again. Raising the mmap threshold to
// 256 MiB and the trim threshold to 1 GiB cut page faults by 2.7x and the
// ResNet-50 DiRA step time by 12% here (docs/benchmarks.md); peak memory
// moved by under 10%. Call it once, before training.
func TuneAllocator() {
	C.mallopt(C.M_MMAP_THRESHOLD, 256<<20)
	C.mallopt(C.M_TRIM_THRESHOLD, 1<<30)
}
