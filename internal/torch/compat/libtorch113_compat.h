// libtorch113_compat.h lets gotch v0.7.0's generated C++ wrapper
// (libtch/torch_api_generated.cpp.h, written for libtorch 1.11) compile against
// Debian's libtorch 1.13.1 without editing the module cache.
//
// It is force-included into every C++ translation unit of the cgo build with
// CGO_CXXFLAGS="-include <this file>" (scripts/setup.sh writes that with go env -w).
//
// Two kinds of declarations:
//   - ops that 1.13 removed: a variadic template that throws. gotch's PROTECT
//     macro turns the exception into a Go error, so calling one of them from Go
//     fails loudly instead of failing to build. dira uses none of them.
//   - ops whose signature changed: an exact-match adapter that forwards to the
//     1.13 function with the argument 1.11 did not have.
#ifndef DIRA_LIBTORCH113_COMPAT_H
#define DIRA_LIBTORCH113_COMPAT_H
#ifdef __cplusplus

#include <torch/torch.h>
#include <stdexcept>
#include <string>
#include <tuple>

namespace dira_compat {
[[noreturn]] inline void removed(const char *op) {
  throw std::runtime_error(std::string("torch::") + op +
                           " is not available in libtorch 1.13 (removed upstream)");
}
using T1 = at::Tensor;
using T2 = std::tuple<at::Tensor, at::Tensor>;
using T3 = std::tuple<at::Tensor, at::Tensor, at::Tensor>;
}  // namespace dira_compat

#define DIRA_REMOVED(ret, op)                                                  \
  template <typename... Args> ret op(Args &&...) { dira_compat::removed(#op); }

namespace torch {
DIRA_REMOVED(dira_compat::T1, _cat)
DIRA_REMOVED(dira_compat::T1, _cat_out)
DIRA_REMOVED(dira_compat::T3, _det_lu_based_helper)
DIRA_REMOVED(dira_compat::T1, _det_lu_based_helper_backward_helper)
DIRA_REMOVED(dira_compat::T1, _linalg_inv_out_helper_)
DIRA_REMOVED(dira_compat::T2, _linalg_qr_helper)
DIRA_REMOVED(dira_compat::T1, _s_where)
DIRA_REMOVED(dira_compat::T2, _solve_helper)
DIRA_REMOVED(dira_compat::T2, _weight_norm_cuda_interface)
DIRA_REMOVED(dira_compat::T2, _weight_norm_cuda_interface_backward)
DIRA_REMOVED(dira_compat::T1, binary_cross_entropy_with_logits_backward)
DIRA_REMOVED(dira_compat::T1, col2im_backward)
DIRA_REMOVED(dira_compat::T1, col2im_backward_out)
DIRA_REMOVED(dira_compat::T2, eig)
DIRA_REMOVED(dira_compat::T2, eig_out)
DIRA_REMOVED(dira_compat::T1, im2col_backward)
DIRA_REMOVED(dira_compat::T1, im2col_backward_out)
DIRA_REMOVED(dira_compat::T1, kl_div_backward)
DIRA_REMOVED(dira_compat::T1, l1_loss_backward)
DIRA_REMOVED(dira_compat::T1, l1_loss_backward_out)
DIRA_REMOVED(dira_compat::T1, l1_loss_out)
DIRA_REMOVED(dira_compat::T2, lstsq)
DIRA_REMOVED(dira_compat::T2, lstsq_out)
DIRA_REMOVED(dira_compat::T1, matrix_rank)
DIRA_REMOVED(dira_compat::T1, max_unpool2d_backward)
DIRA_REMOVED(dira_compat::T1, max_unpool2d_backward_out)
DIRA_REMOVED(dira_compat::T1, max_unpool3d_backward)
DIRA_REMOVED(dira_compat::T1, max_unpool3d_backward_out)
DIRA_REMOVED(dira_compat::T2, solve)
DIRA_REMOVED(dira_compat::T2, solve_out)

// Signature changes between 1.11 and 1.13.
using at::arange_out;
inline at::Tensor &arange_out(at::Tensor &out, const at::Scalar &start,
                              const at::Scalar &end) {
  return at::arange_out(out, start, end, 1);  // 1.13 made step explicit
}
// bernoulli_out and normal_out: 1.13's defaulted generator arguments make the
// 1.11-style calls ambiguous between two at:: overloads. Taking the inputs as
// non-const references makes these adapters the strictly better match.
using at::bernoulli_out;
inline at::Tensor &bernoulli_out(at::Tensor &out, at::Tensor &self) {
  return at::bernoulli_out(out, self, c10::optional<at::Generator>());
}
using at::normal_out;
inline at::Tensor &normal_out(at::Tensor &out, at::Tensor &mean, double std) {
  return at::normal_out(out, mean, std, c10::optional<at::Generator>());
}
inline at::Tensor &normal_out(at::Tensor &out, at::Tensor &mean, at::Tensor &std) {
  return at::normal_out(out, mean, std, c10::optional<at::Generator>());
}
using at::nansum;
inline at::Tensor nansum(const at::Tensor &self, at::ScalarType dtype) {
  return at::nansum(self, c10::nullopt, false, dtype);
}
using at::grid_sampler_3d_backward;
inline std::tuple<at::Tensor, at::Tensor> grid_sampler_3d_backward(
    const at::Tensor &grad_output, const at::Tensor &input, const at::Tensor &grid,
    int64_t interpolation_mode, int64_t padding_mode, bool align_corners) {
  return at::grid_sampler_3d_backward(grad_output, input, grid, interpolation_mode,
                                      padding_mode, align_corners, {true, true});
}
using at::segment_reduce;
inline at::Tensor segment_reduce(const at::Tensor &data, c10::string_view reduce,
                                 const c10::optional<at::Tensor> &lengths,
                                 const c10::optional<at::Tensor> &indices, int64_t axis,
                                 bool unsafe, const c10::optional<at::Scalar> &initial) {
  return at::segment_reduce(data, reduce, lengths, indices, c10::nullopt, axis, unsafe,
                            initial);
}
using at::_segment_reduce_backward;
inline at::Tensor _segment_reduce_backward(const at::Tensor &grad, const at::Tensor &output,
                                           const at::Tensor &data, c10::string_view reduce,
                                           const c10::optional<at::Tensor> &lengths,
                                           int64_t axis) {
  return at::_segment_reduce_backward(grad, output, data, reduce, lengths, c10::nullopt,
                                      axis, c10::nullopt);
}
}  // namespace torch

#undef DIRA_REMOVED
#endif  // __cplusplus
#endif  // DIRA_LIBTORCH113_COMPAT_H
