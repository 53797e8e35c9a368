// c10d.cpp: dira's shim over PyTorch's c10d (TCPStore, PrefixStore,
// ProcessGroupGloo, Reducer) for package dist. This is the only file of the
// project that includes c10d headers.
//
// Every entry point catches C++ exceptions and returns them as messages, and
// every collective runs with the group's timeout: Gloo gives each transfer it
// waits on that deadline, and the caller waits for the result at most the
// timeout plus a grace (kGrace below), so no call blocks for ever.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/utils/lambda_post_hook.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/cuda.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>  // empty unless USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/reducer.hpp>

#include "c10d.h"

namespace {

using std::chrono::milliseconds;

struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroup> pg;
  int rank = 0;
  int size = 1;
  milliseconds timeout{0};
};

char *message(const char *what) { return strdup(what); }

// guard runs fn, turning any exception into *err and a false result. c10::Error
// carries a C++ backtrace in what(); the message alone is what callers want.
template <typename F>
bool guard(char **err, F &&fn) {
  try {
    fn();
    return true;
  } catch (const c10::Error &e) {
    *err = message(e.what_without_backtrace());
  } catch (const std::exception &e) {
    *err = message(e.what());
  } catch (...) {
    *err = message("unknown C++ exception");
  }
  return false;
}

at::Tensor &tensor(void *t) { return *static_cast<at::Tensor *>(t); }

// await waits for w at most the group's timeout plus a grace. Gloo fails an
// operation by itself when a transfer exceeds the timeout; the grace lets that
// more precise error arrive first. Work::wait's own timeout throws without
// cancelling the operation (a later destructor waits for it to end).
void await(const Group &g, const c10::intrusive_ptr<c10d::Work> &w) {
  milliseconds grace = std::max(milliseconds(1000), g.timeout / 4);
  w->wait(g.timeout + grace);
}

c10d::ReduceOp reduceOp(int op) {
  switch (op) {
    case DIRA_DIST_SUM:
      return c10d::ReduceOp::SUM;
    case DIRA_DIST_MAX:
      return c10d::ReduceOp::MAX;
    case DIRA_DIST_MIN:
      return c10d::ReduceOp::MIN;
  }
  throw std::invalid_argument("unknown reduce operator " + std::to_string(op));
}

std::vector<std::string> split(const std::string &s, char sep) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string part;
  while (std::getline(in, part, sep)) {
    if (!part.empty()) out.push_back(part);
  }
  return out;
}

// storeBarrier is init_process_group's store-based barrier (PyTorch 1.13
// distributed_c10d._store_based_barrier): every rank adds 1 to a counter and
// waits until it reaches the world size. Python names the key after its group
// counter, which is 1 once the default group exists.
void storeBarrier(const Group &g, c10d::Store &store) {
  const std::string key = "store_based_barrier_key:1";
  store.add(key, 1);
  auto start = std::chrono::steady_clock::now();
  for (;;) {
    int64_t n = store.add(key, 0);
    if (n == g.size) return;
    if (std::chrono::steady_clock::now() - start > g.timeout) {
      throw std::runtime_error("timed out in the store barrier after " +
                               std::to_string(g.timeout.count()) + " ms: " + std::to_string(n) +
                               " of " + std::to_string(g.size) + " ranks joined");
    }
    std::this_thread::sleep_for(milliseconds(10));
  }
}

// flatten concatenates the tensors (one dtype, one device) into a new 1-D
// tensor; unflatten copies its pieces back. Gloo reduces one buffer in one
// operation this way: handing it a list would also sum across the list.
at::Tensor flatten(const std::vector<at::Tensor> &ts) {
  std::vector<at::Tensor> flat;
  flat.reserve(ts.size());
  for (const auto &t : ts) flat.push_back(t.reshape({-1}));
  return at::cat(flat, 0);
}

void unflatten(const at::Tensor &flat, std::vector<at::Tensor> &ts) {
  int64_t off = 0;
  for (auto &t : ts) {
    int64_t n = t.numel();
    t.copy_(flat.narrow(0, off, n).view(t.sizes()));
    off += n;
  }
}

void sameKind(const std::vector<at::Tensor> &ts) {
  for (size_t i = 1; i < ts.size(); i++) {
    if (ts[i].scalar_type() != ts[0].scalar_type() || ts[i].device() != ts[0].device()) {
      std::ostringstream m;
      m << "tensor " << i << " is " << ts[i].scalar_type() << " on " << ts[i].device()
        << ", tensor 0 is " << ts[0].scalar_type() << " on " << ts[0].device()
        << ": coalesced tensors must share dtype and device";
      throw std::invalid_argument(m.str());
    }
  }
}

// allreduceMean sums the tensors over the group as one flat buffer and
// divides by the world size (Gloo refuses ReduceOp::AVG).
void allreduceMean(const Group &g, std::vector<at::Tensor> &ts) {
  if (ts.empty()) return;
  sameKind(ts);
  if (!at::isFloatingType(ts[0].scalar_type())) {
    throw std::invalid_argument("averaging needs floating-point tensors, got " +
                                std::string(c10::toString(ts[0].scalar_type())));
  }
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> buf{flatten(ts)};
  c10d::AllreduceOptions opts;
  opts.timeout = g.timeout;
  await(g, g.pg->allreduce(buf, opts));
  buf[0].div_(g.size);
  unflatten(buf[0], ts);
}

// verifyParams is DDP's check that every rank has rank 0's parameter shapes.
// c10d's check throws only on the ranks that differ from rank 0, which would
// leave rank 0 waiting in its next collective; an all-reduce of a failure
// flag afterwards makes every rank fail together.
void verifyParams(const Group &g, const std::vector<at::Tensor> &ps) {
  std::string mine;
  try {
    c10d::verify_params_across_processes(g.pg, ps, c10::nullopt);
  } catch (const c10::Error &e) {
    mine = e.what_without_backtrace();
  } catch (const std::exception &e) {
    mine = e.what();
  }
  std::vector<at::Tensor> flag{at::full({1}, mine.empty() ? 0 : 1, at::kInt)};
  c10d::AllreduceOptions opts;
  opts.reduceOp = c10d::ReduceOp::MAX;
  opts.timeout = g.timeout;
  await(g, g.pg->allreduce(flag, opts));
  if (!mine.empty()) throw std::runtime_error(mine);
  if (flag[0].item<int>() != 0) {
    throw std::runtime_error("the parameters of another rank differ from rank 0's (that rank says how)");
  }
}

std::vector<at::Tensor> tensors(void **ts, int n) {
  std::vector<at::Tensor> out;
  out.reserve(n);
  for (int i = 0; i < n; i++) out.push_back(tensor(ts[i]));
  return out;
}

// Heartbeat counts up a key of its own in the group's store from a thread of
// its own, so that after a failed collective the survivors can tell which
// ranks are gone: Gloo's errors name a peer's socket address, not its rank,
// and a rank blocked in a collective still beats. The TCPStore client
// serialises its operations (it holds a lock per operation), so the thread
// shares the group's store connection.
class Heartbeat {
 public:
  Heartbeat(c10::intrusive_ptr<c10d::Store> store, int rank, milliseconds every)
      : store_(std::move(store)), key_(key(rank)), every_(every), thread_([this] { run(); }) {}

  ~Heartbeat() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  static std::string key(int rank) { return "dira_heartbeat/" + std::to_string(rank); }

  milliseconds every() const { return every_; }

 private:
  void run() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      lock.unlock();
      try {
        store_->add(key_, 1);
      } catch (...) {
        // The store's host is gone; the next collective says so.
      }
      lock.lock();
      cv_.wait_for(lock, every_, [this] { return stop_; });
    }
  }

  c10::intrusive_ptr<c10d::Store> store_;
  std::string key_;
  milliseconds every_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;  // last: it starts once the fields above exist
};

}  // namespace

struct dira_dist_group {
  Group g;
  std::unique_ptr<Heartbeat> heartbeat;  // only with more than one rank
};

// Reducer wraps c10d::Reducer, DDP's engine: autograd hooks on every
// parameter's gradient accumulator copy the gradient (divided by the world
// size) into its bucket, and a full bucket is all-reduced asynchronously while
// backward goes on; a callback at the end of backward waits for every bucket
// and writes the averages back into the .grad tensors.
//
// It adds its own post-hook on each accumulator only to tell, after backward,
// which parameters got no gradient: the Reducer then would fail only at the
// next step, with DDP's message about unused parameters.
struct dira_dist_reducer {
  std::unique_ptr<c10d::Reducer> reducer;
  c10::intrusive_ptr<c10d::ProcessGroup> pg;
  struct State {
    std::atomic<bool> armed{false};
    std::vector<std::atomic<bool>> ready;
    explicit State(size_t n) : ready(n) {}
  };
  std::shared_ptr<State> state;
  std::vector<std::pair<uintptr_t, std::shared_ptr<torch::autograd::Node>>> hooks;
};

extern "C" {

void dira_dist_available(int *gloo, int *nccl, int *cuda, int *cuda_devices, int *cudnn) {
  // This file links ProcessGroupGloo, so a libtorch without Gloo would not
  // get this far.
  *gloo = 1;
#ifdef USE_C10D_NCCL
  *nccl = 1;
#else
  *nccl = 0;
#endif
  *cuda = torch::cuda::is_available() ? 1 : 0;
  *cuda_devices = static_cast<int>(torch::cuda::device_count());
  *cudnn = torch::cuda::cudnn_is_available() ? 1 : 0;
}

dira_dist_group *dira_dist_new(int backend, const char *host, int port, int rank, int size,
                               int serve_store, const char *prefix, int64_t timeout_ms,
                               const char *ifnames, char **err) {
  auto out = std::make_unique<dira_dist_group>();
  Group &g = out->g;
  g.rank = rank;
  g.size = size;
  g.timeout = milliseconds(timeout_ms);
  bool ok = guard(err, [&] {
    // As torch.distributed.rendezvous builds it: every rank passes the world
    // size so that clients announce themselves and the server waits for all.
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(port);
    so.isServer = serve_store != 0;
    so.numWorkers = static_cast<size_t>(size);
    so.waitWorkers = true;
    so.timeout = g.timeout;
    so.multiTenant = true;
    c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::TCPStore>(host, so);
    if (prefix[0] != '\0') {
      store = c10::make_intrusive<c10d::PrefixStore>(prefix, store);
    }
    // init_process_group's prefixes: "default_pg" for the default group's
    // store, then the group's name, "0" for the first group.
    auto defaultStore = c10::make_intrusive<c10d::PrefixStore>("default_pg", store);
    auto groupStore = c10::make_intrusive<c10d::PrefixStore>("0", defaultStore);
    if (backend == DIRA_DIST_GLOO) {
      auto opts = c10d::ProcessGroupGloo::Options::create(g.timeout);
      for (const auto &name : split(ifnames, ',')) {
        opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(name));
      }
      if (opts->devices.empty()) {
        opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      }
      opts->threads = static_cast<int>(opts->devices.size()) * 2;
      g.pg = c10::make_intrusive<c10d::ProcessGroupGloo>(groupStore, rank, size, opts);
    } else if (backend == DIRA_DIST_NCCL) {
#ifdef USE_C10D_NCCL
      auto opts = c10d::ProcessGroupNCCL::Options::create();
      opts->timeout = g.timeout;
      g.pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(groupStore, rank, size, opts);
#else
      throw std::runtime_error("nccl is not available: the linked libtorch was built without it");
#endif
    } else {
      throw std::invalid_argument("unknown backend " + std::to_string(backend));
    }
    storeBarrier(g, *defaultStore);
    g.pg->setSequenceNumberForGroup();
    g.store = store;
    if (size > 1) {
      milliseconds every = std::clamp(g.timeout / 8, milliseconds(50), milliseconds(1000));
      out->heartbeat = std::make_unique<Heartbeat>(store, rank, every);
    }
  });
  return ok ? out.release() : nullptr;
}

void dira_dist_free(dira_dist_group *g) {
  g->heartbeat.reset();
  delete g;
}

int dira_dist_lost(dira_dist_group *dg, int *lost, int cap, int64_t *window_ms, char **err) {
  int n = 0;
  bool ok = guard(err, [&] {
    const Group &g = dg->g;
    if (!dg->heartbeat) return;
    // A live rank beats every `every`; one that has not in 3 beats is gone.
    milliseconds window = dg->heartbeat->every() * 3;
    *window_ms = window.count();
    std::vector<int64_t> before(g.size);
    for (int r = 0; r < g.size; r++) before[r] = g.store->add(Heartbeat::key(r), 0);
    std::this_thread::sleep_for(window);
    for (int r = 0; r < g.size; r++) {
      if (r != g.rank && g.store->add(Heartbeat::key(r), 0) == before[r]) {
        if (n < cap) lost[n] = r;
        n++;
      }
    }
  });
  return ok ? n : -1;
}

int dira_dist_allreduce(dira_dist_group *dg, void *t, int op, char **err) {
  const Group &g = dg->g;
  return guard(err, [&] {
           at::NoGradGuard no_grad;
           std::vector<at::Tensor> ts{tensor(t)};
           c10d::AllreduceOptions opts;
           opts.reduceOp = reduceOp(op);
           opts.timeout = g.timeout;
           await(g, g.pg->allreduce(ts, opts));
         })
             ? 0
             : -1;
}

int dira_dist_allreduce_mean(dira_dist_group *dg, void **ts, int n, char **err) {
  return guard(err, [&] {
           auto list = tensors(ts, n);
           allreduceMean(dg->g, list);
         })
             ? 0
             : -1;
}

int dira_dist_allreduce_grads(dira_dist_group *dg, void **params, int n, char **err) {
  return guard(err, [&] {
           std::vector<at::Tensor> grads;
           grads.reserve(n);
           for (int i = 0; i < n; i++) {
             const at::Tensor &g = tensor(params[i]).grad();
             if (!g.defined()) {
               throw std::invalid_argument("parameter " + std::to_string(i) + " has no gradient");
             }
             grads.push_back(g);
           }
           allreduceMean(dg->g, grads);
         })
             ? 0
             : -1;
}

void *dira_dist_allgather(dira_dist_group *dg, void *t, char **err) {
  const Group &g = dg->g;
  at::Tensor *result = nullptr;
  bool ok = guard(err, [&] {
    at::NoGradGuard no_grad;
    at::Tensor in = tensor(t).contiguous();
    if (in.dim() == 0) in = in.reshape({1});
    std::vector<int64_t> shape(in.sizes().begin(), in.sizes().end());
    int64_t rows = shape[0];
    shape[0] *= g.size;
    at::Tensor out = at::empty(shape, in.options());
    std::vector<std::vector<at::Tensor>> outs(1);
    for (int r = 0; r < g.size; r++) outs[0].push_back(out.narrow(0, r * rows, rows));
    std::vector<at::Tensor> ins{in};
    c10d::AllgatherOptions opts;
    opts.timeout = g.timeout;
    await(g, g.pg->allgather(outs, ins, opts));
    result = new at::Tensor(out);
  });
  return ok ? result : nullptr;
}

int dira_dist_broadcast(dira_dist_group *dg, void **ts, int n, int root, int64_t bucket_bytes,
                        char **err) {
  const Group &g = dg->g;
  return guard(err, [&] {
           at::NoGradGuard no_grad;
           auto list = tensors(ts, n);
           // As DDP's _broadcast_coalesced (take_tensors): tensors grouped by
           // dtype and device in order of first appearance, each group cut
           // in list order into buckets of at most bucket_bytes (a larger
           // tensor is a bucket of its own). A BatchNorm's float statistics
           // and int64 counter thus do not split the buffers into a bucket
           // per layer.
           std::vector<std::vector<at::Tensor>> groups;
           for (const auto &t : list) {
             auto same = [&](const std::vector<at::Tensor> &grp) {
               return grp[0].scalar_type() == t.scalar_type() && grp[0].device() == t.device();
             };
             auto it = std::find_if(groups.begin(), groups.end(), same);
             if (it == groups.end()) {
               groups.push_back({t});
             } else {
               it->push_back(t);
             }
           }
           for (const auto &grp : groups) {
             size_t i = 0;
             while (i < grp.size()) {
               std::vector<at::Tensor> bucket{grp[i]};
               int64_t bytes = grp[i].nbytes();
               size_t j = i + 1;
               for (; j < grp.size() && bytes + static_cast<int64_t>(grp[j].nbytes()) <= bucket_bytes; j++) {
                 bytes += grp[j].nbytes();
                 bucket.push_back(grp[j]);
               }
               std::vector<at::Tensor> buf{flatten(bucket)};
               c10d::BroadcastOptions opts;
               opts.rootRank = root;
               opts.timeout = g.timeout;
               await(g, g.pg->broadcast(buf, opts));
               if (g.rank != root) unflatten(buf[0], bucket);
               i = j;
             }
           }
         })
             ? 0
             : -1;
}

int dira_dist_reduce(dira_dist_group *dg, void *t, int root, char **err) {
  const Group &g = dg->g;
  return guard(err, [&] {
           at::NoGradGuard no_grad;
           std::vector<at::Tensor> ts{tensor(t)};
           c10d::ReduceOptions opts;
           opts.reduceOp = c10d::ReduceOp::SUM;
           opts.rootRank = root;
           opts.timeout = g.timeout;
           await(g, g.pg->reduce(ts, opts));
         })
             ? 0
             : -1;
}

int dira_dist_barrier(dira_dist_group *dg, char **err) {
  const Group &g = dg->g;
  return guard(err, [&] {
           c10d::BarrierOptions opts;
           opts.timeout = g.timeout;
           await(g, g.pg->barrier(opts));
         })
             ? 0
             : -1;
}

dira_dist_reducer *dira_dist_reducer_new(dira_dist_group *dg, void **params, int n,
                                         int64_t bucket_bytes, char **err) {
  auto r = std::make_unique<dira_dist_reducer>();
  r->pg = dg->g.pg;
  bool ok = guard(err, [&] {
    auto ps = tensors(params, n);
    for (int i = 0; i < n; i++) {
      if (!ps[i].requires_grad() || !ps[i].is_leaf()) {
        throw std::invalid_argument("parameter " + std::to_string(i) +
                                    " is not a leaf tensor that requires grad");
      }
    }
    // As DistributedDataParallel.__init__ (PyTorch 1.13) with
    // find_unused_parameters=False: check that every rank has the same
    // parameter shapes, then start with all parameters in one bucket. The
    // Reducer re-buckets them at the second step (rebuild_buckets) in the
    // order their gradients arrived, into a first bucket of at most 1 MiB and
    // buckets of bucket_bytes after it. The first bucket never exceeds
    // bucket_bytes here, so small bucket sizes give several buckets on small
    // models (the tests); with DDP's 25 MiB it is DDP's 1 MiB.
    verifyParams(dg->g, ps);
    std::vector<bool> sparse(n, false);
    std::vector<size_t> one{std::numeric_limits<size_t>::max()};
    auto assigned = c10d::compute_bucket_assignment_by_size(ps, one, sparse);
    auto indices = std::get<0>(assigned);
    auto perBucket = std::get<1>(assigned);
    std::reverse(indices.begin(), indices.end());
    std::reverse(perBucket.begin(), perBucket.end());
    int64_t first = std::min<int64_t>(c10d::kDefaultFirstBucketBytes, bucket_bytes);
    r->reducer = std::make_unique<c10d::Reducer>(ps, indices, perBucket, r->pg, sparse,
                                                 bucket_bytes, false, false,
                                                 std::unordered_map<size_t, std::string>{}, first);
    r->state = std::make_shared<dira_dist_reducer::State>(n);
    for (int i = 0; i < n; i++) {
      auto acc = torch::autograd::impl::grad_accumulator(ps[i]);
      std::shared_ptr<dira_dist_reducer::State> st = r->state;
      uintptr_t key = acc->add_post_hook(std::make_unique<torch::autograd::utils::LambdaPostHook>(
          [st, i](const torch::autograd::variable_list &outputs,
                  const torch::autograd::variable_list &) {
            if (st->armed.load()) st->ready[i].store(true);
            return outputs;
          }));
      r->hooks.emplace_back(key, acc);
    }
  });
  if (!ok) {
    for (auto &h : r->hooks) h.second->del_post_hook(h.first);
    return nullptr;
  }
  return r.release();
}

int dira_dist_reducer_prepare(dira_dist_reducer *r, char **err) {
  return guard(err, [&] {
           for (auto &x : r->state->ready) x.store(false);
           r->state->armed.store(true);
           // DistributedDataParallel.forward's calls, in its order: after the
           // first step the Reducer re-buckets parameters in the order their
           // gradients arrived (rank 0's order, broadcast).
           r->reducer->prepare_for_forward();
           r->reducer->rebuild_buckets();
           r->reducer->prepare_for_backward({});
         })
             ? 0
             : -1;
}

int dira_dist_reducer_finish(dira_dist_reducer *r, int *missing, int cap) {
  r->state->armed.store(false);
  int n = 0;
  for (size_t i = 0; i < r->state->ready.size(); i++) {
    if (!r->state->ready[i].load()) {
      if (n < cap) missing[n] = static_cast<int>(i);
      n++;
    }
  }
  return n;
}

int dira_dist_reducer_buckets(dira_dist_reducer *r) {
  return static_cast<int>(r->reducer->get_grad_buckets(true).size());
}

void dira_dist_reducer_free(dira_dist_reducer *r) {
  for (auto &h : r->hooks) h.second->del_post_hook(h.first);
  char *err = nullptr;
  // ~Reducer is noexcept(false); a failure to unhook is not worth a crash.
  if (!guard(&err, [&] { r->reducer.reset(); })) free(err);
  delete r;
}

}  // extern "C"
