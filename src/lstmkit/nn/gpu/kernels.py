r"""The two Triton kernels of the GPU path: one LSTM time step's element-wise work, forward and backward.

Each program handles one batch row (all H units of it, so the layer norms over a row are one reduction);
the launch grid is (N,). Everything that is not element-wise stays outside: the recurrent matrix product
:math:`W_{hh} h_{t-1}` before the forward kernel, :math:`\delta h_{t-1} = \delta r_t W_{hh}` after the
backward one, and the projection :math:`W_{hr}`, are cuBLAS products (:mod:`lstmkit.nn.gpu.recurrence`).

Forward, per row, with :math:`r_t = W_{hh} (h_{t-1} \odot m)` computed beforehand and ``xw`` holding
:math:`W_{ih} x_t + b` (or :math:`\mathrm{LN}(W_{ih} x_t) + b` with layer norm):

.. math::
    \begin{array}{ll}
        a_t = xw_t + r_t \quad\text{or}\quad xw_t + \mathrm{LN}(r_t) \\
        i_t = \sigma(a^i_t + p_i \odot c_{t-1}), \quad f_t = \sigma(a^f_t + p_f \odot c_{t-1})
            \ (\text{or } 1 - i_t), \quad g_t = \phi(a^g_t) \\
        \tilde c_t = \mathrm{clip}(f_t \odot c_{t-1} + i_t \odot g_t), \quad
            o_t = \sigma(a^o_t + p_o \odot \tilde c_t) \\
        \tilde h_t = o_t \odot \psi(\tilde c_t \ \text{or}\ \mathrm{LN}(\tilde c_t)) \\
        h_t = \tilde h_t + z^h_t (h_{t-1} - \tilde h_t), \quad c_t = \tilde c_t + z^c_t (c_{t-1} - \tilde c_t)
            \quad \text{(held at } h_{t-1}, c_{t-1} \text{ past a sequence's end)}
    \end{array}

With a projection the kernel stops at :math:`\tilde h_t` (the caller projects, then applies zoneout and
the lengths to :math:`h_t`). The backward kernel runs these equations in reverse for one step; it returns
the gradient of the pre-activations (which is the gradient of ``xw``), of :math:`r_t` (through the layer
norm), of :math:`c_{t-1}` and the direct part of :math:`h_{t-1}`'s (zoneout and lengths). Parameter
gradients are summed over all steps afterwards, from what the kernels saved.

Activation codes are those of :data:`lstmkit.nn.fast.ACTIVATION_CODES`: 0 sigmoid, 1 hard_sigmoid, 2 tanh,
3 relu, 4 elu, 5 softsign. Derivatives are taken from the activation's output, as PyTorch's backward does.

Importing this module imports Triton. With ``TRITON_INTERPRET=1`` set before that, the kernels run in
Triton's interpreter on CPU tensors (how the tests check them on a machine without a GPU).
"""

from __future__ import annotations

import triton
import triton.language as tl

#: lstmkit.nn.variants.LAYER_NORM_EPS, repeated as a constexpr: a kernel reads no other kind of global.
LAYER_NORM_EPS = tl.constexpr(1e-5)


@triton.jit
def _activate(x, CODE: tl.constexpr):
    if CODE == 0:
        y = 1.0 / (1.0 + tl.exp(-x))
    elif CODE == 1:
        y = tl.minimum(tl.maximum(x / 5.0 + 0.5, 0.0), 1.0)  # 0.2 x + 0.5; 5.0 is exact in any float
    elif CODE == 2:
        e = tl.exp(-2.0 * tl.abs(x))
        y = (1.0 - e) / (1.0 + e)
        y = tl.where(x < 0, -y, y)
    elif CODE == 3:
        y = tl.where(x > 0, x, 0.0)
    elif CODE == 4:
        y = tl.where(x > 0, x, tl.exp(x) - 1.0)
    else:
        y = x / (1.0 + tl.abs(x))
    return y


@triton.jit
def _derivative(y, CODE: tl.constexpr):
    """The activation's derivative at the point where it returned ``y``."""
    if CODE == 0:
        d = y * (1.0 - y)
    elif CODE == 1:
        d = tl.where((y > 0) & (y < 1), tl.full(y.shape, 0.2, y.dtype), 0.0)  # 0.2 in y's precision
    elif CODE == 2:
        d = 1.0 - y * y
    elif CODE == 3:
        d = tl.where(y > 0, 1.0, 0.0)
    elif CODE == 4:
        d = tl.where(y > 0, 1.0, y + 1.0)
    else:
        a = 1.0 - tl.abs(y)
        d = a * a
    return d


@triton.jit(do_not_specialize=["t"])  # one compiled kernel for every step
def forward_step(
    xw, rec, h_prev, c_prev,  # (L, N, G*H), (L, N, G*H), (N, P), (N, H)
    h_out, c_out, hin_out, hh_out,  # (L, N, P), (L, N, H), (L, N, P), (L, N, H)
    act_save, cpre_save, c_mean, c_rstd, r_mean, r_rstd,  # (L, N, G*H), (L, N, H), 4 x (L, N)
    peep, ln_hh, ln_c_w, ln_c_b,  # (3 or 2, H), (G*H,), (H,), (H,)
    rmask, zh_mask, zc_mask, valid,  # (N, P), (L, N, P), (L, N, H), (L, N)
    scalars, t, N, H,  # scalars: (zh, zc, clip) in the tensors' dtype
    G: tl.constexpr, ACT_GATE: tl.constexpr, ACT_CELL: tl.constexpr, ACT_HIDDEN: tl.constexpr,
    PEEP: tl.constexpr, LN_HH: tl.constexpr, LN_C: tl.constexpr, CLIP: tl.constexpr,
    ZH: tl.constexpr, ZH_MASK: tl.constexpr, ZC: tl.constexpr, ZC_MASK: tl.constexpr,
    RMASK: tl.constexpr, VALID: tl.constexpr, PROJ: tl.constexpr, SAVE: tl.constexpr, BLOCK_H: tl.constexpr,
):  # fmt: skip
    n = tl.program_id(0)
    zh = tl.load(scalars)
    zc = tl.load(scalars + 1)
    clip = tl.load(scalars + 2)
    cols = tl.arange(0, BLOCK_H)
    m = cols < H
    row = (t * N + n).to(tl.int64)  # this step's row in the (L, N, ...) buffers; int64: no overflow
    gate_row = row * G * H
    # Gate blocks: i, f, g, o; or i, g, o with coupled gates (G == 3).
    OFF_G: tl.constexpr = 2 if G == 4 else 1
    OFF_O: tl.constexpr = G - 1

    r_i = tl.load(rec + gate_row + cols, mask=m, other=0.0)
    r_g = tl.load(rec + gate_row + OFF_G * H + cols, mask=m, other=0.0)
    r_o = tl.load(rec + gate_row + OFF_O * H + cols, mask=m, other=0.0)
    if G == 4:
        r_f = tl.load(rec + gate_row + H + cols, mask=m, other=0.0)
    if LN_HH:
        total = tl.sum(r_i, 0) + tl.sum(r_g, 0) + tl.sum(r_o, 0)
        if G == 4:
            total += tl.sum(r_f, 0)
        mean = total / (G * H)
        d_i = tl.where(m, r_i - mean, 0.0)
        d_g = tl.where(m, r_g - mean, 0.0)
        d_o = tl.where(m, r_o - mean, 0.0)
        var = tl.sum(d_i * d_i, 0) + tl.sum(d_g * d_g, 0) + tl.sum(d_o * d_o, 0)
        if G == 4:
            d_f = tl.where(m, r_f - mean, 0.0)
            var += tl.sum(d_f * d_f, 0)
        rstd = 1.0 / tl.sqrt(var / (G * H) + LAYER_NORM_EPS)
        r_i = d_i * rstd * tl.load(ln_hh + cols, mask=m, other=0.0)
        r_g = d_g * rstd * tl.load(ln_hh + OFF_G * H + cols, mask=m, other=0.0)
        r_o = d_o * rstd * tl.load(ln_hh + OFF_O * H + cols, mask=m, other=0.0)
        if G == 4:
            r_f = d_f * rstd * tl.load(ln_hh + H + cols, mask=m, other=0.0)
        if SAVE:
            tl.store(r_mean + row, mean)
            tl.store(r_rstd + row, rstd)

    c = tl.load(c_prev + n * H + cols, mask=m, other=0.0)
    a_i = tl.load(xw + gate_row + cols, mask=m, other=0.0) + r_i
    a_g = tl.load(xw + gate_row + OFF_G * H + cols, mask=m, other=0.0) + r_g
    a_o = tl.load(xw + gate_row + OFF_O * H + cols, mask=m, other=0.0) + r_o
    if G == 4:
        a_f = tl.load(xw + gate_row + H + cols, mask=m, other=0.0) + r_f
    if PEEP:
        a_i += tl.load(peep + cols, mask=m, other=0.0) * c
        if G == 4:
            a_f += tl.load(peep + H + cols, mask=m, other=0.0) * c
    i = _activate(a_i, ACT_GATE)
    if G == 4:
        f = _activate(a_f, ACT_GATE)
    else:
        f = 1.0 - i
    g = _activate(a_g, ACT_CELL)
    c_pre = f * c + i * g
    c_new = c_pre
    if CLIP:
        c_new = tl.minimum(tl.maximum(c_pre, -clip), clip)
    if PEEP:
        a_o += tl.load(peep + (G - 2) * H + cols, mask=m, other=0.0) * c_new
    o = _activate(a_o, ACT_GATE)
    squashed = c_new
    if LN_C:
        c_avg = tl.sum(tl.where(m, c_new, 0.0), 0) / H
        c_dev = tl.where(m, c_new - c_avg, 0.0)
        c_inv = 1.0 / tl.sqrt(tl.sum(c_dev * c_dev, 0) / H + LAYER_NORM_EPS)
        squashed = c_dev * c_inv * tl.load(ln_c_w + cols, mask=m, other=0.0) + tl.load(ln_c_b + cols, mask=m, other=0.0)
        if SAVE:
            tl.store(c_mean + row, c_avg)
            tl.store(c_rstd + row, c_inv)
    hh = o * _activate(squashed, ACT_HIDDEN)

    if ZC:
        if ZC_MASK:
            keep_c = tl.load(zc_mask + row * H + cols, mask=m, other=0.0)
        else:
            keep_c = zc
        c_new = c_new + keep_c * (c - c_new)
    if VALID:
        v = tl.load(valid + row)
        c_new = tl.where(v != 0, c_new, c)
    tl.store(c_out + row * H + cols, c_new, mask=m)

    if PROJ:
        tl.store(hh_out + row * H + cols, hh, mask=m)
    else:  # P == H: zoneout and lengths on h here
        h = hh
        if ZH or VALID:
            h_old = tl.load(h_prev + n * H + cols, mask=m, other=0.0)
        if ZH:
            if ZH_MASK:
                keep_h = tl.load(zh_mask + row * H + cols, mask=m, other=0.0)
            else:
                keep_h = zh
            h = h + keep_h * (h_old - h)
        if VALID:
            h = tl.where(v != 0, h, h_old)
        tl.store(h_out + row * H + cols, h, mask=m)
        if RMASK:
            tl.store(hin_out + n * H + cols, h * tl.load(rmask + n * H + cols, mask=m, other=0.0), mask=m)

    if SAVE:
        tl.store(act_save + gate_row + cols, i, mask=m)
        tl.store(act_save + gate_row + OFF_G * H + cols, g, mask=m)
        tl.store(act_save + gate_row + OFF_O * H + cols, o, mask=m)
        if G == 4:
            tl.store(act_save + gate_row + H + cols, f, mask=m)
        tl.store(cpre_save + row * H + cols, c_pre, mask=m)


@triton.jit(do_not_specialize=["t"])
def backward_step(
    dh, d_out, dc, c_prev,  # (N, P) or with PROJ (N, H): the gradient of h~_t; (L, N, P); (N, H); (N, H)
    act_save, cpre_save, c_mean, c_rstd, rec, r_mean, r_rstd,  # as forward_step saved them
    peep, ln_hh, ln_c_w, ln_c_b, zh_mask, zc_mask, valid,
    d_xw, d_rec, d_cout, dh_direct, dc_prev,  # (L, N, G*H), (L, N, G*H), (L, N, H), (N, P), (N, H)
    scalars, t, N, H,  # scalars: (zh, zc, clip) in the tensors' dtype
    G: tl.constexpr, ACT_GATE: tl.constexpr, ACT_CELL: tl.constexpr, ACT_HIDDEN: tl.constexpr,
    PEEP: tl.constexpr, LN_HH: tl.constexpr, LN_C: tl.constexpr, CLIP: tl.constexpr,
    ZH: tl.constexpr, ZH_MASK: tl.constexpr, ZC: tl.constexpr, ZC_MASK: tl.constexpr,
    VALID: tl.constexpr, PROJ: tl.constexpr, HAS_D_OUT: tl.constexpr, BLOCK_H: tl.constexpr,
):  # fmt: skip
    n = tl.program_id(0)
    zh = tl.load(scalars)
    zc = tl.load(scalars + 1)
    clip = tl.load(scalars + 2)
    cols = tl.arange(0, BLOCK_H)
    m = cols < H
    row = (t * N + n).to(tl.int64)
    gate_row = row * G * H
    OFF_G: tl.constexpr = 2 if G == 4 else 1
    OFF_O: tl.constexpr = G - 1

    if VALID:
        v = tl.load(valid + row)
    # Zoneout and lengths on h (without a projection; with one the caller did this part).
    if PROJ:
        d_hh = tl.load(dh + n * H + cols, mask=m, other=0.0)
    else:
        d_h = tl.load(dh + n * H + cols, mask=m, other=0.0)
        if HAS_D_OUT:
            d_h += tl.load(d_out + row * H + cols, mask=m, other=0.0)
        d_hh = d_h
        if VALID:
            d_hh = tl.where(v != 0, d_hh, 0.0)
        if ZH:
            if ZH_MASK:
                keep_h = tl.load(zh_mask + row * H + cols, mask=m, other=0.0)
            else:
                keep_h = zh
            d_hh = d_hh * (1.0 - keep_h)
        tl.store(dh_direct + n * H + cols, d_h - d_hh, mask=m)
    # The same on c.
    d_c = tl.load(dc + n * H + cols, mask=m, other=0.0)
    d_cnew = d_c
    if VALID:
        d_cnew = tl.where(v != 0, d_cnew, 0.0)
    if ZC:
        if ZC_MASK:
            keep_c = tl.load(zc_mask + row * H + cols, mask=m, other=0.0)
        else:
            keep_c = zc
        d_cnew = d_cnew * (1.0 - keep_c)
    d_cprev = d_c - d_cnew

    i = tl.load(act_save + gate_row + cols, mask=m, other=0.0)
    g = tl.load(act_save + gate_row + OFF_G * H + cols, mask=m, other=0.0)
    o = tl.load(act_save + gate_row + OFF_O * H + cols, mask=m, other=0.0)
    if G == 4:
        f = tl.load(act_save + gate_row + H + cols, mask=m, other=0.0)
    else:
        f = 1.0 - i
    c = tl.load(c_prev + n * H + cols, mask=m, other=0.0)
    c_pre = tl.load(cpre_save + row * H + cols, mask=m, other=0.0)
    c_new = c_pre
    if CLIP:
        c_new = tl.minimum(tl.maximum(c_pre, -clip), clip)

    # h~ = o * psi(LN(c~)): back to o and c~.
    if LN_C:
        c_avg = tl.load(c_mean + row)
        c_inv = tl.load(c_rstd + row)
        c_hat = tl.where(m, (c_new - c_avg) * c_inv, 0.0)
        gain = tl.load(ln_c_w + cols, mask=m, other=0.0)
        squashed = c_hat * gain + tl.load(ln_c_b + cols, mask=m, other=0.0)
    else:
        squashed = c_new
    psi = _activate(squashed, ACT_HIDDEN)
    d_o = d_hh * psi
    d_sq = d_hh * o * _derivative(psi, ACT_HIDDEN)
    if LN_C:
        tl.store(d_cout + row * H + cols, d_sq, mask=m)
        d_hat = tl.where(m, d_sq * gain, 0.0)
        d_cnew += c_inv * (d_hat - tl.sum(d_hat, 0) / H - c_hat * (tl.sum(d_hat * c_hat, 0) / H))
    else:
        d_cnew += d_sq
    d_ao = d_o * _derivative(o, ACT_GATE)
    if PEEP:
        d_cnew += d_ao * tl.load(peep + (G - 2) * H + cols, mask=m, other=0.0)
    if CLIP:
        d_cnew = tl.where((c_pre >= -clip) & (c_pre <= clip), d_cnew, 0.0)

    # c~ = f * c + i * g.
    d_i = d_cnew * g
    d_g = d_cnew * i
    d_cprev += d_cnew * f
    if G == 4:
        d_af = d_cnew * c * _derivative(f, ACT_GATE)
    else:
        d_i -= d_cnew * c
    d_ai = d_i * _derivative(i, ACT_GATE)
    d_ag = d_g * _derivative(g, ACT_CELL)
    if PEEP:
        d_cprev += d_ai * tl.load(peep + cols, mask=m, other=0.0)
        if G == 4:
            d_cprev += d_af * tl.load(peep + H + cols, mask=m, other=0.0)
    tl.store(dc_prev + n * H + cols, d_cprev, mask=m)
    tl.store(d_xw + gate_row + cols, d_ai, mask=m)
    tl.store(d_xw + gate_row + OFF_G * H + cols, d_ag, mask=m)
    tl.store(d_xw + gate_row + OFF_O * H + cols, d_ao, mask=m)
    if G == 4:
        tl.store(d_xw + gate_row + H + cols, d_af, mask=m)

    if LN_HH:  # r_t entered through LN(r_t) * gain: the layer norm's backward over the G*H pre-activations
        mean = tl.load(r_mean + row)
        rstd = tl.load(r_rstd + row)
        n_i = tl.where(m, (tl.load(rec + gate_row + cols, mask=m, other=0.0) - mean) * rstd, 0.0)
        n_g = tl.where(m, (tl.load(rec + gate_row + OFF_G * H + cols, mask=m, other=0.0) - mean) * rstd, 0.0)
        n_o = tl.where(m, (tl.load(rec + gate_row + OFF_O * H + cols, mask=m, other=0.0) - mean) * rstd, 0.0)
        e_i = d_ai * tl.load(ln_hh + cols, mask=m, other=0.0)
        e_g = d_ag * tl.load(ln_hh + OFF_G * H + cols, mask=m, other=0.0)
        e_o = d_ao * tl.load(ln_hh + OFF_O * H + cols, mask=m, other=0.0)
        sum_e = tl.sum(e_i, 0) + tl.sum(e_g, 0) + tl.sum(e_o, 0)
        sum_en = tl.sum(e_i * n_i, 0) + tl.sum(e_g * n_g, 0) + tl.sum(e_o * n_o, 0)
        if G == 4:
            n_f = tl.where(m, (tl.load(rec + gate_row + H + cols, mask=m, other=0.0) - mean) * rstd, 0.0)
            e_f = d_af * tl.load(ln_hh + H + cols, mask=m, other=0.0)
            sum_e += tl.sum(e_f, 0)
            sum_en += tl.sum(e_f * n_f, 0)
        mean_e = sum_e / (G * H)
        mean_en = sum_en / (G * H)
        tl.store(d_rec + gate_row + cols, rstd * (e_i - mean_e - n_i * mean_en), mask=m)
        tl.store(d_rec + gate_row + OFF_G * H + cols, rstd * (e_g - mean_e - n_g * mean_en), mask=m)
        tl.store(d_rec + gate_row + OFF_O * H + cols, rstd * (e_o - mean_e - n_o * mean_en), mask=m)
        if G == 4:
            tl.store(d_rec + gate_row + H + cols, rstd * (e_f - mean_e - n_f * mean_en), mask=m)
