// One time step of a whole unidirectional stack in one native call, for streaming inference (no autograd):
// rnnkit.layers.RecurrentLayer.step at batch 1 is dominated by per-op dispatch, so the layers' products and
// gate math run here back to back. Same equations as rnnkit.cells (and loops.cpp); state (C, N, H) with C
// cells; params holds w_ih, w_hh, b_ih, b_hh per cell, an empty tensor for a missing bias. With a zoneout
// probability p, evaluation's expectation h = p h_prev + (1 - p) h~ (c alike); nothing where it is 0.
#include "common.h"

using namespace rnnkit;

namespace {

// input @ weight^T + bias. A few rows: dot products (few_rows_times_weight), without BLAS's per-call set-up,
// which dominates at batch 1.
Tensor linear(const Tensor& input, const Tensor& weight, const Tensor& bias) {
  const int64_t N = input.size(0), K = input.size(1), M = weight.size(0);
  if (N > 4 || !weight.is_contiguous()) {
    return bias.numel() ? at::addmm(bias, input, weight.t()) : at::mm(input, weight.t());
  }
  Tensor x = input.contiguous();
  Tensor out = at::empty({N, M}, input.options());
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "linear", [&] {
    const scalar_t* w = weight.data_ptr<scalar_t>();
    const scalar_t* xs = x.data_ptr<scalar_t>();
    const scalar_t* b = bias.numel() ? bias.data_ptr<scalar_t>() : nullptr;
    scalar_t* o = out.data_ptr<scalar_t>();
    few_rows_times_weight(xs, w, b, o, N, K, M, /*accumulate=*/false);
  });
  return out;
}

}  // namespace

std::vector<Tensor> stack_step(const std::string& kind, Tensor x, Tensor h, Opt c, std::vector<Tensor> params,
                               double zoneout_probability) {
  const int64_t C = h.size(0), N = h.size(1), H = h.size(2);
  Tensor h_new = at::empty_like(h, at::MemoryFormat::Contiguous);
  Tensor c_new = c ? at::empty_like(*c, at::MemoryFormat::Contiguous) : Tensor();
  Tensor input = x;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "stack_step", [&] {
    for (int64_t l = 0; l < C; ++l) {
      Tensor h_prev = h[l].contiguous();
      Tensor gi = linear(input, params[4 * l], params[4 * l + 2]).contiguous();
      Tensor gh = linear(h_prev, params[4 * l + 1], params[4 * l + 3]).contiguous();
      const scalar_t* xi = gi.data_ptr<scalar_t>();
      const scalar_t* hh = gh.data_ptr<scalar_t>();
      const scalar_t* hp = h_prev.data_ptr<scalar_t>();
      scalar_t* ho = h_new[l].data_ptr<scalar_t>();
      if (kind == "lstm") {
        Tensor c_prev = (*c)[l].contiguous();
        const scalar_t* cp = c_prev.data_ptr<scalar_t>();
        scalar_t* co = c_new[l].data_ptr<scalar_t>();
        for (int64_t n = 0; n < N; ++n) {
          const scalar_t* a = xi + n * 4 * H;
          const scalar_t* b = hh + n * 4 * H;
          SIMD for (int64_t j = 0; j < H; ++j) {
            const scalar_t i = sigmoid(a[j] + b[j]), f = sigmoid(a[H + j] + b[H + j]);
            const scalar_t g = tanh_by_exp(a[2 * H + j] + b[2 * H + j]), o = sigmoid(a[3 * H + j] + b[3 * H + j]);
            const scalar_t c_t = f * cp[n * H + j] + i * g;
            co[n * H + j] = c_t;
            ho[n * H + j] = o * tanh_by_exp(c_t);
          }
        }
      } else if (kind == "gru") {
        for (int64_t n = 0; n < N; ++n) {
          const scalar_t* a = xi + n * 3 * H;
          const scalar_t* b = hh + n * 3 * H;
          SIMD for (int64_t j = 0; j < H; ++j) {
            const scalar_t r = sigmoid(a[j] + b[j]), z = sigmoid(a[H + j] + b[H + j]);
            const scalar_t nn = tanh_by_exp(a[2 * H + j] + r * b[2 * H + j]);
            ho[n * H + j] = (scalar_t(1) - z) * nn + z * hp[n * H + j];
          }
        }
      } else {
        const bool relu = kind == "rnn_relu";
        SIMD for (int64_t k = 0; k < N * H; ++k) {
          const scalar_t pre = xi[k] + hh[k];
          ho[k] = relu ? std::max(pre, scalar_t(0)) : tanh_by_exp(pre);
        }
      }
      if (zoneout_probability > 0) {  // over the new state in place: h~ -> p h_prev + (1 - p) h~, and c alike
        const scalar_t p = scalar_t(zoneout_probability);
        SIMD for (int64_t k = 0; k < N * H; ++k) ho[k] = zoneout(Expectation{}, p, hp[k], ho[k]);
        if (c) {
          const Tensor c_prev = (*c)[l].contiguous();
          const scalar_t* cp = c_prev.data_ptr<scalar_t>();
          scalar_t* co = c_new[l].data_ptr<scalar_t>();
          SIMD for (int64_t k = 0; k < N * H; ++k) co[k] = zoneout(Expectation{}, p, cp[k], co[k]);
        }
      }
      input = h_new[l];
    }
  });
  return c ? std::vector<Tensor>{h_new, c_new} : std::vector<Tensor>{h_new};
}
