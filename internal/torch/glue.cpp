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
