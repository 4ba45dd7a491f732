// The fast path of lstmkit.nn.LSTM: the recurrence of one layer in one direction, forward and backward,
// for every cell variant, in float32 and float64. Loaded by lstmkit/nn/fast.py through ctypes.
//
// Plain C++17 with a C ABI: no torch or Python headers, so it compiles in seconds. The matrix products go
// to the BLAS that torch itself links (its Fortran ``sgemm_``/``dgemm_``, handed over by lk_set_blas); the
// element-wise work of each time step is one pass over each batch row (OpenMP over rows when the step is
// large enough), with the activations written so that the compiler vectorises them.
//
// Shapes, time-major, row-major: L steps, N sequences, H cell units, P = H_out (proj_size or H), G = 4
// gate blocks (i, f, g, o), or 3 (i, g, o) with coupled gates. The layer's input projection comes in
// precomputed for all steps: xw = W_ih x + b_ih + b_hh, or with layer norm (ln_ih) the raw xw = W_ih x, which
// the kernel normalises row by row, g_ih * LN(xw) + b_ih + b_hh. Its gradient is returned as d_xw (and
// d_ln_ih, d_bias with layer norm), and torch's autograd takes it from there.
//
// Forward, one step t, row by row (the reference is lstmkit/nn/cell.py):
//   a   = xw_t + W_hh (m * h_{t-1})          or  g_ih * LN(xw_t) + b + g_hh * LN(W_hh (m * h_{t-1}))
//   i   = act_gate(a_i + p_i c_{t-1}),  f = act_gate(a_f + p_f c_{t-1})  or  1 - i,  g = act_cell(a_g)
//   cs  = f c_{t-1} + i g,              cc = clamp(cs, -clip, clip)
//   o   = act_gate(a_o + p_o cc)
//   psi = act_hidden(cc)                or  act_hidden(gamma_c * LN(cc) + beta_c)
//   hh  = o psi,                        hp = W_hr hh  (projection) or hh
//   h_t = hp + zh (h_{t-1} - hp),       c_t = cc + zc (c_{t-1} - cc)   (zoneout; zh, zc scalars or masks)
//   past a sequence's end (valid = 0) h_t = h_{t-1}, c_t = c_{t-1}.
// The backward pass (lk_backward_*) runs the steps in reverse with the intermediates the forward pass saved,
// and forms the gradients of W_hh and W_hr as one matrix product each over all steps at the end.
// lk_step_* is the streaming path: one evaluation-mode step of a stacked LSTM, every layer, at any batch
// size (own matrix-vector products at batch 1), on a state it updates in place (LSTMStream); lk_step_into_*
// is the same step from one state into another (LSTM.step, which must not modify the state it is given).
// Denormal numbers are flushed to zero inside the kernel (see FlushDenormals).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif
#if defined(__x86_64__) || defined(__SSE2__)
#include <xmmintrin.h>
#endif

extern "C" {

// Fortran BLAS, column-major, as MKL and OpenBLAS export it.
typedef void (*lk_sgemm_t)(const char*, const char*, const int*, const int*, const int*, const float*, const float*,
                           const int*, const float*, const int*, const float*, float*, const int*);
typedef void (*lk_dgemm_t)(const char*, const char*, const int*, const int*, const int*, const double*,
                           const double*, const int*, const double*, const int*, const double*, double*, const int*);

// Everything one call needs. lstmkit/nn/fast.py mirrors this layout in a ctypes.Structure: keep them equal.
struct LkArgs {
    int64_t L, N, H, P, G;
    int64_t nthreads;
    int64_t act_gate, act_cell, act_hidden;
    int64_t save;  // forward: keep every step's intermediates for the backward pass
    double clip;   // <= 0: no clipping
    double zh, zc; // zoneout weights when the masks are null (evaluation: the probabilities)
    // inputs
    const void* xw;      // (L, N, G*H)
    const void* h0;      // (N, P)
    const void* c0;      // (N, H)
    const void* w_hh;    // (G*H, P)
    const void* w_hr;    // (P, H) or null
    const void* peep;    // (G-1, H) or null
    const void* ln_hh;   // (G*H,) or null
    const void* ln_c_w;  // (H,) or null
    const void* ln_c_b;  // (H,) or null
    const void* ln_ih;   // (G*H,) or null: then xw is raw, and b_ih, b_hh (or null) are added here
    const void* b_ih;    // (G*H,) or null
    const void* b_hh;    // (G*H,) or null
    const void* rmask;   // (N, P) recurrent-dropout mask or null
    const void* zh_mask; // (L, N, P) or null
    const void* zc_mask; // (L, N, H) or null
    const uint8_t* valid;// (L, N) or null
    // outputs
    void* out;           // (L, N, P)
    void* h_n;           // (N, P)
    void* c_n;           // (N, H)
    // saved for the backward pass: (L, ...) when save, else one step's worth
    void* gates;         // (L, N, G*H) activated gates
    void* cs;            // (L, N, H) cell before clipping and zoneout
    void* cstate;        // (L, N, H) carried cell state c_t (always L steps)
    void* hin;           // (L, N, P) m * h_{t-1}; only with rmask
    void* hh;            // (L, N, H) unprojected output; only with w_hr
    void* psi;           // (L, N, H) act_hidden(...)
    void* rn;            // (L, N, G*H) normalised W_hh h; only with ln_hh
    void* r_rstd;        // (L, N); only with ln_hh
    void* c_mean;        // (L, N); only with ln_c
    void* c_rstd;        // (L, N); only with ln_c
    void* x_mean;        // (L, N); only with ln_ih
    void* x_rstd;        // (L, N); only with ln_ih
    // backward: incoming gradients (null: zero)
    const void* d_out;   // (L, N, P)
    const void* d_hn;    // (N, P)
    const void* d_cn;    // (N, H)
    // backward: outputs (null: not wanted, except d_xw)
    void* d_xw;          // (L, N, G*H)
    void* d_h0;          // (N, P)
    void* d_c0;          // (N, H)
    void* d_w_hh;        // (G*H, P)
    void* d_w_hr;        // (P, H)
    void* d_peep;        // (G-1, H)
    void* d_ln_hh;       // (G*H,)
    void* d_ln_c_w;      // (H,)
    void* d_ln_c_b;      // (H,)
    void* d_ln_ih;       // (G*H,)
    void* d_bias;        // (G*H,): the gradient of b_ih and of b_hh, with ln_ih
    void* d_r;           // (L, N, G*H) workspace; only with ln_hh or ln_ih
    void* d_hp;          // (L, N, P) workspace; only with w_hr
};

// Streaming inference, one step of a stacked unidirectional LSTM in evaluation mode (lk_step_*).
struct LkLayer {
    int64_t I;           // input size of this layer
    const void* w_ih;    // (G*H, I)
    const void* w_hh;    // (G*H, P)
    const void* b_ih;    // (G*H,) or null
    const void* b_hh;    // (G*H,) or null
    const void* w_hr;    // (P, H) or null
    const void* peep;    // (G-1, H) or null
    const void* ln_ih;   // (G*H,) or null
    const void* ln_hh;   // (G*H,) or null
    const void* ln_c_w;  // (H,) or null
    const void* ln_c_b;  // (H,) or null
    void* h;             // (N, P) state, updated in place
    void* c;             // (N, H) state, updated in place
};

struct LkStep {
    int64_t num_layers, N, H, P, G;
    int64_t act_gate, act_cell, act_hidden;
    int64_t residual;
    double clip, zh, zc;
    const LkLayer* layers;
    const void* x;       // (N, I of layer 0)
    void* y;             // (N, P): the last layer's output
    void* scratch;       // lk_step_scratch_size(...) elements of the dtype
};

// One step of lk_step_into_*: the weights and options of `plan` (its x, y, scratch and the layers' h and c are
// not read), N sequences, the state read from h_in and c_in and written to h_out and c_out, which may be the
// same memory or not. States are contiguous (num_layers, N, P) and (num_layers, N, H); null h_in and c_in
// stand for zeros. The scratch memory is the calling thread's own, so concurrent calls on one plan are safe.
struct LkStepInto {
    const LkStep* plan;
    int64_t N;
    const void* x;       // (N, I of layer 0)
    void* y;             // (N, P): the last layer's output
    const void* h_in;    // (num_layers, N, P) or null
    const void* c_in;    // (num_layers, N, H) or null
    void* h_out;         // (num_layers, N, P)
    void* c_out;         // (num_layers, N, H)
};

}  // extern "C"

namespace {

lk_sgemm_t g_sgemm = nullptr;
lk_dgemm_t g_dgemm = nullptr;

constexpr double kLayerNormEps = 1e-5;

// Flushes denormal numbers to zero (x86 FTZ and DAZ) while in scope, on the calling thread. Gradients that
// decay through many steps reach the denormal range, where every float operation costs ~100 cycles; values
// below 1.2e-38 (float) or 2.2e-308 (double) then count as zero, which no tolerance can see.
struct FlushDenormals {
#if defined(__x86_64__) || defined(__SSE2__)
    unsigned int saved;
    FlushDenormals() : saved(_mm_getcsr()) { _mm_setcsr(saved | 0x8040); }
    ~FlushDenormals() { _mm_setcsr(saved); }
#endif
};

enum Activation : int64_t { kSigmoid = 0, kHardSigmoid = 1, kTanh = 2, kRelu = 3, kElu = 4, kSoftsign = 5 };

// Row-major C (M x N) = alpha op(A) op(B) + beta C, through the column-major BLAS: C^T = op(B)^T op(A)^T.
inline void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                 const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
    if (M == 0 || N == 0) return;
    const int m = (int)N, n = (int)M, k = (int)K, la = (int)ldb, lb = (int)lda, lc = (int)ldc;
    const char a = tb ? 'T' : 'N', b = ta ? 'T' : 'N';
    g_sgemm(&a, &b, &m, &n, &k, &alpha, B, &la, A, &lb, &beta, C, &lc);
}
inline void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t lda,
                 const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
    if (M == 0 || N == 0) return;
    const int m = (int)N, n = (int)M, k = (int)K, la = (int)ldb, lb = (int)lda, lc = (int)ldc;
    const char a = tb ? 'T' : 'N', b = ta ? 'T' : 'N';
    g_dgemm(&a, &b, &m, &n, &k, &alpha, B, &la, A, &lb, &beta, C, &lc);
}

// --- Element-wise functions --------------------------------------------------------------------------------
// float: polynomial exp and tanh (Cephes' expf and tanhf, about 1 ulp) that the compiler vectorises;
// double: the C library's, so that float64 gradient checks see exact functions.

inline float exp_approx(float x) {
    x = std::min(std::max(x, -87.3f), 88.7f);
    float n = std::floor(x * 1.44269504088896341f + 0.5f);
    float r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    std::memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

inline float tanh_approx(float x) {
    float a = std::fabs(x);
    float z = x * x;
    float small = ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z +
                    1.33314422036e-1f) * z - 3.33332819422e-1f) * z * x + x;
    float e = exp_approx(std::min(2.0f * a, 88.0f));
    float large = 1.0f - 2.0f / (e + 1.0f);
    large = x < 0.0f ? -large : large;
    return a < 0.625f ? small : large;
}

inline float sigmoid_of(float x) { return 1.0f / (1.0f + exp_approx(-x)); }
inline double sigmoid_of(double x) { return 1.0 / (1.0 + std::exp(-x)); }
inline float tanh_of(float x) { return tanh_approx(x); }
inline double tanh_of(double x) { return std::tanh(x); }
inline float expm1_of(float x) { return exp_approx(x) - 1.0f; }
inline double expm1_of(double x) { return std::expm1(x); }

template <typename T>
void activate(int64_t kind, T* __restrict x, int64_t n) {
    switch (kind) {
        case kSigmoid:
            for (int64_t j = 0; j < n; ++j) x[j] = sigmoid_of(x[j]);
            break;
        case kHardSigmoid:
            for (int64_t j = 0; j < n; ++j) x[j] = std::min(std::max(T(0.2) * x[j] + T(0.5), T(0)), T(1));
            break;
        case kTanh:
            for (int64_t j = 0; j < n; ++j) x[j] = tanh_of(x[j]);
            break;
        case kRelu:
            for (int64_t j = 0; j < n; ++j) x[j] = x[j] > T(0) ? x[j] : T(0);
            break;
        case kElu:
            for (int64_t j = 0; j < n; ++j) x[j] = x[j] > T(0) ? x[j] : expm1_of(std::min(x[j], T(0)));
            break;
        case kSoftsign:
            for (int64_t j = 0; j < n; ++j) x[j] = x[j] / (T(1) + std::fabs(x[j]));
            break;
    }
}

// dx = dy * act'(x), written in terms of the output y = act(x) (each derivative is a function of y).
template <typename T>
void activation_backward(int64_t kind, const T* __restrict y, T* __restrict d, int64_t n) {
    switch (kind) {
        case kSigmoid:
            for (int64_t j = 0; j < n; ++j) d[j] *= y[j] * (T(1) - y[j]);
            break;
        case kHardSigmoid:
            for (int64_t j = 0; j < n; ++j) d[j] = (y[j] > T(0) && y[j] < T(1)) ? T(0.2) * d[j] : T(0);
            break;
        case kTanh:
            for (int64_t j = 0; j < n; ++j) d[j] *= T(1) - y[j] * y[j];
            break;
        case kRelu:
            for (int64_t j = 0; j < n; ++j) d[j] = y[j] > T(0) ? d[j] : T(0);
            break;
        case kElu:
            for (int64_t j = 0; j < n; ++j) d[j] = y[j] > T(0) ? d[j] : d[j] * (y[j] + T(1));
            break;
        case kSoftsign:
            for (int64_t j = 0; j < n; ++j) {
                T s = T(1) - std::fabs(y[j]);
                d[j] *= s * s;
            }
            break;
    }
}

// mean and 1 / sqrt(var + eps) of x[0:n], two passes, summed in double (as accurate as torch's layer_norm).
template <typename T>
void row_stats(const T* __restrict x, int64_t n, T* mean_out, T* rstd_out) {
    double sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < n; ++j) sum += x[j];
    const double mean = sum / double(n);
    double sq = 0;
#pragma omp simd reduction(+ : sq)
    for (int64_t j = 0; j < n; ++j) {
        double d = x[j] - mean;
        sq += d * d;
    }
    *mean_out = T(mean);
    *rstd_out = T(1.0 / std::sqrt(sq / double(n) + kLayerNormEps));
}

// Gradient of y = LN(x) (no affine part) given dy, xhat = LN(x) and rstd, into dx (may alias dy).
template <typename T>
void layer_norm_backward(const T* __restrict xhat, T rstd, const T* dy, T* dx, int64_t n) {
    double s1 = 0, s2 = 0;
#pragma omp simd reduction(+ : s1, s2)
    for (int64_t j = 0; j < n; ++j) {
        s1 += dy[j];
        s2 += double(dy[j]) * xhat[j];
    }
    const T m1 = T(s1 / double(n)), m2 = T(s2 / double(n));
    for (int64_t j = 0; j < n; ++j) dx[j] = rstd * (dy[j] - m1 - xhat[j] * m2);
}

inline int thread_count(const LkArgs& a, int64_t work) {
#ifdef _OPENMP
    // OpenMP's fork and join costs more than it saves on small steps.
    return (a.nthreads > 1 && work >= 16384) ? (int)a.nthreads : 1;
#else
    (void)a;
    (void)work;
    return 1;
#endif
}

inline int thread_id() {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

// The element-wise part of one step for rows [0, N): the gates in `gates` hold the pre-activations
// (input and recurrent halves already summed) and are activated in place; writes cs, psi, hh (projection)
// or h_t (no projection), and c_t. `step` indexes the zoneout masks and `valid`.
template <typename T>
void cell_rows(const LkArgs& a, int64_t step, T* gates, const T* hprev, const T* cprev, T* cs, T* psi, T* hh,
               T* c_mean, T* c_rstd, T* h_out, T* c_out) {
    const int64_t N = a.N, H = a.H, P = a.P, G = a.G, GH = G * H;
    const bool coupled = G == 3;
    const T* peep = (const T*)a.peep;
    const T* ln_c_w = (const T*)a.ln_c_w;
    const T* ln_c_b = (const T*)a.ln_c_b;
    const T clip = (T)a.clip;
    const T* zh_mask = a.zh_mask ? (const T*)a.zh_mask + step * N * P : nullptr;
    const T* zc_mask = a.zc_mask ? (const T*)a.zc_mask + step * N * H : nullptr;
    const uint8_t* valid = a.valid ? a.valid + step * N : nullptr;
    const T zh = (T)a.zh, zc = (T)a.zc;
    const bool project = a.w_hr != nullptr;
    const int nt = thread_count(a, N * GH);

#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int64_t n = 0; n < N; ++n) {
        FlushDenormals guard;  // on each OpenMP thread
        T* g_row = gates + n * GH;
        T* gi = g_row;
        T* gf = coupled ? nullptr : g_row + H;
        T* gg = g_row + (coupled ? 1 : 2) * H;
        T* go = g_row + (coupled ? 2 : 3) * H;
        const T* cp = cprev + n * H;
        T* cs_row = cs + n * H;
        T* psi_row = psi + n * H;
        if (peep) {
            for (int64_t j = 0; j < H; ++j) gi[j] += peep[j] * cp[j];
            if (!coupled)
                for (int64_t j = 0; j < H; ++j) gf[j] += peep[H + j] * cp[j];
        }
        activate(a.act_gate, gi, H);
        if (!coupled) activate(a.act_gate, gf, H);
        activate(a.act_cell, gg, H);
        // cell update; psi_row holds the clipped cell cc for now
        if (coupled) {
            for (int64_t j = 0; j < H; ++j) cs_row[j] = (T(1) - gi[j]) * cp[j] + gi[j] * gg[j];
        } else {
            for (int64_t j = 0; j < H; ++j) cs_row[j] = gf[j] * cp[j] + gi[j] * gg[j];
        }
        if (clip > 0) {
            for (int64_t j = 0; j < H; ++j) psi_row[j] = std::min(std::max(cs_row[j], -clip), clip);
        } else {
            std::memcpy(psi_row, cs_row, H * sizeof(T));
        }
        if (peep) {
            const T* po = peep + (G - 2) * H;
            for (int64_t j = 0; j < H; ++j) go[j] += po[j] * psi_row[j];
        }
        activate(a.act_gate, go, H);
        // the carried cell state, before psi_row is overwritten
        const bool ok = valid == nullptr || valid[n];
        T* c_row = c_out + n * H;
        if (!ok) {
            std::memmove(c_row, cp, H * sizeof(T));
        } else if (zc_mask) {
            const T* z = zc_mask + n * H;
            for (int64_t j = 0; j < H; ++j) c_row[j] = psi_row[j] + z[j] * (cp[j] - psi_row[j]);
        } else if (zc != T(0)) {
            for (int64_t j = 0; j < H; ++j) c_row[j] = psi_row[j] + zc * (cp[j] - psi_row[j]);
        } else if (c_row != psi_row) {
            std::memmove(c_row, psi_row, H * sizeof(T));
        }
        if (ln_c_w) {
            T mean, rstd;
            row_stats(psi_row, H, &mean, &rstd);
            c_mean[n] = mean;
            c_rstd[n] = rstd;
            for (int64_t j = 0; j < H; ++j) psi_row[j] = (psi_row[j] - mean) * rstd * ln_c_w[j] + ln_c_b[j];
        }
        activate(a.act_hidden, psi_row, H);
        if (project) {
            T* hh_row = hh + n * H;
            for (int64_t j = 0; j < H; ++j) hh_row[j] = go[j] * psi_row[j];
        } else {
            const T* hp = hprev + n * P;
            T* h_row = h_out + n * P;
            if (!ok) {
                std::memmove(h_row, hp, P * sizeof(T));
            } else if (zh_mask) {
                const T* z = zh_mask + n * P;
                for (int64_t j = 0; j < P; ++j) {
                    T v = go[j] * psi_row[j];
                    h_row[j] = v + z[j] * (hp[j] - v);
                }
            } else {
                for (int64_t j = 0; j < P; ++j) {
                    T v = go[j] * psi_row[j];
                    h_row[j] = v + zh * (hp[j] - v);
                }
            }
        }
    }
}

// With a projection: h_t from the projected rows `proj` (N, P), zoneout and lengths.
template <typename T>
void projected_rows(const LkArgs& a, int64_t step, const T* proj, const T* hprev, T* h_out) {
    const int64_t N = a.N, P = a.P;
    const T* zh_mask = a.zh_mask ? (const T*)a.zh_mask + step * N * P : nullptr;
    const uint8_t* valid = a.valid ? a.valid + step * N : nullptr;
    const T zh = (T)a.zh;
    for (int64_t n = 0; n < N; ++n) {
        const T* v = proj + n * P;
        const T* hp = hprev + n * P;
        T* h_row = h_out + n * P;
        if (valid && !valid[n]) {
            std::memmove(h_row, hp, P * sizeof(T));
        } else if (zh_mask) {
            const T* z = zh_mask + n * P;
            for (int64_t j = 0; j < P; ++j) h_row[j] = v[j] + z[j] * (hp[j] - v[j]);
        } else {
            for (int64_t j = 0; j < P; ++j) h_row[j] = v[j] + zh * (hp[j] - v[j]);
        }
    }
}

// Layer-normalise the recurrent rows r (N, G*H) into rn with their rstd, and add g_hh * rn to gates.
template <typename T>
void recurrent_layer_norm(const LkArgs& a, const T* r, T* rn, T* rstd, T* gates) {
    const int64_t N = a.N, GH = a.G * a.H;
    const T* g = (const T*)a.ln_hh;
    const int nt = thread_count(a, N * GH);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int64_t n = 0; n < N; ++n) {
        FlushDenormals guard;  // on each OpenMP thread
        const T* r_row = r + n * GH;
        T* rn_row = rn + n * GH;
        T* g_row = gates + n * GH;
        T mean, s;
        row_stats(r_row, GH, &mean, &s);
        rstd[n] = s;
        for (int64_t j = 0; j < GH; ++j) {
            rn_row[j] = (r_row[j] - mean) * s;
            g_row[j] += g[j] * rn_row[j];
        }
    }
}

// gates (N, G*H) = g_ih * LN(xw) + b_ih + b_hh, row by row, keeping each row's mean and rstd.
template <typename T>
void input_layer_norm(const LkArgs& a, const T* xw, T* gates, T* mean, T* rstd) {
    const int64_t N = a.N, GH = a.G * a.H;
    const T* g = (const T*)a.ln_ih;
    const T* b_ih = (const T*)a.b_ih;
    const T* b_hh = (const T*)a.b_hh;
    const int nt = thread_count(a, N * GH);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int64_t n = 0; n < N; ++n) {
        FlushDenormals guard;  // on each OpenMP thread
        const T* x = xw + n * GH;
        T* out = gates + n * GH;
        T m, s;
        row_stats(x, GH, &m, &s);
        mean[n] = m;
        rstd[n] = s;
        for (int64_t j = 0; j < GH; ++j) out[j] = (x[j] - m) * s * g[j];
        if (b_ih)
            for (int64_t j = 0; j < GH; ++j) out[j] += b_ih[j] + b_hh[j];
    }
}

template <typename T>
void forward(const LkArgs& a) {
    FlushDenormals guard;
    const int64_t L = a.L, N = a.N, H = a.H, P = a.P, GH = a.G * a.H;
    const int64_t s = a.save ? 1 : 0;  // step stride of the saved intermediates
    const T* xw = (const T*)a.xw;
    const T* w_hh = (const T*)a.w_hh;
    const T* rmask = (const T*)a.rmask;
    T* out = (T*)a.out;
    T* cstate = (T*)a.cstate;
    std::vector<T> scratch(N * (GH + P));
    T* r = scratch.data();       // (N, G*H): W_hh h with layer norm
    T* proj = r + N * GH;        // (N, P): W_hr hh
    for (int64_t t = 0; t < L; ++t) {
        const T* hprev = t == 0 ? (const T*)a.h0 : out + (t - 1) * N * P;
        const T* cprev = t == 0 ? (const T*)a.c0 : cstate + (t - 1) * N * H;
        const T* hin = hprev;
        if (rmask) {
            T* buf = (T*)a.hin + s * t * N * P;
            for (int64_t k = 0; k < N * P; ++k) buf[k] = hprev[k] * rmask[k];
            hin = buf;
        }
        T* gates = (T*)a.gates + s * t * N * GH;
        if (a.ln_ih) {
            input_layer_norm<T>(a, xw + t * N * GH, gates, (T*)a.x_mean + s * t * N, (T*)a.x_rstd + s * t * N);
        } else {
            std::memcpy(gates, xw + t * N * GH, N * GH * sizeof(T));
        }
        if (a.ln_hh) {
            gemm(false, true, N, GH, P, T(1), hin, P, w_hh, P, T(0), r, GH);
            recurrent_layer_norm<T>(a, r, (T*)a.rn + s * t * N * GH, (T*)a.r_rstd + s * t * N, gates);
        } else {
            gemm(false, true, N, GH, P, T(1), hin, P, w_hh, P, T(1), gates, GH);
        }
        T* hh = a.w_hr ? (T*)a.hh + s * t * N * H : nullptr;
        T* c_mean = a.ln_c_w ? (T*)a.c_mean + s * t * N : nullptr;
        T* c_rstd = a.ln_c_w ? (T*)a.c_rstd + s * t * N : nullptr;
        cell_rows<T>(a, t, gates, hprev, cprev, (T*)a.cs + s * t * N * H, (T*)a.psi + s * t * N * H, hh, c_mean,
                     c_rstd, out + t * N * P, cstate + t * N * H);
        if (a.w_hr) {
            gemm(false, true, N, P, H, T(1), hh, H, (const T*)a.w_hr, H, T(0), proj, P);
            projected_rows<T>(a, t, proj, hprev, out + t * N * P);
        }
    }
    std::memcpy(a.h_n, out + (L - 1) * N * P, N * P * sizeof(T));
    std::memcpy(a.c_n, cstate + (L - 1) * N * H, N * H * sizeof(T));
}

template <typename T>
void backward(const LkArgs& a) {
    FlushDenormals guard;
    const int64_t L = a.L, N = a.N, H = a.H, P = a.P, G = a.G, GH = G * H;
    const bool coupled = G == 3;
    const T* w_hh = (const T*)a.w_hh;
    const T* w_hr = (const T*)a.w_hr;
    const T* peep = (const T*)a.peep;
    const T* ln_hh = (const T*)a.ln_hh;
    const T* ln_c_w = (const T*)a.ln_c_w;
    const T* ln_ih = (const T*)a.ln_ih;
    const T* xw_all = (const T*)a.xw;
    const T* rmask = (const T*)a.rmask;
    const T* out = (const T*)a.out;
    const T* cstate = (const T*)a.cstate;
    const T* d_out = (const T*)a.d_out;
    const T clip = (T)a.clip;
    const T zh = (T)a.zh, zc = (T)a.zc;
    T* d_xw = (T*)a.d_xw;
    const bool own_d_r = ln_hh || ln_ih;      // else the gradient of W_hh h is d_xw itself
    T* d_r_all = own_d_r ? (T*)a.d_r : d_xw;  // gradient of W_hh h, per step
    T* d_hp_all = (T*)a.d_hp;

    std::vector<T> dh(N * P, T(0)), dc(N * H, T(0)), dcc_state(N * H), dhh_buf(w_hr ? N * H : 0), dhin(N * P);
    if (a.d_hn) std::memcpy(dh.data(), a.d_hn, N * P * sizeof(T));
    if (a.d_cn) std::memcpy(dc.data(), a.d_cn, N * H * sizeof(T));

    // per-thread sums of the diagonal parameters' gradients: peephole (G-1)H, ln_c weight H, bias H, ln_hh GH,
    // ln_ih GH, b GH; and per-thread room for one normalised input row
    const int max_threads = (int)std::max<int64_t>(a.nthreads, 1);
    const int64_t acc_size = (G - 1) * H + 2 * H + 3 * GH;
    std::vector<double> acc((size_t)max_threads * acc_size, 0.0);  // double: sums over all steps and rows
    std::vector<T> row_buffer(ln_ih ? (size_t)max_threads * GH : 0);

    for (int64_t t = L - 1; t >= 0; --t) {
        const uint8_t* valid = a.valid ? a.valid + t * N : nullptr;
        const T* zh_mask = a.zh_mask ? (const T*)a.zh_mask + t * N * P : nullptr;
        const T* zc_mask = a.zc_mask ? (const T*)a.zc_mask + t * N * H : nullptr;
        const T* cprev = t == 0 ? (const T*)a.c0 : cstate + (t - 1) * N * H;
        const T* gates = (const T*)a.gates + t * N * GH;
        const T* cs = (const T*)a.cs + t * N * H;
        const T* psi = (const T*)a.psi + t * N * H;
        const T* rn = ln_hh ? (const T*)a.rn + t * N * GH : nullptr;
        const T* r_rstd = ln_hh ? (const T*)a.r_rstd + t * N : nullptr;
        const T* c_mean = ln_c_w ? (const T*)a.c_mean + t * N : nullptr;
        const T* c_rstd = ln_c_w ? (const T*)a.c_rstd + t * N : nullptr;
        const T* x_mean = ln_ih ? (const T*)a.x_mean + t * N : nullptr;
        const T* x_rstd = ln_ih ? (const T*)a.x_rstd + t * N : nullptr;
        const T* xw_t = ln_ih ? xw_all + t * N * GH : nullptr;
        T* d_xw_t = d_xw + t * N * GH;
        T* d_r_t = d_r_all + t * N * GH;
        T* d_hp_t = w_hr ? d_hp_all + t * N * P : nullptr;
        if (d_out) {
            const T* g = d_out + t * N * P;
            for (int64_t k = 0; k < N * P; ++k) dh[k] += g[k];
        }
        // Stage A: through lengths and zoneout; dh, dc keep what flows on to step t-1.
        T* dhh = w_hr ? dhh_buf.data() : nullptr;
        for (int64_t n = 0; n < N; ++n) {
            T* dh_row = dh.data() + n * P;
            T* dc_row = dc.data() + n * H;
            T* dcs_row = dcc_state.data() + n * H;
            T* dhp = w_hr ? d_hp_t + n * P : nullptr;
            if (valid && !valid[n]) {
                if (dhp) std::fill(dhp, dhp + P, T(0));
                continue;
            }
            if (zh_mask) {
                const T* z = zh_mask + n * P;
                if (w_hr) {
                    for (int64_t j = 0; j < P; ++j) {
                        dhp[j] = (T(1) - z[j]) * dh_row[j];
                        dh_row[j] *= z[j];
                    }
                }
            } else if (w_hr) {
                for (int64_t j = 0; j < P; ++j) {
                    dhp[j] = (T(1) - zh) * dh_row[j];
                    dh_row[j] *= zh;
                }
            }
            if (zc_mask) {
                const T* z = zc_mask + n * H;
                for (int64_t j = 0; j < H; ++j) {
                    dcs_row[j] = (T(1) - z[j]) * dc_row[j];
                    dc_row[j] *= z[j];
                }
            } else {
                for (int64_t j = 0; j < H; ++j) {
                    dcs_row[j] = (T(1) - zc) * dc_row[j];
                    dc_row[j] *= zc;
                }
            }
        }
        if (w_hr) gemm(false, false, N, H, P, T(1), d_hp_t, P, w_hr, H, T(0), dhh, H);

        // Stage B: through the cell, row by row, into d_xw (and d_r with layer norm); dc gets c_{t-1}'s share.
        const int nt = thread_count(a, N * GH);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
        for (int64_t n = 0; n < N; ++n) {
            FlushDenormals guard;  // on each OpenMP thread
            T* dxw = d_xw_t + n * GH;
            T* dr = d_r_t + n * GH;
            if (valid && !valid[n]) {
                std::fill(dxw, dxw + GH, T(0));
                if (own_d_r) std::fill(dr, dr + GH, T(0));
                continue;
            }
            double* my_acc = acc.data() + (size_t)thread_id() * acc_size;
            double* acc_peep = my_acc;
            double* acc_ln_w = my_acc + (G - 1) * H;
            double* acc_ln_b = acc_ln_w + H;
            double* acc_ln_hh = acc_ln_b + H;
            double* acc_ln_ih = acc_ln_hh + GH;
            double* acc_bias = acc_ln_ih + GH;
            const T* g_row = gates + n * GH;
            const T* gi = g_row;
            const T* gf = coupled ? nullptr : g_row + H;
            const T* gg = g_row + (coupled ? 1 : 2) * H;
            const T* go = g_row + (coupled ? 2 : 3) * H;
            T* dai = dxw;
            T* daf = coupled ? nullptr : dxw + H;
            T* dag = dxw + (coupled ? 1 : 2) * H;
            T* dao = dxw + (coupled ? 2 : 3) * H;
            const T* cp = cprev + n * H;
            const T* cs_row = cs + n * H;
            const T* psi_row = psi + n * H;
            T* dc_row = dc.data() + n * H;
            const T* dcs_row = dcc_state.data() + n * H;
            // h = zoneout(o * psi): the gradient of o * psi, projected back when there is a projection
            const T* dhv;
            T* dcc = dag;  // dcn, then the gradient of cc, lives in the g slot until g's turn
            if (w_hr) {
                dhv = dhh + n * H;
            } else {
                T* dh_row = dh.data() + n * P;
                T* tmp = dai;  // the gradient of o * psi, in the i slot until i's turn
                if (zh_mask) {
                    const T* z = zh_mask + n * P;
                    for (int64_t j = 0; j < P; ++j) {
                        tmp[j] = (T(1) - z[j]) * dh_row[j];
                        dh_row[j] *= z[j];
                    }
                } else {
                    for (int64_t j = 0; j < P; ++j) {
                        tmp[j] = (T(1) - zh) * dh_row[j];
                        dh_row[j] *= zh;
                    }
                }
                dhv = tmp;
            }
            for (int64_t j = 0; j < H; ++j) {
                T d = dhv[j];
                dao[j] = d * psi_row[j];
                dcc[j] = d * go[j];
            }
            activation_backward(a.act_gate, go, dao, H);
            activation_backward(a.act_hidden, psi_row, dcc, H);
            if (ln_c_w) {
                const T mean = c_mean[n], rstd = c_rstd[n];
                // xhat in the f slot (free until f's turn), or in dai's slot with coupled gates
                T* xhat = coupled ? dai : daf;
                for (int64_t j = 0; j < H; ++j) {
                    T cc = clip > 0 ? std::min(std::max(cs_row[j], -clip), clip) : cs_row[j];
                    xhat[j] = (cc - mean) * rstd;
                    acc_ln_w[j] += dcc[j] * xhat[j];
                    acc_ln_b[j] += dcc[j];
                    dcc[j] *= ln_c_w[j];
                }
                layer_norm_backward(xhat, rstd, dcc, dcc, H);
            }
            for (int64_t j = 0; j < H; ++j) dcc[j] += dcs_row[j];
            if (peep) {
                const T* po = peep + (G - 2) * H;
                double* acc_po = acc_peep + (G - 2) * H;
                for (int64_t j = 0; j < H; ++j) {
                    T cc = clip > 0 ? std::min(std::max(cs_row[j], -clip), clip) : cs_row[j];
                    dcc[j] += dao[j] * po[j];
                    acc_po[j] += dao[j] * cc;
                }
            }
            if (clip > 0) {
                for (int64_t j = 0; j < H; ++j) dcc[j] = std::fabs(cs_row[j]) <= clip ? dcc[j] : T(0);
            }
            // dcc is now the gradient of cs = f c_{t-1} + i g
            if (coupled) {
                for (int64_t j = 0; j < H; ++j) {
                    T d = dcc[j];
                    dc_row[j] += d * (T(1) - gi[j]);
                    dai[j] = d * (gg[j] - cp[j]);
                    dag[j] = d * gi[j];
                }
            } else {
                for (int64_t j = 0; j < H; ++j) {
                    T d = dcc[j];
                    dc_row[j] += d * gf[j];
                    dai[j] = d * gg[j];
                    daf[j] = d * cp[j];
                    dag[j] = d * gi[j];
                }
                activation_backward(a.act_gate, gf, daf, H);
            }
            activation_backward(a.act_gate, gi, dai, H);
            activation_backward(a.act_cell, gg, dag, H);
            if (peep) {
                for (int64_t j = 0; j < H; ++j) {
                    dc_row[j] += dai[j] * peep[j];
                    acc_peep[j] += dai[j] * cp[j];
                }
                if (!coupled) {
                    for (int64_t j = 0; j < H; ++j) {
                        dc_row[j] += daf[j] * peep[H + j];
                        acc_peep[H + j] += daf[j] * cp[j];
                    }
                }
            }
            if (ln_hh) {
                const T* rn_row = rn + n * GH;
                for (int64_t j = 0; j < GH; ++j) {
                    acc_ln_hh[j] += dxw[j] * rn_row[j];
                    dr[j] = dxw[j] * ln_hh[j];
                }
                layer_norm_backward(rn_row, r_rstd[n], dr, dr, GH);
            } else if (ln_ih) {
                std::memcpy(dr, dxw, GH * sizeof(T));
            }
            if (ln_ih) {  // d_xw holds the gradient of the gates; through g_ih * LN(xw) + b to the raw xw
                T* xn = row_buffer.data() + (size_t)thread_id() * GH;
                const T* x = xw_t + n * GH;
                const T mean = x_mean[n], rstd = x_rstd[n];
                for (int64_t j = 0; j < GH; ++j) {
                    xn[j] = (x[j] - mean) * rstd;
                    acc_ln_ih[j] += dxw[j] * xn[j];
                    acc_bias[j] += dxw[j];
                    dxw[j] *= ln_ih[j];
                }
                layer_norm_backward(xn, rstd, dxw, dxw, GH);
            }
        }
        // Stage C: into h_{t-1} through W_hh.
        gemm(false, false, N, P, GH, T(1), d_r_t, GH, w_hh, P, T(0), dhin.data(), P);
        if (rmask) {
            for (int64_t k = 0; k < N * P; ++k) dh[k] += dhin[k] * rmask[k];
        } else {
            for (int64_t k = 0; k < N * P; ++k) dh[k] += dhin[k];
        }
    }
    if (a.d_h0) std::memcpy(a.d_h0, dh.data(), N * P * sizeof(T));
    if (a.d_c0) std::memcpy(a.d_c0, dc.data(), N * H * sizeof(T));

    // The weights' gradients, one matrix product each over all steps.
    if (a.d_w_hh) {
        T* dw = (T*)a.d_w_hh;
        if (rmask) {
            gemm(true, false, GH, P, L * N, T(1), d_r_all, GH, (const T*)a.hin, P, T(0), dw, P);
        } else {
            gemm(true, false, GH, P, N, T(1), d_r_all, GH, (const T*)a.h0, P, T(0), dw, P);
            if (L > 1) gemm(true, false, GH, P, (L - 1) * N, T(1), d_r_all + N * GH, GH, out, P, T(1), dw, P);
        }
    }
    if (a.d_w_hr) {
        gemm(true, false, P, H, L * N, T(1), d_hp_all, P, (const T*)a.hh, H, T(0), (T*)a.d_w_hr, H);
    }
    auto reduce = [&](void* dst, int64_t offset, int64_t size) {
        if (!dst) return;
        T* d = (T*)dst;
        for (int64_t j = 0; j < size; ++j) {
            double sum = 0;
            for (int th = 0; th < max_threads; ++th) sum += acc[(size_t)th * acc_size + offset + j];
            d[j] = T(sum);
        }
    };
    reduce(a.d_peep, 0, (G - 1) * H);
    reduce(a.d_ln_c_w, (G - 1) * H, H);
    reduce(a.d_ln_c_b, G * H, H);
    reduce(a.d_ln_hh, (G + 1) * H, GH);
    reduce(a.d_ln_ih, (G + 1) * H + GH, GH);
    reduce(a.d_bias, (G + 1) * H + 2 * GH, GH);
}

// y (M) = W (M x K, row-major) x (K), or y += W x. Four rows at a time with two vector accumulators each:
// eight independent FMA chains hide the FMA latency, and each load of x serves four rows.
#if defined(__AVX512F__)
constexpr int kVectorBytes = 64;
#else
constexpr int kVectorBytes = 32;
#endif

template <typename T>
void matvec(const T* __restrict W, int64_t M, int64_t K, const T* __restrict x, T* __restrict y, bool accumulate) {
    typedef T vec __attribute__((vector_size(kVectorBytes), aligned(sizeof(T))));
    constexpr int64_t V = kVectorBytes / sizeof(T);
    const int64_t k_vec = K / (2 * V) * (2 * V);
    auto hsum = [](vec v) {
        T s = 0;
        for (int64_t i = 0; i < V; ++i) s += v[i];
        return s;
    };
    int64_t j = 0;
    for (; j + 4 <= M; j += 4) {
        const T* w[4] = {W + j * K, W + (j + 1) * K, W + (j + 2) * K, W + (j + 3) * K};
        vec acc[4][2] = {};
        for (int64_t k = 0; k < k_vec; k += 2 * V) {
            const vec x0 = *(const vec*)(x + k), x1 = *(const vec*)(x + k + V);
            for (int r = 0; r < 4; ++r) {
                acc[r][0] += *(const vec*)(w[r] + k) * x0;
                acc[r][1] += *(const vec*)(w[r] + k + V) * x1;
            }
        }
        for (int r = 0; r < 4; ++r) {
            T s = hsum(acc[r][0] + acc[r][1]);
            for (int64_t k = k_vec; k < K; ++k) s += w[r][k] * x[k];
            y[j + r] = accumulate ? y[j + r] + s : s;
        }
    }
    for (; j < M; ++j) {
        const T* w = W + j * K;
        T s = 0;
        for (int64_t k = 0; k < K; ++k) s += w[k] * x[k];
        y[j] = accumulate ? y[j] + s : s;
    }
}

#if defined(__AVX2__) && defined(__FMA__)
// float on AVX2: eight rows at a time, one accumulator each, reduced together by a transposing
// horizontal add (a per-row horizontal sum would cost more than the products at K = 128).
template <>
void matvec<float>(const float* __restrict W, int64_t M, int64_t K, const float* __restrict x, float* __restrict y,
                   bool accumulate) {
    const int64_t k_vec = K / 8 * 8;
    int64_t j = 0;
    for (; j + 8 <= M; j += 8) {
        const float* w = W + j * K;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
        for (int64_t k = 0; k < k_vec; k += 8) {
            const __m256 xv = _mm256_loadu_ps(x + k);
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + k), xv, a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + K + k), xv, a1);
            a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w + 2 * K + k), xv, a2);
            a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w + 3 * K + k), xv, a3);
            a4 = _mm256_fmadd_ps(_mm256_loadu_ps(w + 4 * K + k), xv, a4);
            a5 = _mm256_fmadd_ps(_mm256_loadu_ps(w + 5 * K + k), xv, a5);
            a6 = _mm256_fmadd_ps(_mm256_loadu_ps(w + 6 * K + k), xv, a6);
            a7 = _mm256_fmadd_ps(_mm256_loadu_ps(w + 7 * K + k), xv, a7);
        }
        const __m256 s01 = _mm256_hadd_ps(a0, a1), s23 = _mm256_hadd_ps(a2, a3);
        const __m256 s45 = _mm256_hadd_ps(a4, a5), s67 = _mm256_hadd_ps(a6, a7);
        const __m256 s0123 = _mm256_hadd_ps(s01, s23), s4567 = _mm256_hadd_ps(s45, s67);
        __m256 sums = _mm256_add_ps(_mm256_permute2f128_ps(s0123, s4567, 0x20),
                                    _mm256_permute2f128_ps(s0123, s4567, 0x31));  // rows j .. j+7
        if (k_vec < K) {
            alignas(32) float tail[8];
            for (int r = 0; r < 8; ++r) {
                float t = 0;
                for (int64_t k = k_vec; k < K; ++k) t += w[r * K + k] * x[k];
                tail[r] = t;
            }
            sums = _mm256_add_ps(sums, _mm256_load_ps(tail));
        }
        if (accumulate) sums = _mm256_add_ps(sums, _mm256_loadu_ps(y + j));
        _mm256_storeu_ps(y + j, sums);
    }
    for (; j < M; ++j) {
        const float* w = W + j * K;
        float s = 0;
        for (int64_t k = 0; k < K; ++k) s += w[k] * x[k];
        y[j] = accumulate ? y[j] + s : s;
    }
}
#endif

// Y (N x M) = X (N x K) W^T, or Y += X W^T.
template <typename T>
void linear(const T* W, int64_t M, int64_t K, const T* X, int64_t N, T* Y, bool accumulate) {
    if (N == 1) {
        matvec(W, M, K, X, Y, accumulate);
    } else {
        gemm(false, true, N, M, K, T(1), X, K, W, K, accumulate ? T(1) : T(0), Y, M);
    }
}

template <typename T>
void layer_norm_rows(const T* x, int64_t N, int64_t n, T* y, const T* gain, bool accumulate) {
    for (int64_t r = 0; r < N; ++r) {
        T mean, rstd;
        row_stats(x + r * n, n, &mean, &rstd);
        const T* xr = x + r * n;
        T* yr = y + r * n;
        if (accumulate) {
            for (int64_t j = 0; j < n; ++j) yr[j] += (xr[j] - mean) * rstd * gain[j];
        } else {
            for (int64_t j = 0; j < n; ++j) yr[j] = (xr[j] - mean) * rstd * gain[j];
        }
    }
}

// Layer k's state in one step: read from h_in, c_in (null: zeros), written to h_out, c_out (may alias them).
template <typename T>
struct LayerState {
    const T* h_in;
    const T* c_in;
    T* h_out;
    T* c_out;
};

// One evaluation-mode step of every layer; state_of(k) gives layer k's LayerState<T>.
template <typename T, typename StateOf>
void step_layers(const LkStep& s, const T* x, T* y_last, T* scratch, StateOf state_of) {
    FlushDenormals guard;
    const int64_t N = s.N, H = s.H, P = s.P, G = s.G, GH = G * H;
    T* gates = scratch;             // (N, GH)
    T* r = gates + N * GH;          // (N, GH)
    T* hh = r + N * GH;             // (N, H)
    T* psi = hh + N * H;            // (N, H)
    T* cs = psi + N * H;            // (N, H)
    T* h_new = cs + N * H;          // (N, P)
    T* proj = h_new + N * P;        // (N, P)
    T* outputs[2] = {proj + N * P, proj + 2 * N * P};  // (N, P) each: the layers' outputs, alternately
    T* stats = proj + 3 * N * P;    // (2N)
    LkArgs a{};
    a.L = 1;
    a.N = N;
    a.H = H;
    a.P = P;
    a.G = G;
    a.nthreads = 1;
    a.act_gate = s.act_gate;
    a.act_cell = s.act_cell;
    a.act_hidden = s.act_hidden;
    a.clip = s.clip;
    a.zh = s.zh;
    a.zc = s.zc;
    for (int64_t k = 0; k < s.num_layers; ++k) {
        const LkLayer& l = s.layers[k];
        const LayerState<T> state = state_of(k);
        const T* h = state.h_in;
        const T* c = state.c_in;
        if (h == nullptr) {  // zero state: start from zeros written into the outputs
            std::memset(state.h_out, 0, N * P * sizeof(T));
            std::memset(state.c_out, 0, N * H * sizeof(T));
            h = state.h_out;
            c = state.c_out;
        }
        // h_{t-1} is read until the last row is done, so h_t goes through h_new when it overwrites h_{t-1}
        T* h_dst = h == state.h_out ? h_new : state.h_out;
        a.w_hr = l.w_hr;
        a.peep = l.peep;
        a.ln_c_w = l.ln_c_w;
        a.ln_c_b = l.ln_c_b;
        // pre-activations: biases, input half, recurrent half
        if (l.ln_ih) {
            linear((const T*)l.w_ih, GH, l.I, x, N, r, false);
            layer_norm_rows(r, N, GH, gates, (const T*)l.ln_ih, false);
        } else {
            linear((const T*)l.w_ih, GH, l.I, x, N, gates, false);
        }
        for (int64_t n = 0; n < N; ++n) {
            T* g = gates + n * GH;
            if (l.b_ih)
                for (int64_t j = 0; j < GH; ++j) g[j] += ((const T*)l.b_ih)[j];
            if (l.b_hh)
                for (int64_t j = 0; j < GH; ++j) g[j] += ((const T*)l.b_hh)[j];
        }
        if (l.ln_hh) {
            linear((const T*)l.w_hh, GH, P, h, N, r, false);
            layer_norm_rows(r, N, GH, gates, (const T*)l.ln_hh, true);
        } else {
            linear((const T*)l.w_hh, GH, P, h, N, gates, true);
        }
        cell_rows<T>(a, 0, gates, h, c, cs, psi, hh, stats, stats + N, h_dst, state.c_out);
        if (l.w_hr) {
            linear((const T*)l.w_hr, P, H, hh, N, proj, false);
            projected_rows<T>(a, 0, proj, h, h_dst);
        }
        if (h_dst != state.h_out) std::memcpy(state.h_out, h_dst, N * P * sizeof(T));
        const T* h_t = state.h_out;
        T* y = k + 1 == s.num_layers ? y_last : outputs[k % 2];
        if (s.residual && k > 0) {
            for (int64_t j = 0; j < N * P; ++j) y[j] = h_t[j] + x[j];
        } else {
            std::memcpy(y, h_t, N * P * sizeof(T));
        }
        x = y;
    }
}

// lk_step_*: the state is the layers' h and c, updated in place; the plan's own scratch memory.
template <typename T>
void step(const LkStep& s) {
    step_layers<T>(s, (const T*)s.x, (T*)s.y, (T*)s.scratch, [&s](int64_t k) {
        const LkLayer& l = s.layers[k];
        return LayerState<T>{(const T*)l.h, (const T*)l.c, (T*)l.h, (T*)l.c};
    });
}

int64_t step_scratch_size(int64_t N, int64_t H, int64_t P, int64_t G) {
    return 2 * N * G * H + 3 * N * H + 4 * N * P + 2 * N;
}

// lk_step_into_*: the state from h_in, c_in into h_out, c_out; scratch memory of the calling thread.
template <typename T>
void step_into(const LkStepInto& io) {
    LkStep s = *io.plan;
    s.N = io.N;
    thread_local std::vector<T> scratch;
    const size_t size = (size_t)step_scratch_size(s.N, s.H, s.P, s.G);
    if (scratch.size() < size) scratch.resize(size);
    const int64_t hs = s.N * s.P, cs = s.N * s.H;  // one layer's h and c
    const T* h_in = (const T*)io.h_in;
    const T* c_in = (const T*)io.c_in;
    T* h_out = (T*)io.h_out;
    T* c_out = (T*)io.c_out;
    step_layers<T>(s, (const T*)io.x, (T*)io.y, scratch.data(), [&](int64_t k) {
        return LayerState<T>{h_in ? h_in + k * hs : nullptr, c_in ? c_in + k * cs : nullptr, h_out + k * hs,
                             c_out + k * cs};
    });
}

}  // namespace

extern "C" {

int64_t lk_step_scratch_size(int64_t N, int64_t H, int64_t P, int64_t G) { return step_scratch_size(N, H, P, G); }
int64_t lk_step_struct_size() { return (int64_t)sizeof(LkStep); }
int64_t lk_layer_struct_size() { return (int64_t)sizeof(LkLayer); }
int64_t lk_step_into_struct_size() { return (int64_t)sizeof(LkStepInto); }
void lk_step_f32(const LkStep* s) { step<float>(*s); }
void lk_step_f64(const LkStep* s) { step<double>(*s); }
void lk_step_into_f32(const LkStepInto* io) { step_into<float>(*io); }
void lk_step_into_f64(const LkStepInto* io) { step_into<double>(*io); }

int64_t lk_abi_version() { return 3; }

void lk_set_blas(void* sgemm, void* dgemm) {
    g_sgemm = (lk_sgemm_t)sgemm;
    g_dgemm = (lk_dgemm_t)dgemm;
}

int64_t lk_args_size() { return (int64_t)sizeof(LkArgs); }

void lk_forward_f32(const LkArgs* a) { forward<float>(*a); }
void lk_forward_f64(const LkArgs* a) { forward<double>(*a); }
void lk_backward_f32(const LkArgs* a) { backward<float>(*a); }
void lk_backward_f64(const LkArgs* a) { backward<double>(*a); }

}  // extern "C"
