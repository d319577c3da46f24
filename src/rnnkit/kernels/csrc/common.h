// Helpers shared by rnnkit's native loops (loops.cpp, layer_norm_lstm.cpp). See loops.cpp for the layout.
#pragma once

#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#if defined(__AVX__)
#include <immintrin.h>
#endif

using at::Tensor;
using Opt = c10::optional<Tensor>;
using Sizes = std::vector<int64_t>;

#include "buffer_pool.h"

// a loop without dependencies between iterations: vectorise it (fp64 exp through glibc's vector exp, libmvec)
#define SIMD _Pragma("omp simd")

// torch's oneDNN micro-kernel (see "per-step products through oneDNN's micro-kernel" below), declared here and
// weak rather than through ATen/native/CPUBlas.h, which some torch versions ship including oneDNN headers they do
// not ship: a torch without this function leaves its address null, and the loops use BLAS
namespace at::native::cpublas {
TORCH_API void brgemm(int64_t M, int64_t N, int64_t K, int64_t ld_a, int64_t ld_b, int64_t ld_c, bool add_C,
                      const float* A, const float* B, float* C, bool is_vnni) __attribute__((weak));
}  // namespace at::native::cpublas

// torch's oneDNN matmul (loops.cpp, onednn_mm): in none of torch's installed headers, so declared here, weak too
namespace at::native {
TORCH_API void mkldnn_matmul(const Tensor& mat1, const Tensor& mat2, const Tensor& result, float beta, float alpha)
    __attribute__((weak));
}  // namespace at::native

namespace rnnkit {

// exp(x) for |x| <= 87 in fp32, inline, so that a gate loop vectorises it with no call per vector (libmvec's
// expf, which fp64 keeps): x = n ln 2 + r with |r| <= ln(2)/2, exp(r) by Cephes' polynomial, and 2^n put into the
// exponent's bits. Against fp64: sigmoid within 1.7e-7, tanh_by_exp within 3.5e-7. The loops ran 1.00-1.07x as fast
// forward+backward (2-core Zen 4, in-process A/B, 14 interleaved repeats, LSTM and GRU at (64, 50, 64, 128), (16,
// 50, 64, 128), (32, 100, 128, 256), (128, 35, 650, 650))
inline float exp_inline(float x) {
  const float n = std::nearbyint(x * 1.44269504088896341f);
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;  // ln 2 in two parts: n * the first is exact
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

template <typename T>
inline T exp_of(T x) {
  if constexpr (std::is_same_v<T, float>) {
    return exp_inline(x);
  } else {
    return std::exp(x);
  }
}

// the argument is clamped where sigmoid is 1 or 0 to working precision anyway: exp_inline's range, and -ffast-math
// assumes finite values (libmvec's exp then returns NaN, not inf, past its range)
// -ffast-math lets gcc divide by a reciprocal estimate refined by one Newton step, which takes 1 / 1 to 1 - 2^-24:
// a saturated gate would never reach 1 and would still pass gradient (torch's reaches 1 and passes none), so where
// 1 + e rounds to 1 the result is set to exactly 1 (tested on e itself: fast-math may fold a test of 1 + e == 1)
template <typename T>
inline T sigmoid(T x) {
  constexpr T bound = std::is_same_v<T, float> ? T(80) : T(700);
  constexpr T negligible = std::numeric_limits<T>::epsilon() / 2;  // 1 + e == 1 below this
  const T e = exp_of(std::min(std::max(-x, -bound), bound));
  return e < negligible ? T(1) : T(1) / (T(1) + e);
}

// tanh(x) = 2 sigmoid(2x) - 1: the gate loops vectorise it through the same exp as the sigmoid, the scalar tail of a
// loop whose width is no multiple of the vector (H = 25) too; std::tanh's tail calls glibc's scalar tanhf, which
// took more time than all the vector calls of a step (perf, LSTM loop at batch 32, hidden 25)
template <typename T>
inline T tanh_by_exp(T x) {
  return T(2) * sigmoid(T(2) * x) - T(1);
}

// Zoneout, h_t = d h_{t-1} + (1 - d) h~_t (c alike), with d a unit's keep weight. In training d comes from a mask,
// 0 or 1, and the loops select (SelectMask); at evaluation d is the zoneout probability p, where the paper uses the
// noise's expectation, and they blend (Expectation). Each loop is compiled for both (with_zoneout_kind), so the
// training code is the select alone: with the blend's arithmetic beside it, -ffast-math let gcc re-associate the
// new value's and the gradients' arithmetic, and training results moved in their last bits.
using SelectMask = std::false_type;
using Expectation = std::true_type;

template <typename Kind, typename T>
inline T zoneout(Kind, T d, T old, T fresh) {
  if constexpr (Kind::value) {
    return d * old + (T(1) - d) * fresh;
  } else {
    return d != T(0) ? old : fresh;
  }
}

// its gradient: (1 - d) g reaches the new value h~_t ...
template <typename Kind, typename T>
inline T zoneout_grad_new(Kind, T d, T g) {
  if constexpr (Kind::value) {
    return (T(1) - d) * g;
  } else {
    return d != T(0) ? T(0) : g;
  }
}

// ... and d g the old one, h_{t-1}
template <typename Kind, typename T>
inline T zoneout_grad_old(Kind, T d, T g) {
  if constexpr (Kind::value) {
    return d * g;
  } else {
    return d != T(0) ? g : T(0);
  }
}

// The keep weights d of each step, from a zoneout mask as the loops get it: a training mask (T, H) of 0 and 1, read
// at the step's packed rows; at evaluation a 0-dim p, the same for every unit and step, spread once over (N, H)
// (not a (T, H) copy); without zoneout zeros, the new value everywhere.
class ZoneoutWeights {
 public:
  ZoneoutWeights(const Opt& mask, int64_t N, int64_t H, const at::TensorOptions& options)
      : per_step_(mask && mask->dim() > 0),
        expectation_(mask && mask->dim() == 0),
        values_(per_step_ ? mask->contiguous()
                          : (mask ? mask->to(options).expand({N, H}).contiguous() : at::zeros({N, H}, options))) {}

  // the weights of the step whose rows start at packed row `row`, indexed by batch row n as n * H + j
  template <typename T>
  const T* step(int64_t row, int64_t H) const {
    return values_.data_ptr<T>() + (per_step_ ? row * H : 0);
  }

  bool expectation() const { return expectation_; }

 private:
  bool per_step_, expectation_;
  Tensor values_;
};

// f(SelectMask{}) or f(Expectation{}), as `keep` holds (an LSTM's h and c weights are of one kind)
template <typename F>
void with_zoneout_kind(const ZoneoutWeights& keep, const F& f) {
  if (keep.expectation()) {
    f(Expectation{});
  } else {
    f(SelectMask{});
  }
}

inline Sizes offsets_of(const Sizes& batch_sizes) {
  Sizes offsets(batch_sizes.size() + 1, 0);
  for (size_t t = 0; t < batch_sizes.size(); ++t) offsets[t + 1] = offsets[t] + batch_sizes[t];
  return offsets;
}

// f(n) for rows n in [first, first + count); two threads only when a step has enough work to pay for the hand-off
// (inside a block of for_row_blocks, on that block's thread)
template <typename F>
void for_rows(int64_t first, int64_t count, int64_t width, const F& f) {
  if (count * width < 32768) {
    for (int64_t n = first; n < first + count; ++n) f(n);
    return;
  }
  at::parallel_for(first, first + count, 1, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) f(n);
  });
}

// The batch's rows are independent sequences: with enough rows, each thread runs the whole time loop for its own
// block of them (its products through BLAS on one thread, its gate math), with no hand-off between the threads at
// any step. 2-core Zen 3, the loops forward+backward, old and new builds A/B in one process, against both
// threads on each step's product and then on its gate math: RNN 1.16x at (batch, steps, hidden) (32, 100, 256)
// and 1.02-1.09x at (128, 35, 650); GRU 1.05x at (32, 100, 256), 1.12x at (64, 50, 128), 0.94-1.08x at
// (128, 35, 650). A first sketch with 8 rows a thread (GRU forward at (16, 200, 512)) ran at 0.83x, hence
// kRowsPerThread.
constexpr int64_t kRowsPerThread = 16;
// An LSTM's gate math (five nonlinearities a unit) runs on one thread below 32768 values a step (for_rows), so
// with the batch's columns split between the threads for the products only, half its step ran serial: 8 rows a
// thread win (2-core Zen 4, the LSTM forward+backward with oneDNN's micro-kernel, in-process A/B of the builds,
// 9-15 interleaved repeats, at (batch, steps, input, hidden) (16, 100, 128, 256), (16, 200, 256, 512), (24, 100,
// 128, 256), (16, 50, 64, 128), (16, 100, 32, 64) and (20, 35, 650, 650): 1.04-1.29x and 1.04-1.23x in two runs,
// 0.96-1.11x in a third); the GRU's and RNN's lighter steps gained at (16, 200, 256, 512)
// (1.06x, 1.05x) and lost at (16, 100, 128, 256) (0.80-0.98x), so they keep 16. Elsewhere (MKL's products of 8
// rows; unmeasured) the LSTM keeps 16 too: see lstm_rows_per_thread in loops.cpp
constexpr int64_t kLstmRowsPerThread = 8;

inline int64_t row_blocks(int64_t rows, int64_t rows_per_thread = kRowsPerThread) {
  const int64_t threads = at::get_num_threads();
  return threads > 1 && rows >= rows_per_thread * threads ? threads : 1;
}

// f(first, end) for each of `blocks` blocks of rows, each block on its own thread
template <typename F>
void for_row_blocks(int64_t rows, int64_t blocks, const F& f) {
  if (blocks == 1) {
    f(int64_t(0), rows);
    return;
  }
  at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) f(rows * b / blocks, rows * (b + 1) / blocks);
  });
}

// step(t, first, bs, row) for each step t with active rows in each block: rows [first, first + bs) of the step,
// whose packed rows start at `row` (= off[t]); in time order, or reversed for a backward pass
template <typename F>
void for_each_step(const Sizes& batch_sizes, const Sizes& off, int64_t rows, int64_t blocks, bool reversed,
                   const F& step) {
  for_row_blocks(rows, blocks, [&](int64_t first, int64_t stop) {
    const int64_t steps = batch_sizes.size();
    for (int64_t i = 0; i < steps; ++i) {
      const int64_t t = reversed ? steps - 1 - i : i;
      const int64_t bs = std::min(batch_sizes[t], stop) - first;
      if (bs > 0) step(t, first, bs, off[t]);
    }
  });
}

// ---- per-step products through oneDNN ------------------------------------------------------------------------
// at::mm calls MKL, which runs AVX2 code on AMD CPUs; torch's oneDNN linear uses AVX-512 where the CPU has it
// (about 2x on the bench machine, see rnnkit/kernels/gemm.py). The loops multiply by the same W_hh at every
// step, so it is reordered into oneDNN's blocked layout once per call. The operator is looked up by name and
// called boxed (its C++ signature differs between torch versions); without it, or for fp64, at::mm is used.
inline const c10::OperatorHandle* onednn_op(const char* name) {
  if (std::getenv("RNNKIT_NO_ONEDNN") && std::string(std::getenv("RNNKIT_NO_ONEDNN")) != "0") return nullptr;
  auto handle = c10::Dispatcher::singleton().findSchema({name, ""});
  return handle ? new c10::OperatorHandle(*handle) : nullptr;
}

// MKL runs its AVX-512 code on Intel CPUs only; oneDNN has the wider vectors only on other CPUs with AVX-512
inline bool mkl_vectors_as_wide() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  return __builtin_cpu_is("intel") || !__builtin_cpu_supports("avx512f");
#else
  return false;
#endif
}

// Rows [begin, end) of weight times one input vector v, plus bias, into o (or added to o): eight rows at a time,
// so eight independent vector accumulators keep both FMA units busy (one row alone is a chain of dependent adds,
// bound by the FMA latency at an eighth of the machine's rate).
template <typename scalar_t>
void rows_times_vector(const scalar_t* w, const scalar_t* v, const scalar_t* b, int64_t K, int64_t begin,
                       int64_t end, scalar_t* o, bool accumulate) {
  int64_t m = begin;
  for (; m + 8 <= end; m += 8) {
    const scalar_t* r = w + m * K;
    scalar_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
    _Pragma("omp simd reduction(+ : s0, s1, s2, s3, s4, s5, s6, s7)")
    for (int64_t k = 0; k < K; ++k) {
      const scalar_t x = v[k];
      s0 += r[k] * x;
      s1 += r[K + k] * x;
      s2 += r[2 * K + k] * x;
      s3 += r[3 * K + k] * x;
      s4 += r[4 * K + k] * x;
      s5 += r[5 * K + k] * x;
      s6 += r[6 * K + k] * x;
      s7 += r[7 * K + k] * x;
    }
    const scalar_t sums[8] = {s0, s1, s2, s3, s4, s5, s6, s7};
    for (int j = 0; j < 8; ++j) {
      o[m + j] = (accumulate ? o[m + j] : scalar_t(0)) + sums[j] + (b ? b[m + j] : scalar_t(0));
    }
  }
  for (; m < end; ++m) {
    const scalar_t* r = w + m * K;
    scalar_t sum = 0;
    _Pragma("omp simd reduction(+ : sum)")
    for (int64_t k = 0; k < K; ++k) sum += r[k] * v[k];
    o[m] = (accumulate ? o[m] : scalar_t(0)) + sum + (b ? b[m] : scalar_t(0));
  }
}

// c (rows x out) = a (rows x in) @ w^T (+ bias), or added to c, by dot products for a few rows: the output
// units are split between the threads, so each thread reads the same slice of w at every call, which then stays
// in its own cache (a whole W_hh of 1 MB does not fit one core's L2, and single-threaded BLAS re-reads it from
// L3 at every step); below kSerialDotWork multiply-adds one thread is faster
constexpr int64_t kSerialDotWork = 1 << 16;

template <typename T>
void few_rows_times_weight(const T* a, const T* w, const T* bias, T* c, int64_t rows, int64_t in, int64_t out,
                           bool accumulate) {
  const auto units = [&](int64_t begin, int64_t end) {
    for (int64_t n = 0; n < rows; ++n) rows_times_vector(w, a + n * in, bias, in, begin, end, c + n * out, accumulate);
  };
  rows * in * out < kSerialDotWork ? units(0, out) : at::parallel_for(0, out, 8, units);
}

// ---- per-step products straight through BLAS ------------------------------------------------------------------
// at::mm costs about 3 us per call beyond the product itself (a narrowed view, the dispatcher, addmm's checks and
// its bias copy), more than the product of a small step (batch 1, hidden 64: 1.6 us). The loops call the BLAS
// that torch itself links (MKL in the x86 wheels) on raw pointers instead. The symbols are weak: where this
// torch has none, they resolve to null and at::mm is used.
#if defined(__linux__)
extern "C" {
void sgemm_(const char*, const char*, const int*, const int*, const int*, const float*, const float*, const int*,
            const float*, const int*, const float*, float*, const int*) __attribute__((weak));
void dgemm_(const char*, const char*, const int*, const int*, const int*, const double*, const double*, const int*,
            const double*, const int*, const double*, double*, const int*) __attribute__((weak));
}
#endif

// c (rows x out) = a (rows x in) @ w^T + beta c, all row-major and contiguous, w (out x in); false where no BLAS
// was found. BLAS is column-major: there the same memory holds c^T = w a^T, with w read transposed.
template <typename T>
inline bool blas_rows_times_weight(const T* a, const T* w, T* c, int64_t rows, int64_t in, int64_t out, T beta) {
#if defined(__linux__)
  const int m = int(out), n = int(rows), k = int(in);
  const T one = 1;
  if constexpr (std::is_same_v<T, float>) {
    if (!sgemm_) return false;
    sgemm_("T", "N", &m, &n, &k, &one, w, &k, a, &k, &beta, c, &m);
    return true;
  } else if constexpr (std::is_same_v<T, double>) {
    if (!dgemm_) return false;
    dgemm_("T", "N", &m, &n, &k, &one, w, &k, a, &k, &beta, c, &m);
    return true;
  }
#endif
  return false;
}

// ---- per-step products through oneDNN's micro-kernel ------------------------------------------------------
// torch (2.13 here) exports oneDNN's batch-reduce GEMM micro-kernel (brgemm) for fp32: C (+)= A B on raw
// row-major pointers, with oneDNN's AVX-512 code, no operator dispatch and no re-layout of B. On a 2-core Zen 4, one
// thread: 110-114 GFLOP/s at (rows, in, out) (16, 256, 1024), (32, 64, 512), (64, 650, 2600), against MKL's 68-93
// (AVX2 code on AMD) and the boxed oneDNN linear's 61-109 (its per-call set-up costs most at small products).
// (declared weak at the top of this file)
inline bool have_brgemm() { return at::native::cpublas::brgemm != nullptr; }

inline void brgemm_f32(int64_t m, int64_t n, int64_t k, int64_t lda, int64_t ldb, int64_t ldc, bool add_c,
                       const float* a, const float* b, float* c) {
  at::native::cpublas::brgemm(m, n, k, lda, ldb, ldc, add_c, a, b, c, /*is_vnni=*/false);
}

// True once a small product through brgemm has given the right numbers (a guard against a torch whose function
// behaves otherwise than 2.13's, which falls back to its own gemm without the micro-kernel and keeps the kernels
// it builds per thread); RNNKIT_NO_ONEDNN=1 turns it off with the rest of oneDNN
inline bool brgemm_works() {
  static const bool works = [] {
    if (!have_brgemm() || !onednn_op("mkldnn::_linear_pointwise")) return false;
    const int64_t m = 3, n = 17, k = 5;  // odd sizes: the kernel's tails too
    std::vector<float> a(m * k), b(k * n), c(m * n, 1.0f);
    for (int64_t i = 0; i < m * k; ++i) a[i] = float(i % 7) - 3.0f;
    for (int64_t i = 0; i < k * n; ++i) b[i] = float(i % 5) - 2.0f;
    try {
      brgemm_f32(m, n, k, k, n, n, /*add_c=*/true, a.data(), b.data(), c.data());
    } catch (const std::exception&) {
      return false;
    }
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        float want = 1.0f;
        for (int64_t l = 0; l < k; ++l) want += a[i * k + l] * b[l * n + j];
        if (c[i * n + j] != want) return false;  // small integers: exact in fp32
      }
    }
    return true;
  }();
  return works;
}

// whether wide fp32 steps go through the micro-kernel here: where oneDNN has wider vectors than MKL
inline bool steps_through_brgemm() {
  static const bool chosen = !mkl_vectors_as_wide() && brgemm_works();
  return chosen;
}

// rows a thread from which an LSTM's batch (plain or layer-norm) splits into row blocks (kLstmRowsPerThread)
inline int64_t lstm_rows_per_thread() { return steps_through_brgemm() ? kLstmRowsPerThread : kRowsPerThread; }

// B (in x out) in column panels for brgemm: panel p holds columns [64p, 64p + 64) as one (in x 64) row-major
// block, zero-padded, so a call reads B contiguously; each call also takes at most kDepth rows of B, so that B's
// block stays in cache while the rows of A pass (2-core Zen 4, both threads, rows x in x out 64 x 2600 x 650:
// 166 GFLOP/s with B as it is, 227 in panels of 512 x 64; 214-230 either way at the forward's 64 x 650 x 2600)
constexpr int64_t kPanel = 64, kDepth = 512;

// dst[k][j] = src[j][k] for j < rows, k < cols (both at most 8), rows `ld_src` and `ld_dst` apart: a full tile in AVX
// registers (eight loads, 24 shuffles, eight stores), a partial one element by element
inline void transpose_tile(const float* src, int64_t ld_src, float* dst, int64_t ld_dst, int64_t rows, int64_t cols) {
#if defined(__AVX__)
  if (rows == 8 && cols == 8) {
    __m256 r[8], t[8];
    for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * ld_src);
    for (int i = 0; i < 8; i += 2) {
      t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
      t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
      r[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
      r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
      r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
      r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    // r[0..3]: columns 0, 1, 2, 3 of rows 0-3 (low lane) and columns 4-7 (high lane); r[4..7] the same for rows 4-7
    for (int i = 0; i < 4; ++i) {
      _mm256_storeu_ps(dst + i * ld_dst, _mm256_permute2f128_ps(r[i], r[i + 4], 0x20));
      _mm256_storeu_ps(dst + (i + 4) * ld_dst, _mm256_permute2f128_ps(r[i], r[i + 4], 0x31));
    }
    return;
  }
#endif
  for (int64_t k = 0; k < cols; ++k) {
    for (int64_t j = 0; j < rows; ++j) dst[k * ld_dst + j] = src[j * ld_src + k];
  }
}

// The panels are rebuilt at every call of a loop (W_hh changes between calls), by hand, straight from W_hh: ATen's
// copy of a transposed view into zeroed panels took 57-59 us for a 512 x 128 W_hh and 0.8-3.9 ms for a 2048 x 512
// one (2-core Zen 4), and the backward made W_hh^T first, which only the paths without panels read (100 us and
// 4.2-5.8 ms for both). By hand (the forward's W_hh^T in 8 x 8 tiles through AVX registers): 7 us and 0.12 ms for
// the forward's panels, 6 us and 0.06-0.07 ms for the backward's;
// the LSTM loops' forward+backward ran 1.00-1.07x as fast (in-process A/B, 16 interleaved repeats, at (64, 50, 64,
// 128), (16, 50, 64, 128), (32, 100, 128, 256), (16, 200, 256, 512), (128, 35, 650, 650), (20, 35, 650, 650)). The
// buffer is the last call's where that is free: a fresh one page-faults its pages in again.
inline Tensor panel_buffer(int64_t count, int64_t in, const at::TensorOptions& options) {
  thread_local std::vector<Tensor> kept;  // the two last sizes (a forward's and a backward's)
  for (const Tensor& t : kept) {
    if (t.size(0) == count && t.size(1) == in && t.use_count() == 1) return t;
  }
  Tensor fresh = at::empty({count, in, kPanel}, options);
  kept.insert(kept.begin(), fresh);
  if (kept.size() > 2) kept.pop_back();
  return fresh;
}

// B (in x out) in column panels; B given as itself (`b_rows`, contiguous in x out) or as W = B^T (contiguous
// out x in). Large B splits between the threads, from about 2^16 values a thread.
inline Tensor column_panels(const Tensor& b_or_w, bool b_rows) {
  const int64_t in = b_or_w.size(b_rows ? 0 : 1), out = b_or_w.size(b_rows ? 1 : 0);
  const int64_t count = (out + kPanel - 1) / kPanel;
  Tensor panels = panel_buffer(count, in, b_or_w.options());
  const float* src = b_or_w.data_ptr<float>();
  float* dst = panels.data_ptr<float>();
  const auto some = [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const int64_t first = p * kPanel, width = std::min(kPanel, out - first);
      float* block = dst + p * in * kPanel;
      if (b_rows) {  // panel row k: a piece of B's row k
        for (int64_t k = 0; k < in; ++k) {
          std::copy(src + k * out + first, src + k * out + first + width, block + k * kPanel);
          std::fill(block + k * kPanel + width, block + (k + 1) * kPanel, 0.0f);
        }
        continue;
      }
      // panel row k: column k of W's rows [first, first + width): a transpose, in tiles of 8 x 8
      const float* rows = src + first * in;
      for (int64_t k0 = 0; k0 < in; k0 += 8) {
        for (int64_t j0 = 0; j0 < width; j0 += 8) transpose_tile(rows + j0 * in + k0, in, block + k0 * kPanel + j0,
                                                                  kPanel, std::min<int64_t>(8, width - j0),
                                                                  std::min<int64_t>(8, in - k0));
        for (int64_t k = k0; k < std::min(k0 + 8, in); ++k) {
          std::fill(block + k * kPanel + width, block + (k + 1) * kPanel, 0.0f);
        }
      }
    }
  };
  at::parallel_for(0, count, std::max<int64_t>(1, (int64_t(1) << 16) / (in * kPanel)), some);
  return panels;
}

// c (rows x out) = a (rows x in) @ B + (c if add_c), B in column panels; on one thread inside a row block, else
// the panels split between the threads (each keeps its own panels in its own cache)
inline void brgemm_rows_times(const float* a, const float* panels, float* c, int64_t rows, int64_t in, int64_t out,
                              bool add_c, bool one_thread) {
  const int64_t count = (out + kPanel - 1) / kPanel;
  const auto some = [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const int64_t j = p * kPanel, width = std::min(kPanel, out - j);
      for (int64_t k = 0; k < in; k += kDepth) {
        brgemm_f32(rows, width, std::min(kDepth, in - k), in, kPanel, out, add_c || k > 0, a + k,
                   panels + (p * in + k) * kPanel, c + j);
      }
    }
  };
  one_thread || rows * in * out < kSerialDotWork ? some(0, count) : at::parallel_for(0, count, 1, some);
}

// The right-hand factor B of C = A B at every step, kept as a linear layer's weight W (B = W^T): for the
// forward W = W_hh (G*H x H, G gates from h); for the backward W = W_hh^T (dh from the gate gradients).
class StepWeights {
 public:
  // `batch`: the rows of each product (a block's, when for_row_blocks splits the batch); `in_blocks`: each block's
  // thread calls the product on its own rows (oneDNN then runs on that one thread)
  StepWeights(const Tensor& w, bool transpose_for_linear, int64_t batch, int64_t gates, bool in_blocks = false) {
    // weight_ is (out, in): forward uses W_hh as is; backward needs W_hh^T as the linear weight (made below, where
    // a path reads it)
    const Tensor w_c = w.contiguous();
    in_ = w_c.size(transpose_for_linear ? 0 : 1);
    out_ = w_c.size(transpose_for_linear ? 1 : 0);
    static const c10::OperatorHandle* reorder = onednn_op("mkldnn::_reorder_linear_weight");
    static const c10::OperatorHandle* linear = onednn_op("mkldnn::_linear_pointwise");
    // below about 2M multiply-adds per step (e.g. batch 64 x 128 x 128) BLAS's lower call cost wins
    // (bench/kernels.py: RNN at (64, 50, 64, 128) 1.4x torch.nn this way, 1.2x through oneDNN)
    const bool large = batch * in_ * out_ >= (int64_t(1) << 21);
    // on Intel CPUs MKL runs its AVX-512 code and wins from 32 rows up (2-core Xeon Sapphire Rapids: RNN at
    // (32, 100, 128, 256) 0.83x torch.nn through oneDNN, 1.13x through MKL; GRU at (64, 50, 64, 128) 1.41x and
    // 1.66x); at 16 rows oneDNN still wins (GRU at (16, 200, 256, 512): 1.55x against 1.32x). Without AVX-512
    // oneDNN has no wider vectors than MKL, and the same split holds (2-core Zen 3: RNN at (32, 100, 128, 256)
    // 1.12x through oneDNN, 1.38x through MKL; GRU at (64, 50, 64, 128) 1.49x and 1.77x; at 16 rows GRU 1.49x
    // and 1.33x)
    static const bool mkl_vectors = mkl_vectors_as_wide();
    // except for an LSTM's W_hh of 1 MB and more, which MKL copies into its own layout at every step, where
    // oneDNN reads the layout made once above (2-core Zen 3, LSTM loop at (steps, batch, hidden) (100, 32, 256),
    // (35, 128, 650), (100, 64, 512): 1.03-1.28x through oneDNN in seven interleaved A/B runs, whose A/A spread
    // was 0.96-1.05; the GRU's and RNN's products showed no such gain)
    const bool big_lstm = gates == 4 && w_c.numel() >= (int64_t(1) << 18);
    // In row blocks, where MKL has the CPU's widest vectors, each thread's BLAS call was measured against both
    // threads on one oneDNN product, not against oneDNN per thread. Where it lacks them (AMD with AVX-512), a
    // thread's oneDNN product beats its MKL one at every block the size rule above lets through (2-core Zen 4,
    // 35-200 steps of 16-64 rows a thread, result copied out: 1.2-1.7x the GFLOP/s, e.g. 64 x 650 x 2600 at 186
    // against 128; at 16 x 256 x 256, which stays with BLAS, 1.0x)
    const bool mkl_wins = mkl_vectors && (in_blocks || (batch > 16 && !big_lstm));
    const bool panels = w_c.scalar_type() == at::kFloat && !mkl_wins && steps_through_brgemm() && batch >= kMicroKernelRows;
    if (!panels) {
      weight_ = transpose_for_linear ? w_c.t().contiguous() : w_c;
      b_ = weight_.t();
    }
    if (w_c.scalar_type() != at::kFloat || mkl_wins) return;
    // where oneDNN has the wider vectors, its micro-kernel takes every step of two rows and more: it costs no
    // more per call than BLAS, and beats the dot products from 2 rows on (2-core Zen 4, forward+backward, in-process
    // A/B against dot products up to 8 rows: 1.03-1.50x for RNN, GRU and LSTM at (batch, steps, input, hidden)
    // (4, 100, 8, 64), (8, 24, 1, 25), (4, 50, 32, 128), (16, 50, 64, 128), (16, 100, 32, 64), (8, 100, 128, 256),
    // e.g. the LSTM at (16, 50, 64, 128), 8 rows a block, 1.34x; at 2 rows 0.99-1.33x at (2, 200, 64, 256), (2, 200,
    // 128, 512), (2, 150, 256, 1024), (2, 24, 1, 25)). A single row keeps the threaded dot products, each thread's
    // slice of W_hh in its own cache: the micro-kernel ran at 0.88-1.09x there (0.88-0.94x at hidden 1024)
    if (panels) {
      // B = W_hh^T for the forward (from W_hh's columns), W_hh itself for the backward (from its rows)
      panels_ = column_panels(w_c, /*b_rows=*/transpose_for_linear);
      one_thread_ = in_blocks;
      return;
    }
    if (!reorder || !linear || !large || batch <= kSingleRows) return;
    linear_ = linear;
    torch::jit::Stack stack{weight_, c10::IValue(batch)};
    reorder->callBoxed(&stack);
    packed_ = stack[0].toTensor();
  }

  // c[:bs] = a[:bs] @ B + bias, or c[:bs] += a[:bs] @ B (accumulate), on raw rows: dot products for a few rows,
  // else BLAS; false where BLAS is missing or oneDNN is the chosen path (then use product / accumulate)
  template <typename T>
  bool raw(const T* a, int64_t bs, const T* bias, T* c, bool accumulate) const {
    if (linear_) return false;
    const int64_t in = in_, out = out_;
    if constexpr (std::is_same_v<T, float>) {
      // every step once panels are made (the few steps of one row in a shrinking batch too: weight_ is not made)
      if (panels_.defined()) {
        if (bias) {
          for (int64_t n = 0; n < bs; ++n) std::copy(bias, bias + out, c + n * out);
        }
        brgemm_rows_times(a, panels_.data_ptr<float>(), c, bs, in, out, bias || accumulate, one_thread_);
        return true;
      }
    }
    const T* w = weight_.data_ptr<T>();
    if (bs <= kFewRows) {
      few_rows_times_weight(a, w, bias, c, bs, in, out, accumulate);
      return true;
    }
    if (bias) {
      for (int64_t n = 0; n < bs; ++n) std::copy(bias, bias + out, c + n * out);
    }
    return blas_rows_times_weight<T>(a, w, c, bs, in, out, T(bias || accumulate ? 1 : 0));
  }

  // rows @ B (+ bias): a fresh oneDNN result (no copy), or written into out
  Tensor product(const Tensor& rows, const Opt& bias, Tensor out) const {
    if (panels_.defined()) {
      const Tensor a = rows.contiguous();
      Tensor c = out.is_contiguous() ? out : at::empty_like(out, at::MemoryFormat::Contiguous);
      raw<float>(a.data_ptr<float>(), a.size(0), bias ? bias->data_ptr<float>() : nullptr, c.data_ptr<float>(), false);
      return c.is_same(out) ? out : out.copy_(c);
    }
    if (linear_) {
      torch::jit::Stack stack{rows, packed_, bias ? c10::IValue(*bias) : c10::IValue(), c10::IValue("none"),
                              c10::IValue(c10::List<std::optional<c10::Scalar>>()), c10::IValue("")};
      linear_->callBoxed(&stack);
      return stack[0].toTensor();
    }
    bias ? at::addmm_out(out, *bias, rows, b_) : at::mm_out(out, rows, b_);
    return out;
  }

  // out += rows @ B
  void accumulate(const Tensor& rows, Tensor out) const {
    linear_ ? void(out.add_(product(rows, Opt(), out))) : void(out.addmm_(rows, b_));
  }

 private:
  // up to kFewRows rows dot products beat BLAS, and up to kSingleRows they beat oneDNN too (2-core Zen 3, LSTM
  // loop: at (steps, batch, hidden) (100, 8, 128) 1.10x BLAS, at (100, 16, 128) 0.84x; at (300, 1, 1024) 1.5x
  // oneDNN, at (200, 4, 512) 0.92x and at (200, 8, 512) 0.62x)
  static constexpr int64_t kFewRows = 8, kSingleRows = 2;
  // from this many rows a step goes through oneDNN's micro-kernel where it is chosen (see the constructor)
  static constexpr int64_t kMicroKernelRows = 2;
  int64_t in_ = 0, out_ = 0;
  Tensor weight_, b_, packed_;  // undefined where panels are made
  Tensor panels_;  // B in column panels for brgemm; undefined where it is not used
  bool one_thread_ = false;
  const c10::OperatorHandle* linear_ = nullptr;
};

// The step's (bs, G*H) rows (h * rmask)[first : first + bs] @ W_hh^T + b_hh: written into rows [first, first + bs)
// of gh (N, G*H), which are returned as a view, or oneDNN's fresh result; either way row n of the batch is row
// n - first of what is returned
inline Tensor recurrent_product(Tensor& gh, const Tensor& h, const Opt& rmask, const StepWeights& w, const Opt& b_hh,
                                int64_t first, int64_t bs, Tensor& scratch) {
  Tensor h_in = h;
  if (rmask) {
    Tensor masked = scratch.narrow(0, first, bs);
    at::mul_out(masked, h.narrow(0, first, bs), rmask->narrow(0, first, bs));
    h_in = scratch;
  }
  bool done = false;
  AT_DISPATCH_FLOATING_TYPES(gh.scalar_type(), "recurrent_product", [&] {
    done = w.raw<scalar_t>(h_in.data_ptr<scalar_t>() + first * h_in.size(1), bs,
                           b_hh ? b_hh->data_ptr<scalar_t>() : nullptr, gh.data_ptr<scalar_t>() + first * gh.size(1),
                           false);
  });
  return done ? gh.narrow(0, first, bs) : w.product(h_in.narrow(0, first, bs), b_hh, gh.narrow(0, first, bs));
}

// dh[first : first + bs] += (dgh[row : row + bs] @ W_hh) * rmask[first : first + bs], dgh (T, G*H) contiguous
inline void recurrent_backward(Tensor& dh, const Tensor& dgh, int64_t row, const Opt& rmask, const StepWeights& w,
                               int64_t first, int64_t bs, Tensor& scratch) {
  if (rmask) {
    dh.narrow(0, first, bs).addcmul_(w.product(dgh.narrow(0, row, bs), Opt(), scratch.narrow(0, first, bs)),
                                     rmask->narrow(0, first, bs));
    return;
  }
  bool done = false;
  AT_DISPATCH_FLOATING_TYPES(dh.scalar_type(), "recurrent_backward", [&] {
    done = w.raw<scalar_t>(dgh.data_ptr<scalar_t>() + row * dgh.size(1), bs, nullptr,
                           dh.data_ptr<scalar_t>() + first * dh.size(1), true);
  });
  if (!done) w.accumulate(dgh.narrow(0, row, bs), dh.narrow(0, first, bs));
}

template <typename T>
const T* ptr_or_null(const Opt& t) { return t ? t->data_ptr<T>() : nullptr; }

inline Opt contiguous(const Opt& t) { return t ? Opt(t->contiguous()) : Opt(); }

}  // namespace rnnkit
