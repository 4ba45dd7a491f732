r"""The GPU path's time loop: one layer in one direction as a ``torch.autograd.Function`` with its own backward.

The decomposition is the one the CPU kernel (:mod:`lstmkit.nn.fast`) measured best, on cuBLAS and Triton:

* the input projection of all steps, :math:`W_{ih} x + b` (layer-normalised with ``layer_norm``), is one
  PyTorch product outside the loop (:func:`lstmkit.nn.layer.input_projection`), so autograd differentiates it;
* per step, forward: one product :math:`r_t = W_{hh} (h_{t-1} \odot m)` into the step's rows, then one
  Triton kernel (:func:`lstmkit.nn.gpu.kernels.forward_step`) for everything element-wise (layer norms,
  peepholes, activations, cell update, clipping, zoneout, lengths, the next step's dropout mask);
  with ``proj_size``, one more product :math:`W_{hr} \tilde h_t` and the zoneout and lengths of :math:`h_t`;
* per step, backward: one kernel (:func:`lstmkit.nn.gpu.kernels.backward_step`), then one product
  :math:`\delta r_t W_{hh}` into :math:`\delta h_{t-1}`; the parameter gradients are one product or one
  reduction each over all steps at the end.

Masks are drawn by :func:`lstmkit.nn.layer.draw_masks`, the reference's own helper, and the layer structure
(directions, stacking, residual, merge modes, dropout between layers) is :func:`lstmkit.nn.layer.stack_layers`,
so both paths compute one function and draw the same masks from one seed.
"""

from __future__ import annotations

import contextlib
import functools

import torch
from torch import Tensor

from ..cell import CellActivations
from ..fast import activation_codes
from ..layer import LayerWeights, draw_masks, stack_layers
from ..variants import VANILLA, Variants
from . import graphs, kernels

__all__ = ["gpu_lstm", "run_direction"]


class _Config:
    """What stays fixed for one call: gate count, activation codes, clip value, zoneout (mask or scalar)."""

    __slots__ = ("clip", "codes", "gates", "zc", "zc_mask", "zh", "zh_mask")

    def __init__(self, gates: int, codes: tuple[int, int, int], clip: float | None, zh: float, zc: float,
                 zh_mask: bool, zc_mask: bool) -> None:  # fmt: skip
        self.gates, self.codes, self.clip = gates, codes, clip
        self.zh, self.zc, self.zh_mask, self.zc_mask = zh, zc, zh_mask, zc_mask

    def key(self) -> tuple:
        """Everything of the configuration a captured loop depends on."""
        return (self.gates, self.codes, self.clip, self.zh, self.zc, self.zh_mask, self.zc_mask)

    def flags(self, H: int) -> dict[str, object]:
        """The constexpr arguments both kernels share (``PEEP``, ``LN_*``, ``VALID``, ``PROJ`` are added per call)."""
        return dict(
            G=self.gates, ACT_GATE=self.codes[0], ACT_CELL=self.codes[1], ACT_HIDDEN=self.codes[2],
            CLIP=self.clip is not None, ZH=self.zh_mask or self.zh != 0, ZH_MASK=self.zh_mask,
            ZC=self.zc_mask or self.zc != 0, ZC_MASK=self.zc_mask, BLOCK_H=_block(H),
            enable_fp_fusion=False,  # no fused multiply-adds: rounded as PyTorch's element-wise operations are
        )  # fmt: skip


def _block(size: int) -> int:
    return 1 << max(size - 1, 0).bit_length()  # the next power of two


def _forward(config: _Config, save: bool, xw, h0, c0, w_hh, w_hr, peep, ln_hh, ln_c_w, ln_c_b, rmask, zh_mask,
             zc_mask, valid, scalars) -> dict[str, Tensor]:  # fmt: skip
    """The forward loop over all steps; returns the outputs and, with ``save``, what the backward reads."""
    L, N, GH = xw.shape
    H, P = GH // config.gates, h0.size(-1)
    new = xw.new_empty
    buffers = {"out": new((L, N, P)), "cstate": new((L, N, H)), "rec": new((L, N, GH))}
    if save:
        buffers.update(act=new((L, N, GH)), cpre=new((L, N, H)))
        if ln_c_w is not None:
            buffers.update(c_mean=new((L, N)), c_rstd=new((L, N)))
        if ln_hh is not None:
            buffers.update(r_mean=new((L, N)), r_rstd=new((L, N)))
    if w_hr is not None:
        buffers["hh"] = new((L, N, H))
    out, cstate, rec = buffers["out"], buffers["cstate"], buffers["rec"]
    hin = new((N, P)) if rmask is not None else xw
    flags = config.flags(H)
    flags.update(PEEP=peep is not None, LN_HH=ln_hh is not None, LN_C=ln_c_w is not None,
                 RMASK=rmask is not None, VALID=valid is not None, PROJ=w_hr is not None, SAVE=save)  # fmt: skip
    dummy = xw
    act, cpre, c_mean, c_rstd, r_mean, r_rstd, hh = (
        buffers.get(name, dummy) for name in ("act", "cpre", "c_mean", "c_rstd", "r_mean", "r_rstd", "hh")
    )
    w_hh_t = w_hh.t()  # (H_out, G*H)
    h_prev, c_prev = h0, c0
    h_in = h0 if rmask is None else h0 * rmask  # (N, H_out)
    for t in range(L):
        torch.mm(h_in, w_hh_t, out=rec[t])  # (N, G*H)
        kernels.forward_step[(N,)](
            xw, rec, h_prev, c_prev, out, cstate, hin, hh, act, cpre, c_mean, c_rstd, r_mean, r_rstd,
            _or(peep, dummy), _or(ln_hh, dummy), _or(ln_c_w, dummy), _or(ln_c_b, dummy), _or(rmask, dummy),
            _or(zh_mask, dummy), _or(zc_mask, dummy), _or(valid, dummy), scalars, t, N, H, **flags,
        )  # fmt: skip
        if w_hr is not None:  # the projection, then zoneout and lengths on h_t
            h = hh[t] @ w_hr.t()  # (N, H_out)
            if flags["ZH"]:
                h = h + (zh_mask[t] if config.zh_mask else config.zh) * (h_prev - h)
            if valid is not None:
                h = torch.where(valid[t].unsqueeze(1) != 0, h, h_prev)
            out[t] = h
            h_in = out[t] if rmask is None else out[t] * rmask
        else:
            h_in = out[t] if rmask is None else hin
        h_prev, c_prev = out[t], cstate[t]
    return buffers


def _backward(config: _Config, needs: tuple[bool, ...], d_out, d_hn, d_cn, h0, c0, w_hh, w_hr, peep, ln_hh,
              ln_c_w, ln_c_b, rmask, zh_mask, zc_mask, valid, scalars, out, cstate, rec, act, cpre, c_mean, c_rstd,
              r_mean, r_rstd, hh) -> dict[str, Tensor]:  # fmt: skip
    """The backward loop over all steps, then the parameter gradients ``needs`` asks for (the Function's
    ``needs_input_grad``)."""
    L, N, GH = rec.shape
    H, P = GH // config.gates, h0.size(-1)
    new = rec.new_empty
    d_xw = new((L, N, GH))
    d_rec = new((L, N, GH)) if ln_hh is not None else d_xw
    d_cout = new((L, N, H)) if ln_c_w is not None else rec
    d_hp = new((L, N, P)) if w_hr is not None else None
    dh_direct = new((N, P))
    dc_buffers = (new((N, H)), new((N, H)))
    dh = d_hn if d_hn is not None else rec.new_zeros((N, P))
    dc = d_cn if d_cn is not None else rec.new_zeros((N, H))
    flags = config.flags(H)
    flags.update(PEEP=peep is not None, LN_HH=ln_hh is not None, LN_C=ln_c_w is not None,
                 VALID=valid is not None, PROJ=w_hr is not None, HAS_D_OUT=d_out is not None)  # fmt: skip
    dummy = rec
    for t in range(L - 1, -1, -1):
        c_prev = cstate[t - 1] if t > 0 else c0
        if w_hr is not None:  # zoneout and lengths on h_t, then back through the projection
            d_h = dh if d_out is None else dh + d_out[t]
            d_p = d_h if valid is None else torch.where(valid[t].unsqueeze(1) != 0, d_h, 0.0)
            if flags["ZH"]:
                d_p = d_p * (1 - (zh_mask[t] if config.zh_mask else config.zh))
            d_hp[t] = d_p
            direct = d_h - d_p
            d_into_kernel = d_p @ w_hr  # (N, H)
        else:
            direct, d_into_kernel = dh_direct, dh
        dc_prev = dc_buffers[t % 2]
        kernels.backward_step[(N,)](
            d_into_kernel, _or(d_out, dummy), dc, c_prev, act, cpre, _or(c_mean, dummy), _or(c_rstd, dummy), rec,
            _or(r_mean, dummy), _or(r_rstd, dummy), _or(peep, dummy), _or(ln_hh, dummy), _or(ln_c_w, dummy),
            _or(ln_c_b, dummy), _or(zh_mask, dummy), _or(zc_mask, dummy), _or(valid, dummy), d_xw, d_rec, d_cout,
            dh_direct, dc_prev, scalars, t, N, H, **flags,
        )  # fmt: skip
        dc = dc_prev
        if rmask is None:
            dh = torch.addmm(direct, d_rec[t], w_hh)  # (N, H_out)
        else:
            dh = torch.addcmul(direct, d_rec[t] @ w_hh, rmask)  # (N, H_out)

    grads = {"xw": d_xw, "h0": dh, "c0": dc}
    if needs[4]:
        h_in = torch.cat([h0.unsqueeze(0), out[:-1]])  # (L, N, H_out): h_{t-1} for every t
        if rmask is not None:
            h_in = h_in * rmask
        grads["w_hh"] = d_rec.reshape(-1, GH).t() @ h_in.reshape(-1, P)  # (G*H, H_out)
    if w_hr is not None and needs[5]:
        grads["w_hr"] = d_hp.reshape(-1, P).t() @ hh.reshape(-1, H)  # (H_out, H)
    c_new = cpre if config.clip is None else cpre.clamp(-config.clip, config.clip)  # (L, N, H)
    if peep is not None and needs[6]:
        c_before = torch.cat([c0.unsqueeze(0), cstate[:-1]])  # (L, N, H): c_{t-1} for every t
        rows = [(d_xw[..., :H] * c_before).sum((0, 1))]
        if config.gates == 4:
            rows.append((d_xw[..., H : 2 * H] * c_before).sum((0, 1)))
        rows.append((d_xw[..., GH - H :] * c_new).sum((0, 1)))
        grads["peep"] = torch.stack(rows)  # (3 or 2, H)
    if ln_hh is not None and needs[7]:
        normalised = (rec - r_mean.unsqueeze(2)) * r_rstd.unsqueeze(2)  # (L, N, G*H)
        grads["ln_hh"] = (d_xw * normalised).sum((0, 1))
    if ln_c_w is not None and (needs[8] or needs[9]):
        c_hat = (c_new - c_mean.unsqueeze(2)) * c_rstd.unsqueeze(2)  # (L, N, H)
        grads["ln_c_w"] = (d_cout * c_hat).sum((0, 1))
        grads["ln_c_b"] = d_cout.sum((0, 1))
    return grads


_SCALARS: dict[tuple, Tensor] = {}


def _scalars(config: _Config, like: Tensor) -> Tensor:
    """``(zh, zc, clip)`` as a tensor of ``like``'s dtype on its device, made once: a copy from the host at
    every call would make the host wait for the GPU."""
    key = (config.zh, config.zc, config.clip, like.dtype, like.device)
    scalars = _SCALARS.get(key)
    if scalars is None:
        scalars = _SCALARS[key] = like.new_tensor([config.zh, config.zc, config.clip or 0.0])
    return scalars


_SAVED = ("out", "cstate", "rec", "act", "cpre", "c_mean", "c_rstd", "r_mean", "r_rstd", "hh")


class _Recurrence(torch.autograd.Function):
    """One layer in one direction over all steps: ``(xw, h0, c0, parameters, masks) -> (out, h_n, c_n)``;
    each loop is one CUDA graph where :func:`lstmkit.nn.gpu.graphs.enabled` says so."""

    @staticmethod
    def forward(ctx, config, xw, h0, c0, w_hh, w_hr, peep, ln_hh, ln_c_w, ln_c_b, rmask, zh_mask, zc_mask, valid):
        save = any(ctx.needs_input_grad)
        scalars = _scalars(config, xw)
        inputs = (xw, h0, c0, w_hh, w_hr, peep, ln_hh, ln_c_w, ln_c_b, rmask, zh_mask, zc_mask, valid, scalars)
        loop = functools.partial(_forward, config, save)
        with _device(xw):
            if graphs.enabled(xw):
                buffers = graphs.run(("forward", config.key(), save), loop, *inputs)
            else:
                buffers = loop(*inputs)
        out, cstate = buffers["out"], buffers["cstate"]
        if save:
            ctx.config = config
            ctx.save_for_backward(*inputs[1:], *(buffers.get(name) for name in _SAVED))
            ctx.set_materialize_grads(False)
        return out, out[-1].clone(), cstate[-1].clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, d_out, d_hn, d_cn):
        config, needs = ctx.config, ctx.needs_input_grad
        inputs = (*(None if g is None else g.contiguous() for g in (d_out, d_hn, d_cn)), *ctx.saved_tensors)
        loop = functools.partial(_backward, config, needs)
        with _device(inputs[3]):
            if graphs.enabled(inputs[3]):
                grads = graphs.run(("backward", config.key(), needs), loop, *inputs)
            else:
                grads = loop(*inputs)
        return (None, *(grads.get(name) for name in ("xw", "h0", "c0", "w_hh", "w_hr", "peep", "ln_hh", "ln_c_w",
                                                      "ln_c_b")), None, None, None, None)  # fmt: skip


def _device(tensor: Tensor):
    """Make ``tensor``'s GPU the current one: Triton launches on the current device, graphs capture there."""
    return torch.cuda.device(tensor.device) if tensor.is_cuda else contextlib.nullcontext()


def _or(tensor: Tensor | None, dummy: Tensor) -> Tensor:
    """A tensor argument for a kernel pointer the constexpr flags leave unread."""
    return dummy if tensor is None else tensor


def _contiguous(tensor: Tensor | None) -> Tensor | None:
    return None if tensor is None else tensor.contiguous()


def run_direction(
    xw: Tensor,
    h0: Tensor,
    c0: Tensor,
    weights: LayerWeights,
    activations: CellActivations,
    valid: Tensor | None = None,
    *,
    variants: Variants = VANILLA,
    training: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`lstmkit.nn.layer.run_direction` through the Triton kernels: same arguments, results and masks."""
    masks = draw_masks(weights.weight_hh, h0, c0, xw.size(0), variants, training)  # the reference's draws
    p_h, p_c = variants.zoneout
    if training:  # the drawn 0/1 masks, per step
        zh, zc, zh_mask, zc_mask = 0.0, 0.0, masks.keep_h is not None, masks.keep_c is not None
    else:  # the expectation
        zh, zc, zh_mask, zc_mask = p_h, p_c, False, False
    config = _Config(variants.num_gates, activation_codes(activations), variants.cell_clip, zh, zc, zh_mask, zc_mask)
    out, h_n, c_n = _Recurrence.apply(
        config, xw.contiguous(), h0.contiguous(), c0.contiguous(), masks.weight_hh.contiguous(),
        *map(_contiguous, (weights.weight_hr, weights.weight_peephole, weights.ln_hh_weight, weights.ln_c_weight,
                           weights.ln_c_bias, masks.recurrent, masks.keep_h, masks.keep_c)),
        None if valid is None else valid.reshape(valid.shape[:2]).to(xw.dtype).contiguous(),  # (L, N)
    )  # fmt: skip
    return out, h_n, c_n


def gpu_lstm(
    x: Tensor,
    h0: Tensor,
    c0: Tensor,
    layers: list[list[LayerWeights]],
    activations: CellActivations,
    dropout: float = 0.0,
    training: bool = False,
    lengths: Tensor | None = None,
    variants: Variants = VANILLA,
) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """:func:`lstmkit.nn.layer.reference_lstm` with each direction run by the Triton kernels."""
    return stack_layers(x, h0, c0, layers, activations, dropout, training, lengths, variants, run_direction)
