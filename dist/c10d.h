// c10d.h: the C interface of dist's C++ shim over PyTorch's c10d (c10d.cpp).
//
// Tensors are gotch handles (torch::Tensor*). Every call that can fail
// returns -1 (or NULL) and sets *err to a malloc'd message the caller frees.
#ifndef DIRA_DIST_C10D_H
#define DIRA_DIST_C10D_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dira_dist_group dira_dist_group;
typedef struct dira_dist_reducer dira_dist_reducer;

// Backends.
enum { DIRA_DIST_GLOO = 0, DIRA_DIST_NCCL = 1 };

// Reduction operators (Gloo has no average: divide by the world size).
enum { DIRA_DIST_SUM = 0, DIRA_DIST_MAX = 1, DIRA_DIST_MIN = 2 };

// dira_dist_available reports what the linked libtorch provides.
void dira_dist_available(int *gloo, int *nccl, int *cuda, int *cuda_devices, int *cudnn);

// dira_dist_new connects to (or, with serve_store, hosts) the TCPStore at
// host:port, then builds the process group under the store prefixes
// torch.distributed.init_process_group uses. prefix may be "" (none).
// ifnames is a comma-separated list of network interfaces ("" = the
// device for this host's name, as PyTorch does without GLOO_SOCKET_IFNAME).
dira_dist_group *dira_dist_new(int backend, const char *host, int port, int rank, int size,
                               int serve_store, const char *prefix, int64_t timeout_ms,
                               const char *ifnames, char **err);
void dira_dist_free(dira_dist_group *g);

// dira_dist_lost returns how many other ranks stopped beating (see Heartbeat
// in c10d.cpp): it waits *window_ms (set here) and writes the first cap of
// their ranks. -1 with *err when the store cannot be reached.
int dira_dist_lost(dira_dist_group *g, int *lost, int cap, int64_t *window_ms, char **err);

int dira_dist_allreduce(dira_dist_group *g, void *t, int op, char **err);
int dira_dist_allreduce_mean(dira_dist_group *g, void **ts, int n, char **err);
int dira_dist_allreduce_grads(dira_dist_group *g, void **params, int n, char **err);
void *dira_dist_allgather(dira_dist_group *g, void *t, char **err);
int dira_dist_broadcast(dira_dist_group *g, void **ts, int n, int root, int64_t bucket_bytes,
                        char **err);
int dira_dist_reduce(dira_dist_group *g, void *t, int root, char **err);
int dira_dist_barrier(dira_dist_group *g, char **err);

dira_dist_reducer *dira_dist_reducer_new(dira_dist_group *g, void **params, int n,
                                         int64_t bucket_bytes, char **err);
int dira_dist_reducer_prepare(dira_dist_reducer *r, char **err);
// dira_dist_reducer_finish disarms r and returns how many parameters got no
// gradient since the last prepare, writing the first cap of their indices.
int dira_dist_reducer_finish(dira_dist_reducer *r, int *missing, int cap);
int dira_dist_reducer_buckets(dira_dist_reducer *r);
void dira_dist_reducer_free(dira_dist_reducer *r);

#ifdef __cplusplus
}
#endif

#endif
