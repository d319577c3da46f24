// Layer-norm LSTM loop (rnnkit.cells.LayerNormLSTMCell), same packed layout and masks as loops.cpp:
//   gh = LN_hh(W_hh (h*m)),  (i, f, g, o) = act(xp + gh),  c~ = f c + i g,  h~ = o tanh(LN_c(c~))
// with LN(v) = gamma * (v - mean) * rstd + beta over the row, then zoneout's h = d h_prev + (1 - d) h~ (c alike).
// Forward saves a_hat (normalised W_hh h), its rstd, c_hat and its rstd; backward returns d_xp, d_a (gradient of
// W_hh h, for dW_hh), d_y (gradient of LN_c's output, for its gain and offset) and the state gradients. The
// equations are in rnnkit/kernels/layer_norm_loops.py, the pure-PyTorch twin.
#include "common.h"

using namespace rnnkit;

namespace {

// Row sums in the element type, but over 16 interleaved partial sums: that vectorises, and its rounding error
// grows like a pairwise sum's rather than a running sum's (a running fp32 sum drifted past the tests' 1e-5 on
// LayerNorm's backward, which amplifies rounding by rstd).
template <typename T, typename F>
T lane_sum(int64_t n, const F& term) {
  constexpr int64_t kLanes = 16;
  T lanes[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    SIMD for (int64_t k = 0; k < kLanes; ++k) lanes[k] += term(j + k);
  }
  T total = 0;
  for (; j < n; ++j) total += term(j);
  for (int64_t k = 0; k < kLanes; ++k) total += lanes[k];
  return total;
}

// mean and 1/sqrt(var + eps) of v[0, n), two passes as LayerNorm does
template <typename T>
void moments(const T* v, int64_t n, double eps, T& mean, T& rstd) {
  mean = lane_sum<T>(n, [&](int64_t j) { return v[j]; }) / T(n);
  const T m = mean;
  const T squares = lane_sum<T>(n, [&](int64_t j) { return (v[j] - m) * (v[j] - m); });
  rstd = T(1) / std::sqrt(squares / T(n) + T(eps));
}

// in place: dv <- rstd * (dv - mean(dv) - v_hat * mean(dv * v_hat)), LayerNorm's input gradient
template <typename T>
void layer_norm_backward(T* dv, const T* v_hat, int64_t n, T rstd) {
  const T mean_dv = lane_sum<T>(n, [&](int64_t j) { return dv[j]; }) / T(n);
  const T mean_dv_hat = lane_sum<T>(n, [&](int64_t j) { return dv[j] * v_hat[j]; }) / T(n);
  SIMD for (int64_t j = 0; j < n; ++j) dv[j] = rstd * (dv[j] - mean_dv - v_hat[j] * mean_dv_hat);
}

}  // namespace

std::vector<Tensor> layer_norm_lstm_forward(Tensor xp, Tensor h0, Tensor c0, Tensor w_hh, Tensor gamma_hh,
                                            Opt beta_hh, double eps_hh, Tensor gamma_c, Opt beta_c, double eps_c,
                                            Sizes batch_sizes, Opt rmask, Opt zmask_h, Opt zmask_c) {
  xp = pooled_contiguous(xp);
  gamma_hh = gamma_hh.contiguous();
  gamma_c = gamma_c.contiguous();
  beta_hh = contiguous(beta_hh);
  beta_c = contiguous(beta_c);
  rmask = contiguous(rmask);
  const int64_t T = xp.size(0), N = h0.size(0), H = h0.size(1);
  const Sizes off = offsets_of(batch_sizes);
  const ZoneoutWeights keep_h(zmask_h, N, H, xp.options()), keep_c(zmask_c, N, H, xp.options());
  Tensor out = pooled_empty({T, H}, xp.options()), cs = pooled_empty({T, H}, xp.options());
  Tensor act = pooled_empty({T, 5 * H}, xp.options());  // i | f | g | o | tanh(y)
  Tensor a_hat = pooled_empty({T, 4 * H}, xp.options()), c_hat = pooled_empty({T, H}, xp.options());
  Tensor rstd = pooled_empty({T, 2}, xp.options());  // rstd of W_hh h | rstd of c~
  Tensor h = h0.contiguous().clone(), c = c0.contiguous().clone(), gh = at::empty({N, 4 * H}, xp.options());
  Tensor scratch = at::empty({N, H}, xp.options());
  const int64_t blocks = row_blocks(N, lstm_rows_per_thread());  // each block of rows: the time loop on its own thread
  const StepWeights w_t(w_hh, /*transpose_for_linear=*/false, (N + blocks - 1) / blocks, /*gates=*/4, blocks > 1);
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "layer_norm_lstm_forward", [&] {
    with_zoneout_kind(keep_h, [&](auto kind) {
      const scalar_t* gam = gamma_hh.data_ptr<scalar_t>();
      const scalar_t* bet = ptr_or_null<scalar_t>(beta_hh);
      const scalar_t* gam_c = gamma_c.data_ptr<scalar_t>();
      const scalar_t* bet_c = ptr_or_null<scalar_t>(beta_c);
      for_each_step(batch_sizes, off, N, blocks, /*reversed=*/false,
                    [&](int64_t t, int64_t first, int64_t bs, int64_t row) {
        Tensor gh_t = recurrent_product(gh, h, rmask, w_t, Opt(), first, bs, scratch);
        for_rows(first, bs, 9 * H, [&](int64_t n) {
          const int64_t r = row + n, G = 4 * H;
          const scalar_t* x = xp.data_ptr<scalar_t>() + r * G;
          scalar_t* g_row = gh_t.data_ptr<scalar_t>() + (n - first) * G;  // the step's product, from row `first` on
          scalar_t* ah = a_hat.data_ptr<scalar_t>() + r * G;
          scalar_t* a = act.data_ptr<scalar_t>() + r * 5 * H;
          scalar_t* rs = rstd.data_ptr<scalar_t>() + r * 2;
          scalar_t mean, inv;
          moments(g_row, G, eps_hh, mean, inv);
          rs[0] = inv;
          SIMD for (int64_t j = 0; j < G; ++j) {
            ah[j] = (g_row[j] - mean) * inv;
            g_row[j] = x[j] + gam[j] * ah[j] + (bet ? bet[j] : scalar_t(0));  // the gate pre-activations
          }
          SIMD for (int64_t j = 0; j < 2 * H; ++j) a[j] = sigmoid(g_row[j]);
          SIMD for (int64_t j = 2 * H; j < 3 * H; ++j) a[j] = tanh_by_exp(g_row[j]);
          SIMD for (int64_t j = 3 * H; j < 4 * H; ++j) a[j] = sigmoid(g_row[j]);
          scalar_t* cp = c.data_ptr<scalar_t>() + n * H;
          scalar_t* hp = h.data_ptr<scalar_t>() + n * H;
          scalar_t* ch = c_hat.data_ptr<scalar_t>() + r * H;
          SIMD for (int64_t j = 0; j < H; ++j) ch[j] = a[H + j] * cp[j] + a[j] * a[2 * H + j];  // c~, for now
          moments(ch, H, eps_c, mean, inv);
          rs[1] = inv;
          const scalar_t* kh = keep_h.step<scalar_t>(row, H) + n * H;
          const scalar_t* kc = keep_c.step<scalar_t>(row, H) + n * H;
          scalar_t* o_row = out.data_ptr<scalar_t>() + r * H;
          scalar_t* c_row = cs.data_ptr<scalar_t>() + r * H;
          SIMD for (int64_t j = 0; j < H; ++j) {
            const scalar_t c_new = ch[j];
            ch[j] = (c_new - mean) * inv;
            const scalar_t tc = tanh_by_exp(gam_c[j] * ch[j] + (bet_c ? bet_c[j] : scalar_t(0)));
            a[4 * H + j] = tc;
            hp[j] = zoneout(kind, kh[j], hp[j], a[3 * H + j] * tc);
            cp[j] = zoneout(kind, kc[j], cp[j], c_new);
            o_row[j] = hp[j];
            c_row[j] = cp[j];
          }
        });
      });
    });
  });
  return {out, h, c, act, cs, a_hat, c_hat, rstd};
}

std::vector<Tensor> layer_norm_lstm_backward(Tensor grad_out, Tensor grad_hn, Tensor grad_cn, Tensor c0, Tensor cs,
                                             Tensor act, Tensor a_hat, Tensor c_hat, Tensor rstd, Tensor w_hh,
                                             Tensor gamma_hh, Tensor gamma_c, Sizes batch_sizes, Opt rmask,
                                             Opt zmask_h, Opt zmask_c) {
  grad_out = pooled_contiguous(grad_out);
  c0 = c0.contiguous();
  gamma_hh = gamma_hh.contiguous();
  gamma_c = gamma_c.contiguous();
  rmask = contiguous(rmask);
  const int64_t T = act.size(0), N = c0.size(0), H = c0.size(1);
  const Sizes off = offsets_of(batch_sizes);
  const ZoneoutWeights keep_h(zmask_h, N, H, act.options()), keep_c(zmask_c, N, H, act.options());
  Tensor dxp = pooled_empty({T, 4 * H}, act.options()), da = pooled_empty({T, 4 * H}, act.options());
  Tensor dy = pooled_empty({T, H}, act.options());
  Tensor dh = grad_hn.contiguous().clone(), dc = grad_cn.contiguous().clone();
  Tensor scratch = at::empty({N, H}, act.options());
  const int64_t blocks = row_blocks(N, lstm_rows_per_thread());  // each block of rows: the time loop on its own thread
  const StepWeights w_back(w_hh, /*transpose_for_linear=*/true, (N + blocks - 1) / blocks, /*gates=*/4, blocks > 1);
  AT_DISPATCH_FLOATING_TYPES(act.scalar_type(), "layer_norm_lstm_backward", [&] {
    with_zoneout_kind(keep_h, [&](auto kind) {
      const scalar_t* gam = gamma_hh.data_ptr<scalar_t>();
      const scalar_t* gam_c = gamma_c.data_ptr<scalar_t>();
      for_each_step(batch_sizes, off, N, blocks, /*reversed=*/true,
                    [&](int64_t t, int64_t first, int64_t bs, int64_t row) {
        const scalar_t* c_prev_t = t == 0 ? c0.data_ptr<scalar_t>() : cs.data_ptr<scalar_t>() + off[t - 1] * H;
        for_rows(first, bs, 9 * H, [&](int64_t n) {
          const int64_t r = row + n, G = 4 * H;
          const scalar_t* a = act.data_ptr<scalar_t>() + r * 5 * H;
          const scalar_t* ch = c_hat.data_ptr<scalar_t>() + r * H;
          const scalar_t* ah = a_hat.data_ptr<scalar_t>() + r * G;
          const scalar_t* rs = rstd.data_ptr<scalar_t>() + r * 2;
          const scalar_t* go = grad_out.data_ptr<scalar_t>() + r * H;
          const scalar_t* c_prev = c_prev_t + n * H;
          const scalar_t* kh = keep_h.step<scalar_t>(row, H) + n * H;
          const scalar_t* kc = keep_c.step<scalar_t>(row, H) + n * H;
          scalar_t* dh_row = dh.data_ptr<scalar_t>() + n * H;
          scalar_t* dc_row = dc.data_ptr<scalar_t>() + n * H;
          scalar_t* dy_row = dy.data_ptr<scalar_t>() + r * H;
          scalar_t* dc_new = scratch.data_ptr<scalar_t>() + n * H;
          scalar_t* dx = dxp.data_ptr<scalar_t>() + r * G;
          scalar_t* da_row = da.data_ptr<scalar_t>() + r * G;
          // through h~ = o tanh(y): d_o and d_y; d_c_hat (in dc_new) for LN_c's backward
          SIMD for (int64_t j = 0; j < H; ++j) {
            const scalar_t grad_h = dh_row[j] + go[j];
            const scalar_t d_h_new = zoneout_grad_new(kind, kh[j], grad_h);
            const scalar_t o = a[3 * H + j], tc = a[4 * H + j];
            dx[3 * H + j] = d_h_new * tc * o * (scalar_t(1) - o);
            dy_row[j] = d_h_new * o * (scalar_t(1) - tc * tc);
            dc_new[j] = dy_row[j] * gam_c[j];
            dh_row[j] = zoneout_grad_old(kind, kh[j], grad_h);
          }
          layer_norm_backward(dc_new, ch, H, rs[1]);
          SIMD for (int64_t j = 0; j < H; ++j) {
            const scalar_t i = a[j], f = a[H + j], g = a[2 * H + j];
            const scalar_t d_c = dc_new[j] + zoneout_grad_new(kind, kc[j], dc_row[j]);
            dx[j] = d_c * g * i * (scalar_t(1) - i);
            dx[H + j] = d_c * c_prev[j] * f * (scalar_t(1) - f);
            dx[2 * H + j] = d_c * i * (scalar_t(1) - g * g);
            dc_row[j] = zoneout_grad_old(kind, kc[j], dc_row[j]) + d_c * f;
          }
          // through gh = LN_hh(a): d_a = LN backward of d_gates * gamma_hh
          SIMD for (int64_t j = 0; j < G; ++j) da_row[j] = dx[j] * gam[j];
          layer_norm_backward(da_row, ah, G, rs[0]);
        });
        recurrent_backward(dh, da, row + first, rmask, w_back, first, bs, scratch);
      });
    });
  });
  return {dxp, da, dy, dh, dc};
}
