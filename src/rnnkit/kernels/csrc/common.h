// Helpers shared by rnnkit's native loops (loops.cpp, layer_norm_lstm.cpp). See loops.cpp for the layout.
#pragma once

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
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

// gh[:bs] = (h[:bs] * rmask[:bs]) @ W_hh^T + b_hh
inline void recurrent_product(Tensor& gh, const Tensor& h, const Opt& rmask, const Tensor& w_t, const Opt& b_hh,
                              int64_t bs, Tensor& scratch) {
  Tensor h_in = h.narrow(0, 0, bs);
  if (rmask) {
    Tensor masked = scratch.narrow(0, 0, bs);
    at::mul_out(masked, h_in, rmask->narrow(0, 0, bs));
    h_in = masked;
  }
  Tensor out = gh.narrow(0, 0, bs);
  if (b_hh) {
    at::addmm_out(out, *b_hh, h_in, w_t);
  } else {
    at::mm_out(out, h_in, w_t);
  }
}

// dh[:bs] += (dgh[:bs] @ W_hh) * rmask[:bs]
inline void recurrent_backward(Tensor& dh, const Tensor& dgh_t, const Opt& rmask, const Tensor& w_hh, int64_t bs,
                               Tensor& scratch) {
  Tensor dh_rows = dh.narrow(0, 0, bs);
  if (rmask) {
    Tensor product = scratch.narrow(0, 0, bs);
    at::mm_out(product, dgh_t, w_hh);
    dh_rows.addcmul_(product, rmask->narrow(0, 0, bs));
  } else {
    dh_rows.addmm_(dgh_t, w_hh);
  }
}

template <typename T>
const T* ptr_or_null(const Opt& t) { return t ? t->data_ptr<T>() : nullptr; }

inline Opt contiguous(const Opt& t) { return t ? Opt(t->contiguous()) : Opt(); }

}  // namespace rnnkit
