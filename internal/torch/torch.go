package torch

// #cgo CXXFLAGS: -std=c++17
// #cgo LDFLAGS: -ltorch_cpu -lc10 -lstdc++
// #include <stdlib.h>
// #include "glue.h"
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"unsafe"

	"github.com/sugarme/gotch/ts"
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
		msg := C.GoString(cerr)
		C.free(unsafe.Pointer(cerr))
		return nil, errors.New("torch: leaky_relu: " + msg)
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

// NoGrad runs fn with autograd recording off on this OS thread, restoring the
// previous mode afterwards (also when fn panics). The caller must hold its OS
// thread for the whole computation (runtime.LockOSThread): grad mode is
// thread-local in libtorch. NoGrad itself keeps the goroutine on one thread
// while it runs, so the mode it sets is the one fn's ops see.
func NoGrad(fn func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
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
	old := ts.FromCtensor(t.Ctensor())
	if err := op(); err != nil {
		return err
	}
	if old.Ctensor() != t.Ctensor() {
		old.MustDrop()
	}
	return nil
}
