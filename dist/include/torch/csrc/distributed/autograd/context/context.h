// Stand-in for PyTorch's torch/csrc/distributed/autograd/context/context.h,
// which Debian's libtorch-dev 1.13.1 does not ship although c10d/reducer.hpp
// includes it.
//
// reducer.hpp needs only two names from it: DistAutogradContext::GradCallback
// (a static_assert compares it with the Reducer's own callback type) and
// ContextPtr (the Reducer holds one in a shared_ptr plus an atomic raw pointer,
// whose size does not depend on the pointee). dira never creates a distributed
// autograd context, and no code compiled against this header looks inside one,
// so the class is declared with that one member type only.
#pragma once

#include <functional>
#include <memory>

#include <ATen/core/Tensor.h>

namespace torch {
namespace distributed {
namespace autograd {

class DistAutogradContext {
 public:
  using GradCallback = std::function<bool(at::Tensor&)>;
};

using ContextPtr = std::shared_ptr<DistAutogradContext>;

}  // namespace autograd
}  // namespace distributed
}  // namespace torch
