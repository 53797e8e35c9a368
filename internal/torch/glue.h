#ifndef DIRA_TORCH_GLUE_H
#define DIRA_TORCH_GLUE_H
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
void dira_set_num_threads(int n);
int dira_get_num_threads(void);
void dira_manual_seed(uint64_t seed);
char *dira_torch_config(void);
int dira_grad_set_enabled(int on);
void *dira_leaky_relu(void *x, double slope, char **err);
int dira_sgd_step(void **params, void **bufs, int n, double lr, double momentum,
                  double weight_decay, char **err);
int dira_scalar_type(void *t);
int dira_copy_(void *dst, void *src, char **err);
int dira_adam_step(void **params, void **ms, void **vs, int n, double b1, double b2,
                   double inv_sqrt_bc2, double eps, double step, char **err);
int dira_zero_grad(void **params, int n, char **err);
int dira_momentum_update(void **q, void **k, int n, double m, char **err);
int dira_autocast_enabled(int device);
void dira_autocast_set_enabled(int device, int on);
int dira_autocast_dtype(int device);
void dira_autocast_set_dtype(int device, int dtype);
int dira_autocast_cache_enabled(void);
void dira_autocast_set_cache_enabled(int on);
int dira_autocast_increment_nesting(void);
int dira_autocast_decrement_nesting(void);
void dira_autocast_clear_cache(void);
int dira_has_cuda(void);
int dira_channels_last(void **ts, int n, char **err);
int dira_is_channels_last(void *t);
int dira_unscale_grads(void **params, int n, double inv_scale, int *found_inf, char **err);
#ifdef __cplusplus
}
#endif
#endif
