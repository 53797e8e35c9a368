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
#ifdef __cplusplus
}
#endif
#endif
