/* The LSTM's time loops for core/bptt.py, in C: one call per direction instead of
 * ~12 torch calls per time step.
 *
 * Why: in Python each small torch call costs 3-5 us of dispatch, ~1,200 of them per
 * LSTM step at T = 100, while torch.nn's fused oneDNN kernel makes one call per
 * direction. Here each step is one BLAS matmul (MKL's sgemm_/dgemm_, found in
 * libtorch_cpu and passed in by core/native/__init__.py) and one pass over the
 * step's B x H units that does all the element-wise work at once, so the
 * per-step "local derivatives" are never stored for the whole sequence.
 *
 * The equations are those of core/bptt.py (_lstm_pass), torch's gate order i, f, g, o,
 * in row form (a batch of row vectors, row-major arrays):
 *
 *   forward   pre_t = [x_t, 1, h_{t-1}] W                     (W = [W_ih | b | W_hh]^T)
 *             i, f, o = sigma(pre^{i,f,o}),  g = tanh(pre^g)
 *             c_t = f c_{t-1} + i g,   h_t = o tanh(c_t)
 *   backward  dh_t = dy_t + delta_{t+1} W_hh                   (total dl/dh_t)
 *             dc_t = dc_{t+1} f_{t+1} + dh_t o (1 - tanh^2 c_t)   (total dl/dc_t)
 *             delta^i = dc_t g sigma'(i)      delta^f = dc_t c_{t-1} sigma'(f)
 *             delta^g = dc_t i (1 - g^2)      delta^o = dh_t tanh(c_t) sigma'(o)
 *
 * Variants: NO_FORGET (f = 1: delta^f = 0), COUPLED (CIFG, i = 1 - f: c_t depends on
 * pre^f through both terms, delta^f = dc_t (c_{t-1} - g) sigma'(f), delta^i = 0).
 *
 * The loops are written once, in lstm_loops.h, included twice below: double, with
 * libm's exp and tanh (the tests compare it to autograd in float64 to ~1e-15), and
 * float, with the vectorisable exp and tanh below (gcc -O3 turns the unit loops into
 * AVX2/AVX-512 code; libm's calls would keep them scalar, ~10x slower), accurate to
 * a few float32 ulp (tests/test_native.py measures both against torch).
 */

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Fortran BLAS: C = alpha op(A) op(B) + beta C, column-major. */
typedef void (*sgemm_fn)(const char *, const char *, const int *, const int *, const int *,
                         const float *, const float *, const int *, const float *, const int *,
                         const float *, float *, const int *);
typedef void (*dgemm_fn)(const char *, const char *, const int *, const int *, const int *,
                         const double *, const double *, const int *, const double *,
                         const int *, const double *, double *, const int *);

enum { PLAIN = 0, NO_FORGET = 1, COUPLED = 2 };  /* as core/native/__init__.py: PLAIN, NO_FORGET, COUPLED */

/* ------------------------------------------------------------ float32 exp, sigma, tanh */

/* e^x: x = n ln2 + r with |r| <= ln2/2, e^r by Cephes' degree-7 polynomial, 2^n by
 * writing the exponent bits. Clamped to float32's normal range (e^-87.3 ~ 1.2e-38). */
static inline float exp_f32(float x) {
    x = x < -87.3f ? -87.3f : (x > 88.3f ? 88.3f : x);
    /* round(x / ln2) with the 1.5 * 2^23 trick: vectorises, unlike rintf without -ffast-math */
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f; /* ln2 split in two for an exact product */
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union { int32_t i; float f; } s;
    s.i = ((int32_t)n + 127) << 23;
    return p * s.f;
}

static inline float sigmoid_f32(float x) { return 1.0f / (1.0f + exp_f32(-x)); }

/* tanh: an odd Taylor polynomial below |x| = 0.25 (where 1 - 2/(e^2x + 1) would
 * cancel), the exp form above. */
static inline float tanh_f32(float x) {
    float a = fabsf(x);
    float a2 = a * a;
    float small = a + a * a2 * (-1.0f / 3 + a2 * (2.0f / 15 + a2 * (-17.0f / 315 + a2 *
                  (62.0f / 2835 + a2 * (-1382.0f / 155925)))));
    float large = 1.0f - 2.0f / (exp_f32(2.0f * a) + 1.0f);
    float t = a < 0.25f ? small : large;
    return copysignf(t, x);
}

static inline double sigmoid_f64(double x) { return 1.0 / (1.0 + exp(-x)); }
static inline double tanh_f64(double x) { return tanh(x); }

/* ------------------------------------------------------------------- the two loops */

#define REAL float
#define SUF f32
#define GEMM sgemm_fn
#define SIGMOID sigmoid_f32
#define TANH tanh_f32
#include "lstm_loops.h"
#undef REAL
#undef SUF
#undef GEMM
#undef SIGMOID
#undef TANH

#define REAL double
#define SUF f64
#define GEMM dgemm_fn
#define SIGMOID sigmoid_f64
#define TANH tanh_f64
#include "lstm_loops.h"

/* For tests: the float32 functions themselves, applied to n values. */
void exp_f32_n(const float *x, float *y, int n) { for (int k = 0; k < n; k++) y[k] = exp_f32(x[k]); }
void sigmoid_f32_n(const float *x, float *y, int n) { for (int k = 0; k < n; k++) y[k] = sigmoid_f32(x[k]); }
void tanh_f32_n(const float *x, float *y, int n) { for (int k = 0; k < n; k++) y[k] = tanh_f32(x[k]); }
