/* The LSTM's forward and backward loops, for one floating-point type: included by
 * lstm.c once per type, with REAL (the type), SUF (the name suffix), GEMM (its BLAS
 * gemm), SIGMOID and TANH defined. Arrays are row-major; see lstm.c for the equations. */

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)

/* One step's units, forward: gates from the pre-activations p (4H), then c, tanh c, h.
 * ``variant`` is a constant at each call (see forward_units), so its tests vanish
 * and gcc vectorises the loop. */
static inline __attribute__((always_inline)) void
CAT(forward_units_v_, SUF)(int H, int variant, const REAL *restrict p, REAL *restrict a,
                           const REAL *restrict c_prev, REAL *restrict c, REAL *restrict tc,
                           REAL *restrict h) {
    for (int j = 0; j < H; j++) {
        REAL f = variant == NO_FORGET ? (REAL)1 : SIGMOID(p[H + j]);  /* f = 1: no forget gate */
        REAL i = variant == COUPLED ? (REAL)1 - f : SIGMOID(p[j]);    /* CIFG: i = 1 - f */
        REAL g = TANH(p[2 * H + j]);
        REAL o = SIGMOID(p[3 * H + j]);
        REAL cj = f * c_prev[j] + i * g;                              /* c_t = f c_{t-1} + i g */
        REAL tcj = TANH(cj);
        a[j] = i; a[H + j] = f; a[2 * H + j] = g; a[3 * H + j] = o;
        c[j] = cj; tc[j] = tcj; h[j] = o * tcj;                       /* h_t = o tanh(c_t) */
    }
}

static void CAT(forward_units_, SUF)(int H, int variant, const REAL *restrict p, REAL *restrict a,
                                     const REAL *restrict c_prev, REAL *restrict c,
                                     REAL *restrict tc, REAL *restrict h) {
    switch (variant) {
    case NO_FORGET: CAT(forward_units_v_, SUF)(H, NO_FORGET, p, a, c_prev, c, tc, h); break;
    case COUPLED: CAT(forward_units_v_, SUF)(H, COUPLED, p, a, c_prev, c, tc, h); break;
    default: CAT(forward_units_v_, SUF)(H, PLAIN, p, a, c_prev, c, tc, h);
    }
}

/* One step's units, backward: from dl/dh_t (total) and dl/dc_{t+1}, the total dl/dc_t
 * and the gate pre-activation gradients delta_t. */
static inline __attribute__((always_inline)) void
CAT(backward_units_v_, SUF)(int H, int variant, const REAL *restrict a,
                            const REAL *restrict f_next, const REAL *restrict c_prev,
                            const REAL *restrict tc, const REAL *restrict dh,
                            const REAL *restrict dc_next, REAL *restrict dc, REAL *restrict d) {
    for (int j = 0; j < H; j++) {
        REAL i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j];
        REAL tcj = tc[j], dhj = dh[j];
        /* dl/dc_t = dl/dc_{t+1} f_{t+1} + dl/dh_t o_t (1 - tanh^2 c_t) */
        REAL dcj = dc_next[j] * f_next[j] + dhj * o * ((REAL)1 - tcj * tcj);
        dc[j] = dcj;
        /* delta^i = dc g sigma'(i); CIFG: i is no function of pre^i */
        d[j] = variant == COUPLED ? (REAL)0 : dcj * g * i * ((REAL)1 - i);
        /* delta^f = dc c_{t-1} sigma'(f); CIFG: dc (c_{t-1} - g) sigma'(f); none without f */
        d[H + j] = variant == NO_FORGET ? (REAL)0
                 : dcj * (variant == COUPLED ? c_prev[j] - g : c_prev[j]) * f * ((REAL)1 - f);
        d[2 * H + j] = dcj * i * ((REAL)1 - g * g);                   /* delta^g = dc i tanh'(g) */
        d[3 * H + j] = dhj * tcj * o * ((REAL)1 - o);                 /* delta^o = dh tanh(c) sigma'(o) */
    }
}

static void CAT(backward_units_, SUF)(int H, int variant, const REAL *restrict a,
                                      const REAL *restrict f_next, const REAL *restrict c_prev,
                                      const REAL *restrict tc, const REAL *restrict dh,
                                      const REAL *restrict dc_next, REAL *restrict dc,
                                      REAL *restrict d) {
    switch (variant) {
    case NO_FORGET: CAT(backward_units_v_, SUF)(H, NO_FORGET, a, f_next, c_prev, tc, dh, dc_next, dc, d); break;
    case COUPLED: CAT(backward_units_v_, SUF)(H, COUPLED, a, f_next, c_prev, tc, dh, dc_next, dc, d); break;
    default: CAT(backward_units_v_, SUF)(H, PLAIN, a, f_next, c_prev, tc, dh, dc_next, dc, d);
    }
}

/* xh: (T+1, B, K), row t = [x_t, 1, h_{t-1}] (h in the last H columns, written here);
 * w: (K, 4H); pre: (B, 4H) scratch; act: (T+1, B, 4H), gates i, f, g, o of each step;
 * cs: (T+1, B, H), cs[0] = c_{-1} (set by the caller), cs[t+1] = c_t; tanh_c: (T, B, H). */
int CAT(lstm_forward_, SUF)(int T, int B, int H, int K, int variant, REAL *xh, const REAL *w,
                            REAL *pre, REAL *act, REAL *cs, REAL *tanh_c, GEMM gemm) {
    const int G = 4 * H, hoff = K - H;
    const REAL one = 1, zero = 0;
    for (int t = 0; t < T; t++) {
        /* pre (B x G) = xh_t (B x K) @ w (K x G); in BLAS's column-major terms pre^T = w^T xh_t^T */
        gemm("N", "N", &G, &B, &K, &one, w, &G, xh + (long)t * B * K, &K, &zero, pre, &G);
        for (int b = 0; b < B; b++) {
            long row = (long)t * B + b;
            CAT(forward_units_, SUF)(H, variant, pre + (long)b * G, act + row * G, cs + row * H,
                                     cs + (row + B) * H, tanh_c + row * H, xh + (row + B) * K + hoff);
        }
    }
    return 0;
}

/* dy, dh: (T, B, H); w_hh: (4H, H); act: (T+1, B, 4H) with act[T] = 0 (f_T = 0);
 * cs: (T+1, B, H); dc: (T+1, B, H) and dpre: (T+1, B, 4H), their step T zeroed by the
 * caller (nothing flows back from after the last step). */
int CAT(lstm_backward_, SUF)(int T, int B, int H, int variant, const REAL *dy, const REAL *w_hh,
                             const REAL *act, const REAL *cs, const REAL *tanh_c, REAL *dh,
                             REAL *dc, REAL *dpre, GEMM gemm) {
    const int G = 4 * H;
    const REAL one = 1;
    for (int t = T - 1; t >= 0; t--) {
        REAL *dh_t = dh + (long)t * B * H;
        /* dl/dh_t = dy_t + delta_{t+1} W_hh: (B x H) += (B x G) @ (G x H) */
        memcpy(dh_t, dy + (long)t * B * H, sizeof(REAL) * (size_t)B * H);
        gemm("N", "N", &H, &B, &G, &one, w_hh, &H, dpre + (long)(t + 1) * B * G, &G, &one, dh_t, &H);
        for (int b = 0; b < B; b++) {
            long row = (long)t * B + b;
            CAT(backward_units_, SUF)(H, variant, act + row * G, act + (row + B) * G + H,
                                      cs + row * H, tanh_c + row * H, dh_t + (long)b * H,
                                      dc + (row + B) * H, dc + row * H, dpre + row * G);
        }
    }
    return 0;
}
