/* The activation-sized passes of a pooled attention gate, x * scale(pool(x)) (+ residual), for
 * float32 NCHW-contiguous CPU tensors: SE (Hu et al. 2018, arXiv:1709.01507) and both gates of
 * CBAM (Woo et al. 2018, arXiv:1807.06521). Each function is one pass over the activation where
 * PyTorch ops take several (pooling with argmax, broadcast products, scatter of max gradients).
 *
 * Two directions, as in classify/models/gating.py:
 *   space    - pool each (n, c) row over its hw positions; one scale per row (SE, CBAM channel)
 *   channels - pool each (n, position) over the c channels; one scale per position (CBAM spatial)
 *
 * Maxima keep the first index among equals (strictly greater wins), as torch.max does.
 * Built and loaded with ctypes by classify/models/gate_native.py; threads through OpenMP, which
 * resolves to the libgomp torch has already loaded (same soname), so both share one pool.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define PARALLEL_MIN 32768 /* elements below which one thread does the pass */
#define BLOCK 1024         /* positions per task in the channels direction */

/* value where keep, else 0.0f; a bit mask rather than a branch, so gcc vectorises the loop */
static inline float masked(float value, int keep) {
    int32_t bits;
    memcpy(&bits, &value, sizeof bits);
    bits &= -(int32_t)keep;
    memcpy(&value, &bits, sizeof bits);
    return value;
}

/* ---------------------------------------------------------------- space: rows of hw values */

/* Sum, maximum and the maximum's first index of one row, with `lanes` running sums and maxima
 * (each maximum with the first index it saw: strictly greater wins); the row's first maximum is
 * then the smallest index among the lanes holding the maximum. Inlined with a constant `lanes`,
 * so the lane loop is one or two vectors; 16 lanes hide the add latency on long rows, 8 keep the
 * per-row reduction short on the 8 x 8 and 4 x 4 maps' rows. */
static inline void pool_row(const float *row, int64_t hw, int lanes, float *sum, float *top,
                            int32_t *arg) {
    float lane_sum[16], lane_max[16];
    int32_t lane_arg[16];
    for (int l = 0; l < lanes; l++) {
        lane_sum[l] = lane_max[l] = row[l];
        lane_arg[l] = l;
    }
    const int64_t whole = hw - hw % lanes;
    for (int64_t i = lanes; i < whole; i += lanes) {
#pragma omp simd
        for (int l = 0; l < lanes; l++) {
            const float v = row[i + l];
            lane_sum[l] += v;
            const int32_t bigger = -(int32_t)(v > lane_max[l]); /* all ones or zero */
            lane_max[l] = v > lane_max[l] ? v : lane_max[l];
            lane_arg[l] = (lane_arg[l] & ~bigger) | ((int32_t)(i + l) & bigger);
        }
    }
    /* three short reductions over the lanes (vectorised, no serial compare chain) */
    float s = 0.0f, m = lane_max[0];
    int32_t k = INT32_MAX;
#pragma omp simd reduction(+ : s) reduction(max : m)
    for (int l = 0; l < lanes; l++) {
        s += lane_sum[l];
        m = lane_max[l] > m ? lane_max[l] : m;
    }
#pragma omp simd reduction(min : k)
    for (int l = 0; l < lanes; l++) {
        const int32_t at = lane_max[l] == m ? lane_arg[l] : INT32_MAX;
        k = at < k ? at : k;
    }
    if (k == INT32_MAX) k = 0; /* NaN maxima match no lane: keep the index in range */
    for (int64_t i = whole; i < hw; i++) {
        s += row[i];
        const int bigger = row[i] > m;
        m = bigger ? row[i] : m;
        k = bigger ? (int32_t)i : k;
    }
    *sum = s;
    *top = m;
    *arg = k;
}

/* Sum of one row with `lanes` independent partial sums (inlined with a constant `lanes`). */
static inline float sum_row(const float *row, int64_t hw, int lanes) {
    float lane[16] = {0.0f}, s = 0.0f;
    const int64_t whole = hw - hw % lanes;
    for (int64_t i = 0; i < whole; i += lanes) {
#pragma omp simd
        for (int l = 0; l < lanes; l++) lane[l] += row[i + l];
    }
    for (int l = 0; l < lanes; l++) s += lane[l];
    for (int64_t i = whole; i < hw; i++) s += row[i];
    return s;
}

void space_pool(const float *x, int64_t rows, int64_t hw, float *mean, float *max, int32_t *arg,
                int threads) {
    const float inv = 1.0f / (float)hw;
#pragma omp parallel for num_threads(threads) schedule(static) if (rows * hw >= PARALLEL_MIN)
    for (int64_t r = 0; r < rows; r++) {
        float s, m;
        int32_t k;
        if (!max) { /* mean only (SE) */
            const float *row = x + r * hw;
            mean[r] = (hw >= 256 ? sum_row(row, hw, 16) : sum_row(row, hw, 8)) * inv;
            continue;
        }
        if (hw >= 256)
            pool_row(x + r * hw, hw, 16, &s, &m, &k);
        else if (hw >= 8)
            pool_row(x + r * hw, hw, 8, &s, &m, &k);
        else
            pool_row(x + r * hw, hw, 1, &s, &m, &k);
        mean[r] = s * inv;
        if (max) {
            max[r] = m;
            arg[r] = k;
        }
    }
}

/* out = x * scale[row] (+ residual) */
void space_scale(const float *x, const float *scale, const float *residual, float *out,
                 int64_t rows, int64_t hw, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static) if (rows * hw >= PARALLEL_MIN)
    for (int64_t r = 0; r < rows; r++) {
        const float s = scale[r];
        const float *xr = x + r * hw;
        float *o = out + r * hw;
        if (residual) {
            const float *res = residual + r * hw;
#pragma omp simd
            for (int64_t i = 0; i < hw; i++) o[i] = res[i] + xr[i] * s;
        } else {
#pragma omp simd
            for (int64_t i = 0; i < hw; i++) o[i] = xr[i] * s;
        }
    }
}

static inline float dot_row(const float *g, const float *x, int64_t hw, int lanes) {
    float lane[16] = {0.0f}, s = 0.0f;
    const int64_t whole = hw - hw % lanes;
    for (int64_t i = 0; i < whole; i += lanes) {
#pragma omp simd
        for (int l = 0; l < lanes; l++) lane[l] += g[i + l] * x[i + l];
    }
    for (int l = 0; l < lanes; l++) s += lane[l];
    for (int64_t i = whole; i < hw; i++) s += g[i] * x[i];
    return s;
}

/* dscale[row] = sum_i grad * x */
void space_dot(const float *grad, const float *x, float *dscale, int64_t rows, int64_t hw,
               int threads) {
#pragma omp parallel for num_threads(threads) schedule(static) if (rows * hw >= PARALLEL_MIN)
    for (int64_t r = 0; r < rows; r++) {
        const float *g = grad + r * hw, *xr = x + r * hw;
        /* independent partial sums (16 on long rows): one vector accumulator would wait on
         * each add */
        float s = hw >= 256 ? dot_row(g, xr, hw, 16) : hw >= 8 ? dot_row(g, xr, hw, 8) : 0.0f;
        if (hw < 8) {
            for (int64_t i = 0; i < hw; i++) s += g[i] * xr[i];
        }
        dscale[r] = s;
    }
}

/* dx = grad * scale[row] + dmean[row] (already divided by hw; NULL: none), then
 * dx[arg[row]] += dmax[row] (NULL: none) */
void space_dx(const float *grad, const float *scale, const float *dmean, const float *dmax,
              const int32_t *arg, float *dx, int64_t rows, int64_t hw, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static) if (rows * hw >= PARALLEL_MIN)
    for (int64_t r = 0; r < rows; r++) {
        const float s = scale[r], m = dmean ? dmean[r] : 0.0f;
        const float *g = grad + r * hw;
        float *d = dx + r * hw;
        if (dmean) {
#pragma omp simd
            for (int64_t i = 0; i < hw; i++) d[i] = g[i] * s + m;
        } else {
#pragma omp simd
            for (int64_t i = 0; i < hw; i++) d[i] = g[i] * s;
        }
        if (dmax) d[arg[r]] += dmax[r];
    }
}

/* ------------------------------------- channels: per image, c planes of hw values, per position */

static inline int64_t tasks_of(int64_t n, int64_t hw) { return n * ((hw + BLOCK - 1) / BLOCK); }

/* mean and max (first index; max NULL: mean only) over the channels of x * cs[n, c] (cs NULL:
 * of x itself; times 1.0f is exact) */
static void pool_channels(const float *x, const float *cs, int64_t n, int64_t c, int64_t hw,
                          float *mean, float *max, int32_t *arg, int threads) {
    const float inv = 1.0f / (float)c;
    const int64_t blocks = (hw + BLOCK - 1) / BLOCK;
#pragma omp parallel for num_threads(threads) schedule(static) if (n * c * hw >= PARALLEL_MIN)
    for (int64_t t = 0; t < tasks_of(n, hw); t++) {
        const int64_t b = t / blocks, p0 = (t % blocks) * BLOCK;
        const int64_t len = hw - p0 < BLOCK ? hw - p0 : BLOCK;
        const float *img = x + b * c * hw + p0, *scale = cs ? cs + b * c : NULL;
        float s[BLOCK], m[BLOCK];
        int32_t a[BLOCK];
        const float s0 = scale ? scale[0] : 1.0f;
        for (int64_t i = 0; i < len; i++) {
            s[i] = m[i] = img[i] * s0;
            a[i] = 0;
        }
        for (int64_t k = 1; k < c; k++) {
            const float *plane = img + k * hw, sk = scale ? scale[k] : 1.0f;
#pragma omp simd
            for (int64_t i = 0; i < len; i++) {
                const float v = plane[i] * sk;
                s[i] += v;
                const int32_t bigger = -(int32_t)(v > m[i]);
                m[i] = v > m[i] ? v : m[i];
                a[i] = (a[i] & ~bigger) | ((int32_t)k & bigger);
            }
        }
        for (int64_t i = 0; i < len; i++) {
            mean[b * hw + p0 + i] = s[i] * inv;
            if (max) {
                max[b * hw + p0 + i] = m[i];
                arg[b * hw + p0 + i] = a[i];
            }
        }
    }
}

void channels_pool(const float *x, int64_t n, int64_t c, int64_t hw, float *mean, float *max,
                   int32_t *arg, int threads) {
    pool_channels(x, NULL, n, c, hw, mean, max, arg, threads);
}

/* out = x * scale[n, position] (+ residual) */
void channels_scale(const float *x, const float *scale, const float *residual, float *out,
                    int64_t n, int64_t c, int64_t hw, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static) if (n * c * hw >= PARALLEL_MIN)
    for (int64_t r = 0; r < n * c; r++) {
        const float *s = scale + (r / c) * hw, *xr = x + r * hw;
        float *o = out + r * hw;
        if (residual) {
            const float *res = residual + r * hw;
#pragma omp simd
            for (int64_t i = 0; i < hw; i++) o[i] = res[i] + xr[i] * s[i];
        } else {
#pragma omp simd
            for (int64_t i = 0; i < hw; i++) o[i] = xr[i] * s[i];
        }
    }
}

/* dss[n, position] = sum_c grad * (x * cs[n, c]) (cs NULL: of grad * x) */
static void dot_channels(const float *grad, const float *x, const float *cs, float *dss, int64_t n,
                         int64_t c, int64_t hw, int threads) {
    const int64_t blocks = (hw + BLOCK - 1) / BLOCK;
#pragma omp parallel for num_threads(threads) schedule(static) if (n * c * hw >= PARALLEL_MIN)
    for (int64_t t = 0; t < tasks_of(n, hw); t++) {
        const int64_t b = t / blocks, p0 = (t % blocks) * BLOCK;
        const int64_t len = hw - p0 < BLOCK ? hw - p0 : BLOCK;
        const float *g = grad + b * c * hw + p0, *xi = x + b * c * hw + p0;
        const float *scale = cs ? cs + b * c : NULL;
        float s[BLOCK];
        const float s0 = scale ? scale[0] : 1.0f;
        for (int64_t i = 0; i < len; i++) s[i] = g[i] * (xi[i] * s0);
        for (int64_t k = 1; k < c; k++) {
            const float sk = scale ? scale[k] : 1.0f;
#pragma omp simd
            for (int64_t i = 0; i < len; i++) s[i] += g[k * hw + i] * (xi[k * hw + i] * sk);
        }
        for (int64_t i = 0; i < len; i++) dss[b * hw + p0 + i] = s[i];
    }
}

/* dscale[n, position] = sum_c grad * x */
void channels_dot(const float *grad, const float *x, float *dscale, int64_t n, int64_t c,
                  int64_t hw, int threads) {
    dot_channels(grad, x, NULL, dscale, n, c, hw, threads);
}

/* dx = grad * scale[n, position] + dmean[n, position] (already divided by c; NULL: none), plus
 * dmax[n, position] at channel arg[n, position] (NULL: none) */
void channels_dx(const float *grad, const float *scale, const float *dmean, const float *dmax,
                 const int32_t *arg, float *dx, int64_t n, int64_t c, int64_t hw, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static) if (n * c * hw >= PARALLEL_MIN)
    for (int64_t r = 0; r < n * c; r++) {
        const int64_t b = r / c, k = r % c;
        const float *s = scale + b * hw, *g = grad + r * hw;
        const float *m = dmean ? dmean + b * hw : NULL;
        float *d = dx + r * hw;
        if (m) {
#pragma omp simd
            for (int64_t i = 0; i < hw; i++) d[i] = g[i] * s[i] + m[i];
        } else {
#pragma omp simd
            for (int64_t i = 0; i < hw; i++) d[i] = g[i] * s[i];
        }
        if (dmax) {
            const float *mx = dmax + b * hw;
            const int32_t *a = arg + b * hw, kk = (int32_t)k;
#pragma omp simd
            for (int64_t i = 0; i < hw; i++) d[i] += masked(mx[i], a[i] == kk);
        }
    }
}

/* ------------------------------------------------ CBAM: both gates, y = x * cs never stored
 * y = x * cs[n, c] (channel gate), out = y * ss[n, position] + residual (spatial gate). Pooling
 * y over the channels, the output and the whole backward are computed from x, cs and ss, so the
 * channel gate's output y and its gradient dy are never written: two activation-sized writes
 * and two reads fewer per block than running the gates one after the other. */

/* mean and max (first index) over the channels of y = x * cs */
void cbam_spatial_pool(const float *x, const float *cs, int64_t n, int64_t c, int64_t hw,
                       float *mean, float *max, int32_t *arg, int threads) {
    pool_channels(x, cs, n, c, hw, mean, max, arg, threads);
}

/* out = (x * cs) * ss + residual (residual NULL: none) */
void cbam_out(const float *x, const float *cs, const float *ss, const float *residual, float *out,
              int64_t n, int64_t c, int64_t hw, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static) if (n * c * hw >= PARALLEL_MIN)
    for (int64_t r = 0; r < n * c; r++) {
        const float *s = ss + (r / c) * hw, *xr = x + r * hw, ck = cs[r];
        float *o = out + r * hw;
        if (residual) {
            const float *res = residual + r * hw;
#pragma omp simd
            for (int64_t i = 0; i < hw; i++) o[i] = res[i] + (xr[i] * ck) * s[i];
        } else {
#pragma omp simd
            for (int64_t i = 0; i < hw; i++) o[i] = (xr[i] * ck) * s[i];
        }
    }
}

/* dss[n, position] = sum_c grad * (x * cs) */
void cbam_spatial_dot(const float *grad, const float *x, const float *cs, float *dss, int64_t n,
                      int64_t c, int64_t hw, int threads) {
    dot_channels(grad, x, cs, dss, n, c, hw, threads);
}

/* The spatial gate's input gradient at position i of channel k (pointers at its image):
 * dy = grad * ss + dmean + dmax where arg == k (dmean already divided by c). */
static inline float cbam_dy(const float *g, const float *ss, const float *dmean, const float *dmax,
                            const int32_t *arg, int32_t k, int64_t i) {
    return (g[i] * ss[i] + dmean[i]) + masked(dmax[i], arg[i] == k);
}

/* dcs[n, c] = sum over positions of dy * x, dy as in cbam_dy */
void cbam_channel_dot(const float *grad, const float *x, const float *ss, const float *dmean,
                      const float *dmax, const int32_t *arg, float *dcs, int64_t n, int64_t c,
                      int64_t hw, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static) if (n * c * hw >= PARALLEL_MIN)
    for (int64_t r = 0; r < n * c; r++) {
        const int64_t b = r / c;
        const int32_t k = (int32_t)(r % c);
        const float *g = grad + r * hw, *xr = x + r * hw, *s = ss + b * hw;
        const float *dm = dmean + b * hw, *dx = dmax + b * hw;
        const int32_t *a = arg + b * hw;
        float lane[16] = {0.0f}, total = 0.0f;
        const int64_t whole = hw - hw % 16;
        for (int64_t i = 0; i < whole; i += 16) {
#pragma omp simd
            for (int l = 0; l < 16; l++) lane[l] += cbam_dy(g, s, dm, dx, a, k, i + l) * xr[i + l];
        }
        for (int l = 0; l < 16; l++) total += lane[l];
        for (int64_t i = whole; i < hw; i++) total += cbam_dy(g, s, dm, dx, a, k, i) * xr[i];
        dcs[r] = total;
    }
}

/* dx = dy * cs + cmean (already divided by hw; NULL: none), plus cmax (NULL: none) at carg,
 * dy as in cbam_dy */
void cbam_dx(const float *grad, const float *ss, const float *dmean, const float *dmax,
             const int32_t *arg, const float *cs, const float *cmean, const float *cmax,
             const int32_t *carg, float *dx, int64_t n, int64_t c, int64_t hw, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static) if (n * c * hw >= PARALLEL_MIN)
    for (int64_t r = 0; r < n * c; r++) {
        const int64_t b = r / c;
        const int32_t k = (int32_t)(r % c);
        const float *g = grad + r * hw, *s = ss + b * hw;
        const float *dm = dmean + b * hw, *dmx = dmax + b * hw;
        const int32_t *a = arg + b * hw;
        const float ck = cs[r], mk = cmean ? cmean[r] : 0.0f;
        float *d = dx + r * hw;
        if (cmean) {
#pragma omp simd
            for (int64_t i = 0; i < hw; i++) d[i] = cbam_dy(g, s, dm, dmx, a, k, i) * ck + mk;
        } else {
#pragma omp simd
            for (int64_t i = 0; i < hw; i++) d[i] = cbam_dy(g, s, dm, dmx, a, k, i) * ck;
        }
        if (cmax) d[carg[r]] += cmax[r];
    }
}
