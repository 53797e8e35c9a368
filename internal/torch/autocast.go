package torch

// #include <stdlib.h>
// #include "glue.h"
import "C"

import (
	"fmt"
	"unsafe"

	"github.com/sugarme/gotch/ts"
)

// Device is the kind of device an autocast region applies to: libtorch keeps
// separate autocast switches for CPU and CUDA tensors.
type Device int

// The devices autocast knows.
const (
	CPU  Device = 0
	CUDA Device = 1
)

func (d Device) String() string {
	if d == CUDA {
		return "cuda"
	}
	return "cpu"
}

// AutocastState is the calling thread's autocast settings for one device.
type AutocastState struct {
	Enabled bool
	Dtype   ScalarType // the lower-precision type autocast casts to
	Cache   bool       // whether casts of weights are cached within a region
}

// AutocastNow reports the calling thread's autocast settings for d.
func AutocastNow(d Device) AutocastState {
	assertPinned()
	return AutocastState{
		Enabled: C.dira_autocast_enabled(C.int(d)) != 0,
		Dtype:   ScalarType(C.dira_autocast_dtype(C.int(d))),
		Cache:   C.dira_autocast_cache_enabled() != 0,
	}
}

// Autocast runs fn with libtorch's automatic mixed precision on for device d,
// casting to dtype, as `with torch.autocast(device_type=d, dtype=dtype):` does
// in PyTorch 1.13 (torch/amp/autocast_mode.py, whose steps it repeats): ops on
// autocast's lower-precision list (convolutions, linear, matmul) run in
// dtype, ops on its fp32 list (the losses, norms, softmax) in float32, the
// rest in their inputs' type. Tensors that fn creates keep their types after
// it; parameters, buffers and optimiser state are never changed by autocast.
//
// On the way out, also when fn panics, the previous settings come back, and
// leaving the outermost region clears the cache of weight casts (libtorch
// keeps a bf16 copy of each weight for the whole region, so each training
// step must start without the previous step's copies). Autocast state is per
// OS thread, like grad mode: the caller must be pinned (Do).
//
// CPU autocast in libtorch 1.13 supports only BFloat16, and CUDA autocast
// needs a CUDA build (HasCUDA); other requests fail as a libtorch error
// (Fail) before fn runs.
func Autocast(d Device, dtype ScalarType, fn func()) {
	assertPinned()
	switch {
	case d == CPU && dtype != BFloat16:
		Fail("cpu autocast supports bfloat16 only, not %v", dtype)
	case d == CUDA && !HasCUDA():
		Fail("cuda autocast needs a CUDA build of libtorch; this one is CPU-only")
	case d == CUDA && dtype != Float16 && dtype != BFloat16:
		Fail("cuda autocast supports float16 and bfloat16, not %v", dtype)
	}
	prev := AutocastNow(d)
	C.dira_autocast_set_enabled(C.int(d), 1)
	C.dira_autocast_set_dtype(C.int(d), C.int(dtype))
	C.dira_autocast_increment_nesting()
	C.dira_autocast_set_cache_enabled(boolInt(prev.Cache))
	defer func() {
		if C.dira_autocast_decrement_nesting() == 0 {
			C.dira_autocast_clear_cache()
		}
		C.dira_autocast_set_enabled(C.int(d), boolInt(prev.Enabled))
		C.dira_autocast_set_dtype(C.int(d), C.int(prev.Dtype))
		C.dira_autocast_set_cache_enabled(boolInt(prev.Cache))
	}()
	fn()
}

func boolInt(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// HasCUDA reports whether the loaded libtorch was built with CUDA and sees a
// device (at::hasCUDA). Debian's libtorch 1.13 is CPU-only: false.
func HasCUDA() bool { return C.dira_has_cuda() != 0 }

// UnscaleGrads multiplies every defined gradient of params by invScale in
// place and reports whether any of them held an Inf or a NaN before that
// (PyTorch 1.13's _amp_foreach_non_finite_check_and_unscale_, which
// GradScaler.unscale_ calls). Parameters without a gradient are skipped.
func UnscaleGrads(params []*ts.Tensor, invScale float32) (foundInf bool, err error) {
	assertPinned()
	if len(params) == 0 {
		return false, nil
	}
	ps := cHandles(params)
	defer C.free(unsafe.Pointer(ps))
	var found C.int
	var cerr *C.char
	if C.dira_unscale_grads((*unsafe.Pointer)(unsafe.Pointer(ps)), C.int(len(params)), C.double(invScale), &found, &cerr) != 0 {
		return false, fmt.Errorf("unscale gradients: %w", cError(cerr))
	}
	return found != 0, nil
}

// ChannelsLast gives every 4-D tensor of ts the channels-last (NHWC) memory
// layout in place, as module.to(memory_format=torch.channels_last) does to a
// PyTorch model's parameters: handles, shapes, values and autograd identity
// stay; other tensors are skipped. Convolutions whose input or weight is
// channels-last run in oneDNN on NHWC data directly and return channels-last
// outputs, which the following batch norm, activation and convolution keep,
// instead of reordering every activation between NCHW and oneDNN's blocked
// layout around each convolution. Values are the same; the order of
// floating-point sums inside a convolution may differ.
func ChannelsLast(ts []*ts.Tensor) error {
	assertPinned()
	if len(ts) == 0 {
		return nil
	}
	hs := cHandles(ts)
	defer C.free(unsafe.Pointer(hs))
	var cerr *C.char
	if C.dira_channels_last((*unsafe.Pointer)(unsafe.Pointer(hs)), C.int(len(ts)), &cerr) != 0 {
		return fmt.Errorf("channels last: %w", cError(cerr))
	}
	return nil
}

// IsChannelsLast reports whether t is laid out channels-last (NHWC).
func IsChannelsLast(t *ts.Tensor) bool {
	assertPinned()
	return C.dira_is_channels_last(t.Ctensor()) != 0
}
