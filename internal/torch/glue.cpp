// glue.cpp: C entry points for libtorch functions gotch v0.7.0 lacks.
#include <ATen/Parallel.h>
#include <ATen/Context.h>
#include <ATen/Version.h>
#include <ATen/core/grad_mode.h>
#include <torch/version.h>
#include <cstring>
#include <string>
#include <torch/torch.h>
#include "glue.h"

extern "C" {

void dira_set_num_threads(int n) { at::set_num_threads(n); }

int dira_get_num_threads(void) { return at::get_num_threads(); }

void dira_manual_seed(uint64_t seed) { at::manual_seed(seed); }

// dira_torch_config returns at::show_config() (malloc'd): the build settings of
// the libtorch loaded at run time, including its TORCH_VERSION.
char *dira_torch_config(void) { return strdup(at::show_config().c_str()); }

int dira_grad_set_enabled(int on) {
  bool prev = at::GradMode::is_enabled();
  at::GradMode::set_enabled(on != 0);
  return prev ? 1 : 0;
}

// The ops below take and return gotch tensor handles (torch::Tensor*). On a
// C++ exception they return NULL and set *err to a malloc'd message.

static char *dup_err(const std::exception &e) { return strdup(e.what()); }

void *dira_leaky_relu(void *x, double slope, char **err) {
  try {
    return new torch::Tensor(torch::leaky_relu(*static_cast<torch::Tensor *>(x), slope));
  } catch (const std::exception &e) {
    *err = dup_err(e);
    return nullptr;
  }
}

}  // extern "C"

extern "C" {

// dira_sgd_step is torch.optim.SGD's single-tensor step (PyTorch 1.13,
// dampening 0, no Nesterov), op for op, over n parameters in one call:
//   d = grad (+ weight_decay * p);  buf = d (first step, a copy) or
//   buf = momentum*buf + d;  p -= lr * buf.
// bufs[i] is NULL until parameter i's first step; the new buffer handle is
// stored there. Parameters without a gradient are skipped.
int dira_sgd_step(void **params, void **bufs, int n, double lr, double momentum,
                  double weight_decay, char **err) {
  try {
    at::NoGradGuard no_grad;
    for (int i = 0; i < n; i++) {
      torch::Tensor &p = *static_cast<torch::Tensor *>(params[i]);
      const torch::Tensor &g = p.grad();
      if (!g.defined()) continue;
      torch::Tensor d = g;
      if (weight_decay != 0) d = d.add(p, weight_decay);
      if (momentum != 0) {
        if (bufs[i] == nullptr) {
          bufs[i] = new torch::Tensor(torch::clone(d).detach());
        } else {
          static_cast<torch::Tensor *>(bufs[i])->mul_(momentum).add_(d, 1.0);
        }
        d = *static_cast<torch::Tensor *>(bufs[i]);
      }
      p.add_(d, -lr);
    }
    return 0;
  } catch (const std::exception &e) {
    *err = dup_err(e);
    return -1;
  }
}

// dira_momentum_update sets k = k*m + q*(1-m) for n pairs, without autograd
// (MoCo's key-encoder update).
int dira_momentum_update(void **q, void **k, int n, double m, char **err) {
  try {
    at::NoGradGuard no_grad;
    for (int i = 0; i < n; i++) {
      static_cast<torch::Tensor *>(k[i])->mul_(m).add_(*static_cast<torch::Tensor *>(q[i]), 1.0 - m);
    }
    return 0;
  } catch (const std::exception &e) {
    *err = dup_err(e);
    return -1;
  }
}

}  // extern "C"

extern "C" {

// dira_scalar_type is the c10::ScalarType number of a tensor (6 float, 4
// long, 15 bfloat16, ...): gotch's DType exits on types it does not map.
int dira_scalar_type(void *t) {
  return static_cast<int>(static_cast<torch::Tensor *>(t)->scalar_type());
}

// dira_copy_ is dst.copy_(src) without autograd: loading and moving weights.
int dira_copy_(void *dst, void *src, char **err) {
  try {
    at::NoGradGuard no_grad;
    static_cast<torch::Tensor *>(dst)->copy_(*static_cast<torch::Tensor *>(src));
    return 0;
  } catch (const std::exception &e) {
    *err = dup_err(e);
    return -1;
  }
}

}  // extern "C"

// Autocast: libtorch's automatic mixed precision, the C++ side of
// torch.autocast. Its settings are thread-local (like grad mode), so callers
// stay on one pinned thread. device 0 is the CPU, 1 CUDA.
#include <ATen/autocast_mode.h>

extern "C" {

int dira_autocast_enabled(int device) {
  return (device == 0 ? at::autocast::is_cpu_enabled() : at::autocast::is_enabled()) ? 1 : 0;
}

void dira_autocast_set_enabled(int device, int on) {
  if (device == 0) {
    at::autocast::set_cpu_enabled(on != 0);
  } else {
    at::autocast::set_enabled(on != 0);
  }
}

int dira_autocast_dtype(int device) {
  return static_cast<int>(device == 0 ? at::autocast::get_autocast_cpu_dtype()
                                      : at::autocast::get_autocast_gpu_dtype());
}

void dira_autocast_set_dtype(int device, int dtype) {
  auto t = static_cast<at::ScalarType>(dtype);
  if (device == 0) {
    at::autocast::set_autocast_cpu_dtype(t);
  } else {
    at::autocast::set_autocast_gpu_dtype(t);
  }
}

int dira_autocast_cache_enabled(void) { return at::autocast::is_autocast_cache_enabled() ? 1 : 0; }

void dira_autocast_set_cache_enabled(int on) { at::autocast::set_autocast_cache_enabled(on != 0); }

int dira_autocast_increment_nesting(void) { return at::autocast::increment_nesting(); }

int dira_autocast_decrement_nesting(void) { return at::autocast::decrement_nesting(); }

void dira_autocast_clear_cache(void) { at::autocast::clear_cache(); }

int dira_has_cuda(void) { return at::hasCUDA() ? 1 : 0; }

// dira_unscale_grads is GradScaler.unscale_ over n parameters (PyTorch
// 1.13's _amp_foreach_non_finite_check_and_unscale_, one tensor at a time):
// each defined gradient is multiplied in place by inv_scale, and *found_inf
// is set to 1 if any gradient held an Inf or a NaN before the multiply.
int dira_unscale_grads(void **params, int n, double inv_scale, int *found_inf, char **err) {
  try {
    at::NoGradGuard no_grad;
    *found_inf = 0;
    for (int i = 0; i < n; i++) {
      torch::Tensor g = static_cast<torch::Tensor *>(params[i])->grad();
      if (!g.defined()) continue;
      if (!*found_inf && !torch::isfinite(g).all().item<bool>()) *found_inf = 1;
      g.mul_(inv_scale);
    }
    return 0;
  } catch (const std::exception &e) {
    *err = dup_err(e);
    return -1;
  }
}

}  // extern "C"

extern "C" {

// dira_adam_step is optim.Adam's update over n parameters in one call, op for
// op as the Go code it replaced (and torch.optim.Adam's single-tensor
// algorithm of PyTorch 1.13 with weight_decay 0):
//   m = m*b1 + g*(1-b1);  v = v*b2 + (g*g)*(1-b2)
//   p += (m / (sqrt(v) * inv_sqrt_bc2 + eps)) * step,  step = -lr / bc1
// Parameters without a gradient are skipped.
int dira_adam_step(void **params, void **ms, void **vs, int n, double b1, double b2,
                   double inv_sqrt_bc2, double eps, double step, char **err) {
  try {
    at::NoGradGuard no_grad;
    for (int i = 0; i < n; i++) {
      torch::Tensor &p = *static_cast<torch::Tensor *>(params[i]);
      const torch::Tensor &g = p.grad();
      if (!g.defined()) continue;
      torch::Tensor &m = *static_cast<torch::Tensor *>(ms[i]);
      torch::Tensor &v = *static_cast<torch::Tensor *>(vs[i]);
      m.mul_(b1);
      m.add_(g.mul(1.0 - b1));
      v.mul_(b2);
      v.add_(g.mul(g).mul_(1.0 - b2));
      torch::Tensor denom = v.sqrt();
      denom.mul_(inv_sqrt_bc2);
      denom.add_(eps);
      torch::Tensor upd = m.div(denom);
      upd.mul_(step);
      p.add_(upd);
    }
    return 0;
  } catch (const std::exception &e) {
    *err = dup_err(e);
    return -1;
  }
}

// dira_zero_grad fills the defined gradients of n tensors with zeros, as
// PyTorch 1.13's zero_grad() (set_to_none=False).
int dira_zero_grad(void **params, int n, char **err) {
  try {
    for (int i = 0; i < n; i++) {
      torch::Tensor g = static_cast<torch::Tensor *>(params[i])->grad();
      if (g.defined()) g.zero_();
    }
    return 0;
  } catch (const std::exception &e) {
    *err = dup_err(e);
    return -1;
  }
}

}  // extern "C"

extern "C" {

// dira_channels_last gives each 4-D tensor of ts the channels-last (NHWC)
// memory layout in place, keeping its handle, values and autograd identity:
// what module.to(memory_format=torch.channels_last) does to parameters
// (param.data = param.data.contiguous(channels_last)). Other tensors are left
// alone.
int dira_channels_last(void **ts, int n, char **err) {
  try {
    at::NoGradGuard no_grad;
    for (int i = 0; i < n; i++) {
      torch::Tensor &t = *static_cast<torch::Tensor *>(ts[i]);
      if (t.dim() != 4) continue;
      t.set_data(t.contiguous(at::MemoryFormat::ChannelsLast));
    }
    return 0;
  } catch (const std::exception &e) {
    *err = dup_err(e);
    return -1;
  }
}

int dira_is_channels_last(void *t) {
  return static_cast<torch::Tensor *>(t)->is_contiguous(at::MemoryFormat::ChannelsLast) ? 1 : 0;
}

}  // extern "C"
