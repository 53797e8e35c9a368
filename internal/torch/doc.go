// Package torch is dira's layer over gotch and libtorch: the calls gotch
// v0.7.0 lacks or gets wrong, and the rules every piece of tensor code
// follows.
//
//   - Pinning: libtorch keeps grad mode, and gotch its last error, per OS
//     thread, so tensor work runs inside Do (or after Pin), which holds the
//     goroutine's thread; every helper here checks that and panics with
//     ErrUnpinned otherwise, so a forgotten pin fails on its first op.
//   - Errors: gotch's Must* functions (and Float64Values, Int64Values, Copy_,
//     DType, ...) end the process with log.Fatal on a libtorch error. dira
//     calls none of them outside this package (TestNoFatalGotchCalls checks
//     it): Size, Float32s, FromFloat32, CopyInto and the others here are
//     their replacements, and Must/Check raise a libtorch error as a panic
//     that Catch (or Do) turns back into an *Error at an API edge.
//   - Memory: tensors are freed by hand (gotch v0.7.0 has no finalizers);
//     InPlace frees the handle gotch's in-place ops leak.
//   - libtorch calls gotch lacks: thread count, seed, version, grad mode,
//     leaky_relu with a slope, the SGD step and MoCo's momentum update as one
//     call each, copy_ without autograd, the element type, glibc's allocator
//     thresholds.
//   - Mixed precision: Autocast, torch.autocast's region (thread-local state
//     like grad mode, restored on the way out), and UnscaleGrads, the
//     gradient check-and-unscale of a loss scaler (package optim owns the
//     scaler itself).
//
// It also carries compat/libtorch113_compat.h, the header that lets gotch's
// generated wrapper compile against Debian's libtorch 1.13.1 (installed by
// scripts/setup.sh). It does not define networks (package model does).
package torch
