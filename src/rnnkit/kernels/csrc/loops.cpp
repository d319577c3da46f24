// Recurrent time loops for rnnkit's fused kernels: the per-step part only (rnnkit/kernels/recurrence.py
// owns the autograd Function, the input projection and the weight gradients).
//
// Every loop works on one layer and direction in packed layout (as torch's PackedSequence): sequences are
// sorted longest first, step t has batch_sizes[t] active sequences stored in rows [offset_t, offset_t +
// batch_sizes[t]) of the (T, .) inputs and outputs, offset_t = sum of the earlier batch sizes; the other
// sequences have ended and keep their state in h (N, H). Without lengths every step has all N rows, and the
// packed rows are just the (L, N, .) tensor flattened. Masks: rmask (N, H) multiplies h before W_hh
// (recurrent dropout); a zoneout mask holds each unit's keep weight d, h = d h_prev + (1 - d) h~ (common.h's
// zoneout): (T, H), 1 where a unit keeps its previous value, in training, or a 0-dim p at evaluation (the
// expectation). The equations and their backward are written out in rnnkit/kernels/loops.py, the pure-PyTorch
// twin of this file.
#include "common.h"

using namespace rnnkit;

// ---- Elman RNN: h~ = phi(xp + W_hh (h*m) + b_hh), h = d h_prev + (1 - d) h~ ------------------------------

std::vector<Tensor> rnn_forward(Tensor xp, Tensor h0, Tensor w_hh, Opt b_hh, Sizes batch_sizes, Opt rmask,
                                Opt zmask, bool relu) {
  xp = pooled_contiguous(xp);
  rmask = contiguous(rmask);
  const int64_t T = xp.size(0), N = h0.size(0), H = h0.size(1);
  const Sizes off = offsets_of(batch_sizes);
  const ZoneoutWeights keep(zmask, N, H, xp.options());
  Tensor out = pooled_empty({T, H}, xp.options());
  // without zoneout every step's output is its activation, which is all the backward reads: one (T, H) buffer,
  // not two (a fresh buffer of that size costs page faults as large as the time loop's elementwise work)
  Tensor act = zmask ? pooled_empty({T, H}, xp.options()) : out;
  Tensor h = h0.contiguous().clone(), gh = at::empty({N, H}, xp.options()), scratch = at::empty_like(gh);
  const int64_t blocks = row_blocks(N);  // each block of rows runs the time loop on its own thread
  const StepWeights w_t(w_hh, /*transpose_for_linear=*/false, (N + blocks - 1) / blocks, /*gates=*/1, blocks > 1);
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "rnn_forward", [&] {
    with_zoneout_kind(keep, [&](auto kind) {
      for_each_step(batch_sizes, off, N, blocks, /*reversed=*/false,
                    [&](int64_t t, int64_t first, int64_t bs, int64_t row) {
        const Tensor gh_t = recurrent_product(gh, h, rmask, w_t, b_hh, first, bs, scratch);
        const scalar_t* x_t = xp.data_ptr<scalar_t>() + row * H;
        const scalar_t* g = gh_t.data_ptr<scalar_t>();  // the step's product, from row `first` on
        const scalar_t* k_t = keep.step<scalar_t>(row, H);
        scalar_t* a_t = act.data_ptr<scalar_t>() + row * H;
        scalar_t* o_t = out.data_ptr<scalar_t>() + row * H;
        scalar_t* hp = h.data_ptr<scalar_t>();
        for_rows(first, bs, H, [&](int64_t n) {
          const int64_t begin = n * H, end = begin + H;
          const scalar_t* gn = g + (n - first) * H;
          if (relu) {
            SIMD for (int64_t j = begin; j < end; ++j) a_t[j] = std::max(x_t[j] + gn[j - begin], scalar_t(0));
          } else {
            SIMD for (int64_t j = begin; j < end; ++j) a_t[j] = tanh_by_exp(x_t[j] + gn[j - begin]);
          }
          SIMD for (int64_t j = begin; j < end; ++j) {
            hp[j] = zoneout(kind, k_t[j], hp[j], a_t[j]);
            o_t[j] = hp[j];
          }
        });
      });
    });
  });
  return {out, h, act};
}

std::vector<Tensor> rnn_backward(Tensor grad_out, Tensor grad_hn, Tensor act, Tensor w_hh, Sizes batch_sizes,
                                 Opt rmask, Opt zmask, bool relu) {
  grad_out = pooled_contiguous(grad_out);
  rmask = contiguous(rmask);
  const int64_t T = act.size(0), N = grad_hn.size(0), H = grad_hn.size(1);
  const Sizes off = offsets_of(batch_sizes);
  const ZoneoutWeights keep(zmask, N, H, act.options());
  Tensor dxp = pooled_empty({T, H}, act.options());
  Tensor dh = grad_hn.contiguous().clone(), scratch = at::empty({N, H}, act.options());
  const int64_t blocks = row_blocks(N);  // each block of rows runs the time loop on its own thread
  const StepWeights w_back(w_hh, /*transpose_for_linear=*/true, (N + blocks - 1) / blocks, /*gates=*/1, blocks > 1);
  AT_DISPATCH_FLOATING_TYPES(act.scalar_type(), "rnn_backward", [&] {
    with_zoneout_kind(keep, [&](auto kind) {
      for_each_step(batch_sizes, off, N, blocks, /*reversed=*/true,
                    [&](int64_t t, int64_t first, int64_t bs, int64_t row) {
        const scalar_t* go = grad_out.data_ptr<scalar_t>() + row * H;
        const scalar_t* a_t = act.data_ptr<scalar_t>() + row * H;
        const scalar_t* k_t = keep.step<scalar_t>(row, H);
        scalar_t* d_t = dxp.data_ptr<scalar_t>() + row * H;
        scalar_t* d = dh.data_ptr<scalar_t>();
        for_rows(first, bs, H, [&](int64_t n) {
          SIMD for (int64_t j = n * H; j < (n + 1) * H; ++j) {
            const scalar_t grad = d[j] + go[j];
            const scalar_t d_new = zoneout_grad_new(kind, k_t[j], grad);
            const scalar_t v = a_t[j];
            d_t[j] = d_new * (relu ? scalar_t(v > 0) : scalar_t(1) - v * v);
            d[j] = zoneout_grad_old(kind, k_t[j], grad);
          }
        });
        recurrent_backward(dh, dxp, row + first, rmask, w_back, first, bs, scratch);
      });
    });
  });
  return {dxp, dh};
}

// ---- GRU: r, z = sigmoid(x_{r,z} + gh_{r,z}), n = tanh(x_n + r * gh_n), h~ = (1 - z) n + z h_prev --------

std::vector<Tensor> gru_forward(Tensor xp, Tensor h0, Tensor w_hh, Opt b_hh, Sizes batch_sizes, Opt rmask,
                                Opt zmask) {
  xp = pooled_contiguous(xp);
  rmask = contiguous(rmask);
  const int64_t T = xp.size(0), N = h0.size(0), H = h0.size(1);
  const Sizes off = offsets_of(batch_sizes);
  const ZoneoutWeights keep(zmask, N, H, xp.options());
  Tensor out = pooled_empty({T, H}, xp.options());
  Tensor act = pooled_empty({T, 4 * H}, xp.options());  // r | z | n | gh_n
  Tensor h = h0.contiguous().clone(), gh = at::empty({N, 3 * H}, xp.options());
  Tensor scratch = at::empty({N, H}, xp.options());
  const int64_t blocks = row_blocks(N);  // each block of rows runs the time loop on its own thread
  const StepWeights w_t(w_hh, /*transpose_for_linear=*/false, (N + blocks - 1) / blocks, /*gates=*/3, blocks > 1);
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "gru_forward", [&] {
    with_zoneout_kind(keep, [&](auto kind) {
      for_each_step(batch_sizes, off, N, blocks, /*reversed=*/false,
                    [&](int64_t t, int64_t first, int64_t bs, int64_t row) {
        const Tensor gh_t = recurrent_product(gh, h, rmask, w_t, b_hh, first, bs, scratch);
        const scalar_t* x_t = xp.data_ptr<scalar_t>() + row * 3 * H;
        const scalar_t* g = gh_t.data_ptr<scalar_t>();  // the step's product, from row `first` on
        const scalar_t* k_t = keep.step<scalar_t>(row, H);
        scalar_t* a_t = act.data_ptr<scalar_t>() + row * 4 * H;
        scalar_t* o_t = out.data_ptr<scalar_t>() + row * H;
        scalar_t* hp = h.data_ptr<scalar_t>();
        for_rows(first, bs, 4 * H, [&](int64_t n) {
          const scalar_t* x = x_t + n * 3 * H;
          const scalar_t* gn = g + (n - first) * 3 * H;
          scalar_t* a = a_t + n * 4 * H;
          // r and z are adjacent in xp, gh and act: one loop
          SIMD for (int64_t j = 0; j < 2 * H; ++j) a[j] = sigmoid(x[j] + gn[j]);
          SIMD for (int64_t j = 0; j < H; ++j) {
            a[2 * H + j] = tanh_by_exp(x[2 * H + j] + a[j] * gn[2 * H + j]);
            a[3 * H + j] = gn[2 * H + j];
          }
          scalar_t* h_row = hp + n * H;
          scalar_t* o_row = o_t + n * H;
          const scalar_t* keep_row = k_t + n * H;
          SIMD for (int64_t j = 0; j < H; ++j) {
            const scalar_t z = a[H + j];
            const scalar_t h_new = (scalar_t(1) - z) * a[2 * H + j] + z * h_row[j];
            h_row[j] = zoneout(kind, keep_row[j], h_row[j], h_new);
            o_row[j] = h_row[j];
          }
        });
      });
    });
  });
  return {out, h, act};
}

std::vector<Tensor> gru_backward(Tensor grad_out, Tensor grad_hn, Tensor h0, Tensor out, Tensor act, Tensor w_hh,
                                 Sizes batch_sizes, Opt rmask, Opt zmask) {
  grad_out = pooled_contiguous(grad_out);
  h0 = h0.contiguous();
  rmask = contiguous(rmask);
  const int64_t T = act.size(0), N = h0.size(0), H = h0.size(1);
  const Sizes off = offsets_of(batch_sizes);
  const ZoneoutWeights keep(zmask, N, H, act.options());
  Tensor dxp = pooled_empty({T, 3 * H}, act.options());
  Tensor dgh = pooled_empty({T, 3 * H}, act.options());
  Tensor dh = grad_hn.contiguous().clone(), scratch = at::empty({N, H}, act.options());
  const int64_t blocks = row_blocks(N);  // each block of rows runs the time loop on its own thread
  const StepWeights w_back(w_hh, /*transpose_for_linear=*/true, (N + blocks - 1) / blocks, /*gates=*/3, blocks > 1);
  AT_DISPATCH_FLOATING_TYPES(act.scalar_type(), "gru_backward", [&] {
    with_zoneout_kind(keep, [&](auto kind) {
      for_each_step(batch_sizes, off, N, blocks, /*reversed=*/true,
                    [&](int64_t t, int64_t first, int64_t bs, int64_t row) {
        const scalar_t* go = grad_out.data_ptr<scalar_t>() + row * H;
        const scalar_t* a_t = act.data_ptr<scalar_t>() + row * 4 * H;
        const scalar_t* h_prev = t == 0 ? h0.data_ptr<scalar_t>() : out.data_ptr<scalar_t>() + off[t - 1] * H;
        const scalar_t* k_t = keep.step<scalar_t>(row, H);
        scalar_t* dx_t = dxp.data_ptr<scalar_t>() + row * 3 * H;
        scalar_t* dg_t = dgh.data_ptr<scalar_t>() + row * 3 * H;
        scalar_t* d = dh.data_ptr<scalar_t>();
        for_rows(first, bs, 4 * H, [&](int64_t n) {
          const scalar_t* a = a_t + n * 4 * H;
          scalar_t* dx = dx_t + n * 3 * H;
          scalar_t* dg = dg_t + n * 3 * H;
          SIMD for (int64_t j = 0; j < H; ++j) {
            const int64_t k = n * H + j;
            const scalar_t grad = d[k] + go[k];
            const scalar_t d_new = zoneout_grad_new(kind, k_t[k], grad);
            const scalar_t r = a[j], z = a[H + j], nn = a[2 * H + j], gh_n = a[3 * H + j];
            const scalar_t d_n_pre = d_new * (scalar_t(1) - z) * (scalar_t(1) - nn * nn);
            const scalar_t d_z_pre = d_new * (h_prev[k] - nn) * z * (scalar_t(1) - z);
            const scalar_t d_r_pre = d_n_pre * gh_n * r * (scalar_t(1) - r);
            dx[j] = d_r_pre;
            dx[H + j] = d_z_pre;
            dx[2 * H + j] = d_n_pre;
            dg[j] = d_r_pre;
            dg[H + j] = d_z_pre;
            dg[2 * H + j] = d_n_pre * r;
            d[k] = zoneout_grad_old(kind, k_t[k], grad) + d_new * z;
          }
        });
        recurrent_backward(dh, dgh, row + first, rmask, w_back, first, bs, scratch);
      });
    });
  });
  return {dxp, dgh, dh};
}

// ---- LSTM: i, f, o = sigmoid, g = tanh of xp + gh; c~ = f c + i g; h~ = o tanh(c~) -------------------------
// With x and W_ih given (xp then empty), each step's product takes the input too: gh_t = x_t W_ih^T + h W_hh^T + b,
// so the (T, 4H) input product is never written to memory and read back.

std::vector<Tensor> lstm_forward(Tensor xp, Tensor h0, Tensor c0, Tensor w_hh, Opt b_hh, Sizes batch_sizes,
                                 Opt rmask, Opt zmask_h, Opt zmask_c, Opt x, Opt w_ih) {
  const bool fused = x.has_value();
  if (fused) x = x->contiguous();
  else xp = pooled_contiguous(xp);
  rmask = contiguous(rmask);
  const int64_t N = h0.size(0), H = h0.size(1), T = fused ? x->size(0) : xp.size(0);
  const int64_t I = fused ? x->size(1) : 0;
  const auto options = h0.options();
  const Sizes off = offsets_of(batch_sizes);
  const ZoneoutWeights keep_h(zmask_h, N, H, options), keep_c(zmask_c, N, H, options);
  Tensor out = pooled_empty({T, H}, options);
  Tensor cs = pooled_empty({T, H}, options);      // c at every step (after zoneout)
  Tensor act = pooled_empty({T, 5 * H}, options);  // i | f | g | o | tanh(c~)
  Tensor h = h0.contiguous().clone(), c = c0.contiguous().clone(), gh = at::empty({N, 4 * H}, options);
  Tensor scratch = at::empty({N, H}, options);
  const int64_t blocks = row_blocks(N, lstm_rows_per_thread());  // each block of rows: the time loop on its own thread
  const int64_t block_rows = (N + blocks - 1) / blocks;
  const StepWeights w_t(w_hh, /*transpose_for_linear=*/false, block_rows, /*gates=*/4, blocks > 1);
  const std::optional<StepWeights> w_x =
      fused ? std::optional<StepWeights>(std::in_place, *w_ih, false, block_rows, 4, blocks > 1) : std::nullopt;
  AT_DISPATCH_FLOATING_TYPES(options.dtype().toScalarType(), "lstm_forward", [&] {
    with_zoneout_kind(keep_h, [&](auto kind) {
      for_each_step(batch_sizes, off, N, blocks, /*reversed=*/false,
                    [&](int64_t t, int64_t first, int64_t bs, int64_t row) {
        const Tensor gh_t = recurrent_product(gh, h, rmask, w_t, b_hh, first, bs, scratch);
        if (fused) {
          const scalar_t* x_rows = x->data_ptr<scalar_t>() + (row + first) * I;
          if (!w_x->raw<scalar_t>(x_rows, bs, nullptr, gh_t.data_ptr<scalar_t>(), /*accumulate=*/true)) {
            w_x->accumulate(x->narrow(0, row + first, bs), gh_t);
          }
        }
        const scalar_t* x_t = fused ? nullptr : xp.data_ptr<scalar_t>() + row * 4 * H;
        const scalar_t* g_all = gh_t.data_ptr<scalar_t>();  // the step's product, from row `first` on
        const scalar_t* kh_t = keep_h.step<scalar_t>(row, H);
        const scalar_t* kc_t = keep_c.step<scalar_t>(row, H);
        scalar_t* a_t = act.data_ptr<scalar_t>() + row * 5 * H;
        scalar_t* o_t = out.data_ptr<scalar_t>() + row * H;
        scalar_t* c_t = cs.data_ptr<scalar_t>() + row * H;
        scalar_t* hp = h.data_ptr<scalar_t>();
        scalar_t* cp = c.data_ptr<scalar_t>();
        for_rows(first, bs, 5 * H, [&](int64_t n) {
          const scalar_t* gn = g_all + (n - first) * 4 * H;
          scalar_t* a = a_t + n * 5 * H;
          if (x_t) {
            const scalar_t* x = x_t + n * 4 * H;
            // i and f are adjacent: one loop
            SIMD for (int64_t j = 0; j < 2 * H; ++j) a[j] = sigmoid(x[j] + gn[j]);
            SIMD for (int64_t j = 2 * H; j < 3 * H; ++j) a[j] = tanh_by_exp(x[j] + gn[j]);
            SIMD for (int64_t j = 3 * H; j < 4 * H; ++j) a[j] = sigmoid(x[j] + gn[j]);
          } else {  // the input is in gn already
            SIMD for (int64_t j = 0; j < 2 * H; ++j) a[j] = sigmoid(gn[j]);
            SIMD for (int64_t j = 2 * H; j < 3 * H; ++j) a[j] = tanh_by_exp(gn[j]);
            SIMD for (int64_t j = 3 * H; j < 4 * H; ++j) a[j] = sigmoid(gn[j]);
          }
          const int64_t row = n * H;
          SIMD for (int64_t j = 0; j < H; ++j) {
            const int64_t k = row + j;
            const scalar_t c_new = a[H + j] * cp[k] + a[j] * a[2 * H + j];
            const scalar_t tc = tanh_by_exp(c_new);
            a[4 * H + j] = tc;
            hp[k] = zoneout(kind, kh_t[k], hp[k], a[3 * H + j] * tc);
            cp[k] = zoneout(kind, kc_t[k], cp[k], c_new);
            o_t[k] = hp[k];
            c_t[k] = cp[k];
          }
        });
      });
    });
  });
  return {out, h, c, act, cs};
}

// With W_ih given, each step also forms its rows of the input gradient, dx_t = dXP_t W_ih, returned last.
std::vector<Tensor> lstm_backward(Tensor grad_out, Tensor grad_hn, Tensor grad_cn, Tensor c0, Tensor cs, Tensor act,
                                  Tensor w_hh, Sizes batch_sizes, Opt rmask, Opt zmask_h, Opt zmask_c, Opt w_ih) {
  grad_out = pooled_contiguous(grad_out);
  c0 = c0.contiguous();
  rmask = contiguous(rmask);
  const int64_t T = act.size(0), N = c0.size(0), H = c0.size(1);
  const Sizes off = offsets_of(batch_sizes);
  const ZoneoutWeights keep_h(zmask_h, N, H, act.options()), keep_c(zmask_c, N, H, act.options());
  Tensor dxp = pooled_empty({T, 4 * H}, act.options());
  Tensor dh = grad_hn.contiguous().clone(), dc = grad_cn.contiguous().clone();
  Tensor scratch = at::empty({N, H}, act.options());
  const int64_t blocks = row_blocks(N, lstm_rows_per_thread());  // each block of rows: the time loop on its own thread
  const StepWeights w_back(w_hh, /*transpose_for_linear=*/true, (N + blocks - 1) / blocks, /*gates=*/4, blocks > 1);
  const std::optional<StepWeights> w_x = w_ih ? std::optional<StepWeights>(std::in_place, *w_ih, true,
                                                                            (N + blocks - 1) / blocks, 4, blocks > 1)
                                              : std::nullopt;
  Tensor dx = w_ih ? pooled_empty({T, w_ih->size(1)}, act.options()) : Tensor();
  AT_DISPATCH_FLOATING_TYPES(act.scalar_type(), "lstm_backward", [&] {
    with_zoneout_kind(keep_h, [&](auto kind) {
      for_each_step(batch_sizes, off, N, blocks, /*reversed=*/true,
                    [&](int64_t t, int64_t first, int64_t bs, int64_t row) {
        const scalar_t* go = grad_out.data_ptr<scalar_t>() + row * H;
        const scalar_t* a_t = act.data_ptr<scalar_t>() + row * 5 * H;
        const scalar_t* c_prev = t == 0 ? c0.data_ptr<scalar_t>() : cs.data_ptr<scalar_t>() + off[t - 1] * H;
        const scalar_t* kh_t = keep_h.step<scalar_t>(row, H);
        const scalar_t* kc_t = keep_c.step<scalar_t>(row, H);
        scalar_t* dx_t = dxp.data_ptr<scalar_t>() + row * 4 * H;
        scalar_t* dhp = dh.data_ptr<scalar_t>();
        scalar_t* dcp = dc.data_ptr<scalar_t>();
        for_rows(first, bs, 5 * H, [&](int64_t n) {
          const scalar_t* a = a_t + n * 5 * H;
          scalar_t* dx = dx_t + n * 4 * H;
          SIMD for (int64_t j = 0; j < H; ++j) {
            const int64_t k = n * H + j;
            const scalar_t grad_h = dhp[k] + go[k];
            const scalar_t d_h_new = zoneout_grad_new(kind, kh_t[k], grad_h);
            const scalar_t i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j], tc = a[4 * H + j];
            const scalar_t d_c_new = zoneout_grad_new(kind, kc_t[k], dcp[k]) + d_h_new * o * (scalar_t(1) - tc * tc);
            dx[j] = d_c_new * g * i * (scalar_t(1) - i);
            dx[H + j] = d_c_new * c_prev[k] * f * (scalar_t(1) - f);
            dx[2 * H + j] = d_c_new * i * (scalar_t(1) - g * g);
            dx[3 * H + j] = d_h_new * tc * o * (scalar_t(1) - o);
            dhp[k] = zoneout_grad_old(kind, kh_t[k], grad_h);
            dcp[k] = zoneout_grad_old(kind, kc_t[k], dcp[k]) + d_c_new * f;
          }
        });
        recurrent_backward(dh, dxp, row + first, rmask, w_back, first, bs, scratch);
        if (w_x) {
          const int64_t I = dx.size(1);
          if (!w_x->raw<scalar_t>(dxp.data_ptr<scalar_t>() + (row + first) * 4 * H, bs, nullptr,
                                  dx.data_ptr<scalar_t>() + (row + first) * I, /*accumulate=*/false)) {
            Tensor dx_t = dx.narrow(0, row + first, bs);
            dx_t.copy_(w_x->product(dxp.narrow(0, row + first, bs), Opt(), dx_t));
          }
        }
      });
    });
  });
  if (w_ih) return {dxp, dh, dc, dx};
  return {dxp, dh, dc};
}

// a @ b through oneDNN's matmul, which reads a transposed view in place (a weight gradient dY^T X), where the
// linear operator wants rows and MKL runs AVX2 code on AMD CPUs: 2-core Zen 4, both threads, 1.04-1.18x MKL's
// rate at the weight gradients of the bench shapes (e.g. 2600 x 4480 @ 4480 x 650: 206 GFLOP/s against 174);
// torch.mm where the operator is missing or refuses
Tensor onednn_mm(const Tensor& a, const Tensor& b) {
  if (at::native::mkldnn_matmul && a.scalar_type() == at::kFloat && b.scalar_type() == at::kFloat) {
    Tensor out = at::empty({a.size(0), b.size(1)}, a.options());
    try {
      at::native::mkldnn_matmul(a, b, out, /*beta=*/0.0f, /*alpha=*/1.0f);
      return out;
    } catch (const c10::Error&) {
    }
  }
  return at::mm(a, b);
}

// (a * b).sum(0) of two (T, F) tensors without the (T, F) temporary: columns split between threads
Tensor column_dot(Tensor a, Tensor b) {
  a = a.contiguous();
  b = b.contiguous();
  const int64_t T = a.size(0), F = a.size(1);
  Tensor out = at::zeros({F}, a.options());
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "column_dot", [&] {
    const scalar_t* pa = a.data_ptr<scalar_t>();
    const scalar_t* pb = b.data_ptr<scalar_t>();
    scalar_t* po = out.data_ptr<scalar_t>();
    at::parallel_for(0, F, 256, [&](int64_t begin, int64_t end) {
      for (int64_t t = 0; t < T; ++t) {
        SIMD for (int64_t j = begin; j < end; ++j) po[j] += pa[t * F + j] * pb[t * F + j];
      }
    });
  });
  return out;
}

// layer_norm_lstm.cpp
std::vector<Tensor> layer_norm_lstm_forward(Tensor xp, Tensor h0, Tensor c0, Tensor w_hh, Tensor gamma_hh,
                                            Opt beta_hh, double eps_hh, Tensor gamma_c, Opt beta_c, double eps_c,
                                            Sizes batch_sizes, Opt rmask, Opt zmask_h, Opt zmask_c);
std::vector<Tensor> layer_norm_lstm_backward(Tensor grad_out, Tensor grad_hn, Tensor grad_cn, Tensor c0, Tensor cs,
                                             Tensor act, Tensor a_hat, Tensor c_hat, Tensor rstd, Tensor w_hh,
                                             Tensor gamma_hh, Tensor gamma_c, Sizes batch_sizes, Opt rmask,
                                             Opt zmask_h, Opt zmask_c);

// step.cpp
std::vector<Tensor> stack_step(const std::string& kind, Tensor x, Tensor h, Opt c, std::vector<Tensor> params,
                               double zoneout_probability);

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("idle_buffer_bytes", [] { return BufferPool::instance().idle_bytes(); });
  // whether wide fp32 steps go through oneDNN's micro-kernel (common.h) on this CPU and torch
  m.def("steps_through_brgemm", &steps_through_brgemm);
  // whether oneDNN has wider vectors than MKL here (AMD with AVX-512)
  m.def("onednn_vectors_wider", [] { return !mkl_vectors_as_wide(); });
  m.def("onednn_mm", &onednn_mm);
  m.def("release_idle_buffers", [] { BufferPool::instance().release_idle(); });
  m.def("stack_step", &stack_step);
  m.def("column_dot", &column_dot);
  m.def("layer_norm_lstm_forward", &layer_norm_lstm_forward);
  m.def("layer_norm_lstm_backward", &layer_norm_lstm_backward);
  m.def("rnn_forward", &rnn_forward);
  m.def("rnn_backward", &rnn_backward);
  m.def("gru_forward", &gru_forward);
  m.def("gru_backward", &gru_backward);
  m.def("lstm_forward", &lstm_forward, py::arg("xp"), py::arg("h0"), py::arg("c0"), py::arg("w_hh"), py::arg("b_hh"),
        py::arg("batch_sizes"), py::arg("rmask"), py::arg("zmask_h"), py::arg("zmask_c"), py::arg("x") = py::none(),
        py::arg("w_ih") = py::none());
  m.def("lstm_backward", &lstm_backward, py::arg("grad_out"), py::arg("grad_hn"), py::arg("grad_cn"), py::arg("c0"),
        py::arg("cs"), py::arg("act"), py::arg("w_hh"), py::arg("batch_sizes"), py::arg("rmask"), py::arg("zmask_h"),
        py::arg("zmask_c"), py::arg("w_ih") = py::none());
}
