// Helpers shared by rnnkit's native loops (loops.cpp, layer_norm_lstm.cpp). See loops.cpp for the layout.
#pragma once

#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

using at::Tensor;
using Opt = c10::optional<Tensor>;
using Sizes = std::vector<int64_t>;

// a loop without dependencies between iterations: vectorise it, with glibc's vector exp/tanh (libmvec)
#define SIMD _Pragma("omp simd")

namespace rnnkit {

template <typename T>
inline T sigmoid(T x) { return T(1) / (T(1) + std::exp(-x)); }

inline Sizes offsets_of(const Sizes& batch_sizes) {
  Sizes offsets(batch_sizes.size() + 1, 0);
  for (size_t t = 0; t < batch_sizes.size(); ++t) offsets[t + 1] = offsets[t] + batch_sizes[t];
  return offsets;
}

// f(n) for each active row; two threads only when a step has enough work to pay for the hand-off
template <typename F>
void for_rows(int64_t rows, int64_t width, const F& f) {
  if (rows * width < 32768) {
    for (int64_t n = 0; n < rows; ++n) f(n);
    return;
  }
  at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) f(n);
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

// The right-hand factor B of C = A B at every step, kept as a linear layer's weight W (B = W^T): for the
// forward W = W_hh (4H x H, gates from h); for the backward W = W_hh^T (dh from the gate gradients).
class StepWeights {
 public:
  StepWeights(const Tensor& w, bool transpose_for_linear, int64_t batch) {
    // weight_ is (out, in): forward uses W_hh as is; backward needs W_hh^T as the linear weight
    weight_ = transpose_for_linear ? w.t().contiguous() : w.contiguous();
    b_ = weight_.t();
    static const c10::OperatorHandle* reorder = onednn_op("mkldnn::_reorder_linear_weight");
    static const c10::OperatorHandle* linear = onednn_op("mkldnn::_linear_pointwise");
    // below about 2M multiply-adds per step (e.g. batch 64 x 128 x 128) at::mm's lower call cost wins
    // (bench/kernels.py: RNN at (64, 50, 64, 128) 1.4x torch.nn this way, 1.2x through oneDNN)
    const bool large = batch * weight_.size(0) * weight_.size(1) >= (int64_t(1) << 21);
    // on Intel CPUs MKL runs its AVX-512 code and wins from 32 rows up (2-core Xeon Sapphire Rapids: RNN at
    // (32, 100, 128, 256) 0.83x torch.nn through oneDNN, 1.13x through MKL; GRU at (64, 50, 64, 128) 1.41x and
    // 1.66x); at 16 rows oneDNN still wins (GRU at (16, 200, 256, 512): 1.55x against 1.32x). Without AVX-512
    // oneDNN has no wider vectors than MKL, and the same split holds (2-core Zen 3: RNN at (32, 100, 128, 256)
    // 1.12x through oneDNN, 1.38x through MKL; GRU at (64, 50, 64, 128) 1.49x and 1.77x; at 16 rows GRU 1.49x
    // and 1.33x)
    static const bool mkl_vectors = mkl_vectors_as_wide();
    const bool mkl_wins = mkl_vectors && batch > 16;
    if (weight_.scalar_type() != at::kFloat || !reorder || !linear || !large || mkl_wins) return;
    linear_ = linear;
    torch::jit::Stack stack{weight_, c10::IValue(batch)};
    reorder->callBoxed(&stack);
    packed_ = stack[0].toTensor();
  }

  // a[:bs] @ B (+ bias): a fresh oneDNN result (no copy), or written into buffer[:bs]
  Tensor product(const Tensor& a, int64_t bs, const Opt& bias, Tensor& buffer) const {
    Tensor rows = a.narrow(0, 0, bs);
    if (linear_) {
      torch::jit::Stack stack{rows, packed_, bias ? c10::IValue(*bias) : c10::IValue(), c10::IValue("none"),
                              c10::IValue(c10::List<std::optional<c10::Scalar>>()), c10::IValue("")};
      linear_->callBoxed(&stack);
      return stack[0].toTensor();
    }
    Tensor out = buffer.narrow(0, 0, bs);
    bias ? at::addmm_out(out, *bias, rows, b_) : at::mm_out(out, rows, b_);
    return out;
  }

  // c[:bs] += a[:bs] @ B
  void accumulate(const Tensor& a, Tensor& c, int64_t bs) const {
    Tensor out = c.narrow(0, 0, bs);
    linear_ ? void(out.add_(product(a, bs, Opt(), out))) : void(out.addmm_(a.narrow(0, 0, bs), b_));
  }

 private:
  Tensor weight_, b_, packed_;
  const c10::OperatorHandle* linear_ = nullptr;
};

// (h[:bs] * rmask[:bs]) @ W_hh^T + b_hh, (bs, G*H) contiguous: oneDNN's result or gh[:bs]
inline Tensor recurrent_product(Tensor& gh, const Tensor& h, const Opt& rmask, const StepWeights& w, const Opt& b_hh,
                                int64_t bs, Tensor& scratch) {
  Tensor h_in = h;
  if (rmask) {
    Tensor masked = scratch.narrow(0, 0, bs);
    at::mul_out(masked, h.narrow(0, 0, bs), rmask->narrow(0, 0, bs));
    h_in = scratch;
  }
  return w.product(h_in, bs, b_hh, gh);
}

// dh[:bs] += (dgh[:bs] @ W_hh) * rmask[:bs]; dgh_t holds the bs rows of this step
inline void recurrent_backward(Tensor& dh, const Tensor& dgh_t, const Opt& rmask, const StepWeights& w, int64_t bs,
                               Tensor& scratch) {
  if (rmask) {
    dh.narrow(0, 0, bs).addcmul_(w.product(dgh_t, bs, Opt(), scratch), rmask->narrow(0, 0, bs));
  } else {
    w.accumulate(dgh_t, dh, bs);
  }
}

template <typename T>
const T* ptr_or_null(const Opt& t) { return t ? t->data_ptr<T>() : nullptr; }

inline Opt contiguous(const Opt& t) { return t ? Opt(t->contiguous()) : Opt(); }

}  // namespace rnnkit
