"""``lstmkit.nn.LSTM``: a drop-in for ``torch.nn.LSTM`` with configurable activations, variants and variable lengths."""

from __future__ import annotations

import math
import warnings
import weakref
from operator import attrgetter

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from ..errors import ShapeError
from . import fast as _fast
from . import fused as _fused
from . import gpu as _gpu
from . import layer as _layer
from . import record as _record
from .activations import get_activation
from .backend import Backend, choose_backend, takes_fused
from .cell import CellActivations
from .fast_step import FastStep
from .layer import LayerWeights
from .options import VANILLA_ACTIVATIONS, LSTMOptions, LSTMStructure
from .stream import LSTMStream
from .variants import Variants

# LSTM.step's fast path by module (lstmkit.nn.fast_step), outside the module so that copying or pickling it
# is unaffected.
_FAST_STEPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class LSTM(nn.Module):
    r"""Apply a multi-layer long short-term memory (LSTM) RNN to an input sequence.

    For each element in the input sequence, each layer computes the following function:

    .. math::
        \begin{array}{ll}
            i_t = \sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi}) \\
            f_t = \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf}) \\
            g_t = \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg}) \\
            o_t = \sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho}) \\
            c_t = f_t \odot c_{t-1} + i_t \odot g_t \\
            h_t = o_t \odot \tanh(c_t)
        \end{array}

    where :math:`h_t` is the hidden state at time `t`, :math:`c_t` the cell state, :math:`x_t` the input,
    :math:`h_{t-1}` the hidden state of the layer at time `t-1` (or the initial hidden state at time 0),
    and :math:`i_t, f_t, g_t, o_t` the input, forget, cell and output gates. :math:`\sigma` is
    ``gate_activation``, the :math:`\tanh` of :math:`g_t` is ``cell_activation`` and the :math:`\tanh` of
    :math:`c_t` is ``hidden_activation`` (ONNX's f, g and h); the defaults give ``torch.nn.LSTM``.
    :math:`\odot` is the Hadamard product. The input of layer :math:`k > 0` is the hidden state of layer
    :math:`k-1`, with dropout applied to it during training when ``dropout > 0``.

    With ``proj_size > 0`` each hidden state is projected, :math:`h_t = W_{hr} h_t`, so :math:`h_t` has
    ``proj_size`` features and :math:`W_{h\ast}` change shape accordingly (Sak et al., 2014).

    Variants, all off by default and combinable with each other, with ``proj_size``, stacking, both
    directions, ``lengths`` and initial states (see :mod:`lstmkit.nn.variants`):

    * ``peephole=True`` (Gers & Schmidhuber, 2000): diagonal peephole weights
      :math:`p_i, p_f, p_o \in \mathbb{R}^H` let the input and forget gates see :math:`c_{t-1}` and the
      output gate see :math:`c_t`:

      .. math::
          \begin{array}{ll}
              i_t = \sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi} + p_i \odot c_{t-1}) \\
              f_t = \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf} + p_f \odot c_{t-1}) \\
              o_t = \sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho} + p_o \odot c_t)
          \end{array}

    * ``coupled_gates=True`` (CIFG, Greff et al. 2017): there is no forget gate of its own,
      :math:`f_t = 1 - i_t`. The weights stack only the gates i, g, o, so ``weight_ih``, ``weight_hh``,
      ``bias_ih`` and ``bias_hh`` have 3 * hidden_size rows instead of 4 (no parameter goes unused; such a
      module does not load a ``torch.nn.LSTM`` state dict), and ``weight_peephole`` has the rows
      :math:`(p_i, p_o)`.
    * ``layer_norm=True`` (Ba et al., 2016): one LayerNorm (over all G * hidden_size pre-activations at
      once, :math:`\epsilon = 10^{-5}`) on each of the two matrix products, and one on :math:`c_t` inside
      the hidden activation; the carried cell state is not normalised:

      .. math::
          \begin{array}{ll}
              (i_t|f_t|g_t|o_t) = \mathrm{act}\big(\gamma_{ih} \odot \mathrm{LN}(W_{ih} x_t)
                  + \gamma_{hh} \odot \mathrm{LN}(W_{hh} h_{t-1}) + b_{ih} + b_{hh}\big) \\
              h_t = o_t \odot \tanh(\gamma_c \odot \mathrm{LN}(c_t) + \beta_c)
          \end{array}

      where :math:`\mathrm{LN}(z) = (z - \mathrm{mean}(z)) / \sqrt{\mathrm{var}(z) + \epsilon}`. The
      pre-activation norms have a gain and no shift of their own: ``bias_ih`` and ``bias_hh`` are the shift.
    * ``cell_clip=v``: :math:`c_t \leftarrow \min(\max(c_t, -v), v)` right after the cell update; the
      output gate's peephole, :math:`h_t` and the next step all see the clipped :math:`c_t` (as
      TensorFlow's ``LSTMCell(cell_clip=v)``). ONNX's ``clip`` attribute differs: it clips the input of
      every activation, that is the four gate pre-activations and :math:`c_t` as the input of h only,
      and carries the unclipped :math:`c_t` to the next step.
    * ``zoneout=p`` or ``zoneout=(p_h, p_c)`` (Krueger et al., 2016): in training, each unit of
      :math:`h_t` (:math:`c_t`) keeps its previous value with probability :math:`p_h` (:math:`p_c`), with
      fresh masks :math:`d \sim \mathrm{Bernoulli}(p)` at every step; in evaluation, the expectation:

      .. math::
          h_t = d^h_t \odot h_{t-1} + (1 - d^h_t) \odot \tilde h_t, \quad
          c_t = d^c_t \odot c_{t-1} + (1 - d^c_t) \odot \tilde c_t, \quad
          d_t = p \text{ in evaluation}

      where :math:`\tilde h_t, \tilde c_t` are what the cell computes; the output is the zoned-out
      :math:`h_t`.
    * ``recurrent_dropout=p`` (Gal & Ghahramani, 2016): in training, :math:`W_{h\ast} h_{t-1}` becomes
      :math:`W_{h\ast} (m \odot h_{t-1})` with one mask :math:`m \in \{0, 1/(1-p)\}^{H_{out}}` per sequence,
      layer and direction, the same at every step and for every gate. The carried state is not masked.
    * ``weight_drop=p`` (DropConnect on :math:`W_{hh}`, Merity et al. 2018): in training, each forward call
      drops the elements of every ``weight_hh`` with probability p (scaling the rest by :math:`1/(1-p)`),
      one mask per layer and direction for the whole sequence.
    * ``residual=True``: the output of every layer :math:`k > 0` is its LSTM output plus its input,
      :math:`y^k_t = h^k_t + y^{k-1}_t` (after inter-layer dropout on :math:`y^{k-1}`). Layer 0 has none.
    * ``merge_mode`` (bidirectional only): how each layer combines its two directions' outputs,
      ``"concat"`` :math:`[\overrightarrow{h}_t; \overleftarrow{h}_t]` (width 2 * H_out), ``"sum"``
      :math:`\overrightarrow{h}_t + \overleftarrow{h}_t` or ``"mean"`` their half-sum (width H_out). The next
      layer then takes H_out features; ``h_n`` and ``c_n`` keep both directions apart.

    Dropout-like variants (``recurrent_dropout``, ``weight_drop``, zoneout's masks) act in training mode
    only and draw from PyTorch's global RNG, so ``torch.manual_seed`` makes them reproducible; in
    evaluation, ``recurrent_dropout`` and ``weight_drop`` are the identity. Past the end of a sequence
    (``lengths`` or packed input) the state is frozen, so no mask there changes anything.

    The module has three implementations that compute the same function: the reference path, a plain
    PyTorch loop over :func:`lstmkit.nn.lstm_cell`; the fused path, PyTorch's own LSTM kernel (the one
    ``torch.nn.LSTM`` runs, oneDNN on CPU), for the vanilla LSTM only; and the fast path
    (:mod:`lstmkit.nn.fast`), a C++ kernel with a hand-written backward for every variant and activation,
    float32 and float64 on the CPU, compiled on first use (a few seconds, once per machine); on a CUDA GPU,
    the fast path is :mod:`lstmkit.nn.gpu`, cuBLAS and Triton kernels (Triton installed). ``impl="auto"``
    takes the fused path whenever the activations are the default ones and no variant is on, else the fast
    path, else (other devices or dtypes, or no C++ compiler: one warning) the reference; :attr:`backend`
    tells which path this module runs, :attr:`fused` whether it is PyTorch's kernel, and
    :meth:`choose_backend` which path a call runs and why (one function decides every call:
    :func:`lstmkit.nn.backend.choose_backend`). For streaming,
    :meth:`step` runs a step of the fast kernel in evaluation mode without autograd, and :meth:`stream`
    keeps the state and buffers for one call per step.

    Args:
        input_size: the number of features H_in of the input `x`.
        hidden_size: the number of features H (H_cell) of the cell state and of the unprojected hidden state.
        num_layers: the number of stacked LSTM layers. Default: 1
        bias: if ``False``, the layers use neither ``b_ih`` nor ``b_hh``. Default: ``True``
        batch_first: if ``True``, the input and output are (N, L, H) instead of (L, N, H). The states
            ``h_0, c_0, h_n, c_n`` are always (D * num_layers, N, H). Default: ``False``
        dropout: if non-zero, dropout with this probability on the outputs of each layer except the last,
            in training mode only. Default: 0
        bidirectional: if ``True``, each layer also runs backward in time and combines both outputs as
            ``merge_mode`` says (concatenates them by default). Default: ``False``
        proj_size: if ``> 0``, project each hidden state to this many features; must be smaller than
            ``hidden_size``. Default: 0
        gate_activation: name of :math:`\sigma`, a key of :data:`lstmkit.nn.ACTIVATIONS`. Default: ``"sigmoid"``
        cell_activation: name of the activation of :math:`g_t`. Default: ``"tanh"``
        hidden_activation: name of the activation of :math:`c_t` in :math:`h_t`. Default: ``"tanh"``
        forget_bias: initial forget-gate bias with ``init="default"`` (ignored when ``bias=False`` or
            ``init="torch"``). Default: 1.0
        init: ``"default"`` or ``"torch"``, see Initialisation. Default: ``"default"``
        chrono_init: if non-zero, the longest dependency :math:`T_{max}` (in steps, at least 3) for the
            chrono initialisation of the forget and input gate biases, which replaces ``forget_bias``; see
            Initialisation. Default: 0 (off)
        impl: ``"auto"``, ``"reference"``, ``"fused"`` or ``"fast"``; ``"fused"`` raises ``ValueError`` when
            the activations are not the default ones or a variant is on, ``"fast"`` when an activation has no
            code in the kernel (one added to :data:`~lstmkit.nn.ACTIVATIONS` by the user). Default: ``"auto"``
        peephole: add peephole connections. Default: ``False``
        coupled_gates: couple the input and forget gates, :math:`f_t = 1 - i_t`. Default: ``False``
        layer_norm: layer-normalise the pre-activations and the cell state. Default: ``False``
        recurrent_dropout: probability in [0, 1) of the per-sequence dropout on :math:`h_{t-1}`. Default: 0
        zoneout: probability in [0, 1), or a pair ``(p_h, p_c)``, of zoneout on h and c. Default: 0
        weight_drop: probability in [0, 1) of DropConnect on ``weight_hh``. Default: 0
        cell_clip: a number > 0 that bounds :math:`c_t`, or ``None``. Default: ``None``
        residual: add each layer's input to its output for layers k > 0. Default: ``False``
        merge_mode: ``"concat"``, ``"sum"`` or ``"mean"``; not ``"concat"`` needs ``bidirectional=True``.
            Default: ``"concat"``
        device, dtype: where and of what type the parameters are made.

    Inputs: input, (h_0, c_0), lengths
        * **input**: tensor of shape (L, H_in) for unbatched input, (L, N, H_in) when
          ``batch_first=False`` or (N, L, H_in) when ``batch_first=True``, or a
          :class:`~torch.nn.utils.rnn.PackedSequence`.
        * **h_0**: tensor of shape (D * num_layers, H_out) for unbatched input or
          (D * num_layers, N, H_out), the initial hidden state of each sequence. Default: zeros.
        * **c_0**: tensor of shape (D * num_layers, H_cell) for unbatched input or
          (D * num_layers, N, H_cell), the initial cell state of each sequence. Default: zeros.
        * **lengths**: optional list or 1-D integer tensor of N values in 1..L, the number of real steps
          of each sequence in a padded batched input. Not allowed with a ``PackedSequence``.

        where

        .. math::
            \begin{aligned}
                N ={} & \text{batch size} \\
                L ={} & \text{sequence length} \\
                D ={} & 2 \text{ if bidirectional=True otherwise } 1 \\
                H_{in} ={} & \text{input\_size} \\
                H_{cell} ={} & \text{hidden\_size} \\
                H_{out} ={} & \text{proj\_size if } \text{proj\_size}>0 \text{ otherwise hidden\_size}
            \end{aligned}

    Outputs: output, (h_n, c_n)
        * **output**: tensor of shape (L, D * H_out) for unbatched input, (L, N, D * H_out) when
          ``batch_first=False`` or (N, L, D * H_out) when ``batch_first=True``: the last layer's
          :math:`h_t` for each `t`, the two directions concatenated (with ``merge_mode`` ``"sum"`` or
          ``"mean"``, combined into H_out features). A ``PackedSequence`` input gives a
          ``PackedSequence`` output. With ``lengths``, the output past each sequence's end is exactly zero.
        * **h_n**: tensor of shape (D * num_layers, H_out) or (D * num_layers, N, H_out), the final hidden
          state of each layer and direction (forward first). With ``lengths`` or packed input it is the state
          at each sequence's last real step; the reverse direction starts at that step and ends at step 0.
        * **c_n**: tensor of shape (D * num_layers, H_cell) or (D * num_layers, N, H_cell), the final cell
          state, likewise.

    Attributes:
        weight_ih_l[k]: input-hidden weights :math:`(W_{ii}|W_{if}|W_{ig}|W_{io})` of layer k, shape
            (G * hidden_size, input_size) for k = 0, else (G * hidden_size, D' * H_out), where G is 4, or 3
            with ``coupled_gates`` (gates i, g, o), and D' is D with ``merge_mode="concat"``, else 1.
        weight_hh_l[k]: hidden-hidden weights :math:`(W_{hi}|W_{hf}|W_{hg}|W_{ho})`, shape (G * hidden_size, H_out).
        bias_ih_l[k]: input-hidden bias :math:`(b_{ii}|b_{if}|b_{ig}|b_{io})`, shape (G * hidden_size,).
        bias_hh_l[k]: hidden-hidden bias :math:`(b_{hi}|b_{hf}|b_{hg}|b_{ho})`, shape (G * hidden_size,).
        weight_hr_l[k]: projection weights, shape (proj_size, hidden_size); only when ``proj_size > 0``.
        weight_peephole_l[k]: peephole weights, rows :math:`(p_i, p_f, p_o)`, shape (3, hidden_size), or
            rows :math:`(p_i, p_o)`, shape (2, hidden_size), with ``coupled_gates``; only with ``peephole``.
        ln_ih_weight_l[k], ln_hh_weight_l[k]: gains :math:`\gamma_{ih}, \gamma_{hh}`, shape
            (G * hidden_size,); ln_c_weight_l[k], ln_c_bias_l[k]: :math:`\gamma_c, \beta_c`, shape
            (hidden_size,); only with ``layer_norm``.
        options: every argument above but ``device`` and ``dtype``, validated, as one frozen object
            (:class:`lstmkit.nn.LSTMOptions`); :meth:`from_options` makes a module from one. The arguments
            are also read-only attributes (``lstm.hidden_size``, ...), as on ``torch.nn.LSTM``.
        variants: the variant options as given, validated (:class:`lstmkit.nn.variants.Variants`; zoneout
            as the pair ``(p_h, p_c)``), ``options.variants``.
        structure: what the module is made of, its parameters per layer and direction read when asked
            (:class:`lstmkit.nn.LSTMStructure`): what streaming, gate recording and export read.
        The reverse direction's parameters have the suffix ``_reverse``. Names, shapes and order of the
        first five are those of ``torch.nn.LSTM`` (without ``coupled_gates``), so state dicts load both
        ways; a variant's parameters follow them within each layer and direction.

    Initialisation:
        ``init="default"``: ``weight_ih`` Xavier (Glorot) uniform; each of the G gate blocks of
        ``weight_hh``, (hidden_size, H_out), orthogonal; ``weight_hr`` orthogonal; every bias zero except
        the forget-gate slice of ``bias_ih``, set to ``forget_bias`` so that the effective forget bias
        :math:`b_{if} + b_{hf}` starts at ``forget_bias``. With ``coupled_gates`` the input-gate slice is
        set to ``-forget_bias`` instead, so that :math:`f_t = 1 - \sigma(-b) = \sigma(b)` starts where it
        would without coupling (exactly so for the point-symmetric gates ``sigmoid`` and ``hard_sigmoid``).
        ``init="torch"``: exactly ``torch.nn.LSTM.reset_parameters`` for the parameters ``torch.nn.LSTM``
        has: each from :math:`\mathcal{U}(-\sqrt{k}, \sqrt{k})` with :math:`k = 1/\text{hidden\_size}`,
        drawing from the RNG in the same order, so the same seed gives the same parameters as
        ``torch.nn.LSTM``. With either init, peephole weights start at zero (the module starts as the
        vanilla LSTM and learns them) and the LayerNorm gains at one and shifts at zero.
        ``chrono_init=T_max`` (Tallec & Ollivier, "Can recurrent neural networks warp time?", ICLR 2018),
        after either init: for each unit j of every layer and direction, :math:`b_f^j = \log u_j` with
        :math:`u_j \sim \mathcal{U}(1, T_{max} - 1)`, and the input-gate bias :math:`b_i^j = -b_f^j` (set in
        ``bias_ih``; the same slices of ``bias_hh`` are zero). The forget gates then start with
        characteristic memory times :math:`1 / (1 - f) \approx u_j` spread over 1 .. T_max steps, and the
        input gates mostly closed, so gradients reach back over lags up to T_max from the start. With
        ``coupled_gates`` only the input-gate slice is set, to :math:`-b_f^j` (the forget gate is
        :math:`1 - i_t`). Ignored when ``bias=False``.

    Examples::

        >>> import torch
        >>> from lstmkit.nn import LSTM
        >>> rnn = LSTM(10, 20, num_layers=2)
        >>> x = torch.randn(5, 3, 10)  # (L, N, H_in)
        >>> h0, c0 = torch.zeros(2, 3, 20), torch.zeros(2, 3, 20)  # (D * num_layers, N, H_out)
        >>> output, (hn, cn) = rnn(x, (h0, c0))
        >>> output.shape
        torch.Size([5, 3, 20])
        >>> output, (hn, cn) = rnn(x, lengths=[5, 2, 3])  # outputs past each length are zero
        >>> bool((output[2:, 1] == 0).all())
        True
        >>> variant = LSTM(10, 20, peephole=True, layer_norm=True, zoneout=0.1).eval()
        >>> h_t, state = variant.step(x[0])  # stream one step: (N, H_in) -> (N, H_out)
        >>> h_t.shape, state[1].shape
        (torch.Size([3, 20]), torch.Size([1, 3, 20]))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        *,
        gate_activation: str = "sigmoid",
        cell_activation: str = "tanh",
        hidden_activation: str = "tanh",
        forget_bias: float = 1.0,
        init: str = "default",
        chrono_init: int = 0,
        impl: str = "auto",
        peephole: bool = False,
        coupled_gates: bool = False,
        layer_norm: bool = False,
        recurrent_dropout: float = 0.0,
        zoneout: float | tuple[float, float] = 0.0,
        weight_drop: float = 0.0,
        cell_clip: float | None = None,
        residual: bool = False,
        merge_mode: str = "concat",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        options = LSTMOptions.create(
            input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, proj_size,
            gate_activation=gate_activation, cell_activation=cell_activation, hidden_activation=hidden_activation,
            forget_bias=forget_bias, init=init, chrono_init=chrono_init, impl=impl, peephole=peephole,
            coupled_gates=coupled_gates, layer_norm=layer_norm, recurrent_dropout=recurrent_dropout, zoneout=zoneout,
            weight_drop=weight_drop, cell_clip=cell_clip, residual=residual, merge_mode=merge_mode,
        )  # fmt: skip
        self._build(options, device, dtype)

    @classmethod
    def from_options(cls, options: LSTMOptions, *, device=None, dtype=None) -> LSTM:
        """Make an ``LSTM`` from its options, passed whole (see :mod:`lstmkit.nn.options`).

        ``LSTM.from_options(LSTMOptions.create(*args, **kwargs))`` is ``LSTM(*args, **kwargs)``, parameters
        drawn from the RNG in the same order.

        Raises:
            TypeError: ``options`` is not an :class:`~lstmkit.nn.LSTMOptions`.
        """
        if not isinstance(options, LSTMOptions):
            raise TypeError(f"LSTM.from_options: expected an lstmkit.nn.LSTMOptions, got {type(options).__name__}")
        lstm = cls.__new__(cls)
        nn.Module.__init__(lstm)
        lstm._build(options, device, dtype)
        return lstm

    def _build(self, options: LSTMOptions, device, dtype) -> None:
        """Register the parameters ``options`` ask for and initialise them; what both constructors share."""
        if options.dropout > 0 and options.num_layers == 1:
            warnings.warn(
                f"LSTM: dropout={options.dropout} acts between stacked layers only, so it does nothing with "
                "num_layers=1",
                stacklevel=3,
            )
        if options.variants.residual and options.num_layers == 1:
            warnings.warn(
                "LSTM: residual=True connects stacked layers (k > 0) only, so it does nothing with num_layers=1",
                stacklevel=3,
            )
        self.options = options
        variants = options.variants
        input_size, hidden_size, proj_size = options.input_size, options.hidden_size, options.proj_size
        self._cell_activations = CellActivations(
            gate=get_activation(options.gate_activation),
            cell=get_activation(options.cell_activation),
            hidden=get_activation(options.hidden_activation),
        )

        # Parameters in torch.nn.LSTM's order: layer by layer, forward then reverse direction, and within
        # one direction weight_ih, weight_hh, bias_ih, bias_hh, weight_hr, then those of the variants.
        # The fused kernel wants this order.
        factory = {"device": device, "dtype": dtype}
        gate_size = variants.num_gates * hidden_size
        out_size = self.output_size
        merged_size = out_size * (self.num_directions if variants.merge_mode == "concat" else 1)
        weight_names: list[tuple[LayerWeights, ...]] = []
        for k in range(options.num_layers):
            layer_input_size = input_size if k == 0 else merged_size
            directions = []
            for suffix in ("", "_reverse")[: self.num_directions]:
                names = LayerWeights(
                    weight_ih=f"weight_ih_l{k}{suffix}",
                    weight_hh=f"weight_hh_l{k}{suffix}",
                    bias_ih=f"bias_ih_l{k}{suffix}" if options.bias else None,
                    bias_hh=f"bias_hh_l{k}{suffix}" if options.bias else None,
                    weight_hr=f"weight_hr_l{k}{suffix}" if proj_size > 0 else None,
                    weight_peephole=f"weight_peephole_l{k}{suffix}" if variants.peephole else None,
                    ln_ih_weight=f"ln_ih_weight_l{k}{suffix}" if variants.layer_norm else None,
                    ln_hh_weight=f"ln_hh_weight_l{k}{suffix}" if variants.layer_norm else None,
                    ln_c_weight=f"ln_c_weight_l{k}{suffix}" if variants.layer_norm else None,
                    ln_c_bias=f"ln_c_bias_l{k}{suffix}" if variants.layer_norm else None,
                )
                shapes = LayerWeights(
                    weight_ih=(gate_size, layer_input_size),
                    weight_hh=(gate_size, out_size),
                    bias_ih=(gate_size,),
                    bias_hh=(gate_size,),
                    weight_hr=(proj_size, hidden_size),
                    weight_peephole=(variants.num_gates - 1, hidden_size),
                    ln_ih_weight=(gate_size,),
                    ln_hh_weight=(gate_size,),
                    ln_c_weight=(hidden_size,),
                    ln_c_bias=(hidden_size,),
                )
                for name, shape in zip(names, shapes):
                    if name is not None:
                        self.register_parameter(name, nn.Parameter(torch.empty(shape, **factory)))
                directions.append(names)
            weight_names.append(tuple(directions))
        self._weight_names = tuple(weight_names)
        # The parameters torch.nn.LSTM has, in its order: what the fused kernel takes and init="torch" draws.
        self._flat_weight_names = [
            name for directions in self._weight_names for names in directions for name in names[:5] if name is not None
        ]
        self.reset_parameters()

    @property
    def num_directions(self) -> int:
        """D: 2 when bidirectional, else 1."""
        return self.options.num_directions

    @property
    def output_size(self) -> int:
        """H_out: the size of each hidden state, ``proj_size`` if it is non-zero, else ``hidden_size``."""
        return self.options.output_size

    # The options, read through the module as torch.nn.LSTM's attributes are (read-only: make a new module
    # to change one). attrgetter, not a lambda: forward reads a dozen of them per call.
    input_size = property(attrgetter("options.input_size"), doc="H_in, the input's features.")
    hidden_size = property(attrgetter("options.hidden_size"), doc="H (H_cell), the cell state's size.")
    num_layers = property(attrgetter("options.num_layers"), doc="The number of stacked layers.")
    bias = property(attrgetter("options.bias"), doc="Whether the layers have the biases b_ih and b_hh.")
    batch_first = property(attrgetter("options.batch_first"), doc="Whether inputs are (N, L, H_in).")
    dropout = property(attrgetter("options.dropout"), doc="The dropout between stacked layers.")
    bidirectional = property(attrgetter("options.bidirectional"), doc="Whether each layer also runs backward.")
    proj_size = property(attrgetter("options.proj_size"), doc="The projection's size, 0 for none.")
    gate_activation = property(attrgetter("options.gate_activation"), doc="The gates' activation.")
    cell_activation = property(attrgetter("options.cell_activation"), doc="The candidate's activation.")
    hidden_activation = property(attrgetter("options.hidden_activation"), doc="The activation of c_t in h_t.")
    forget_bias = property(attrgetter("options.forget_bias"), doc="The initial forget-gate bias.")
    init = property(attrgetter("options.init"), doc="The initialisation, 'default' or 'torch'.")
    chrono_init = property(attrgetter("options.chrono_init"), doc="T_max of the chrono initialisation, or 0.")
    impl = property(attrgetter("options.impl"), doc="The implementation asked for.")


    @property
    def variants(self) -> Variants:
        """The variant options, validated (zoneout as the pair ``(p_h, p_c)``): ``options.variants``."""
        return self.options.variants

    @property
    def fused(self) -> bool:
        """Whether ``forward`` runs PyTorch's fused LSTM kernel (``True``) or not (``False``)."""
        return takes_fused(self.options)

    @property
    def backend(self) -> str:
        """The path ``forward`` runs for this module's parameters: ``"fused"`` (PyTorch's kernel),
        ``"fast"`` (:mod:`lstmkit.nn.fast`, built on first use, so the first read may take seconds),
        ``"triton"`` (:mod:`lstmkit.nn.gpu`, the variants on a CUDA GPU) or ``"reference"`` (the loop over :func:`lstmkit.nn.lstm_cell`); :meth:`choose_backend` says why."""
        return self.choose_backend(self.weight_ih_l0).name

    def choose_backend(self, input: Tensor, lengths: bool = False) -> Backend:
        """The backend and the reason for it of a ``forward`` call on ``input`` (a tensor on the device and of
        the dtype of the call; ``lengths``: sequences of different lengths); see :mod:`lstmkit.nn.backend`."""
        return choose_backend(self.options, input, lengths=lengths, recording=_record.tap(self) is not None)

    @property
    def structure(self) -> LSTMStructure:
        """What this module is made of, its parameters read now: :class:`~lstmkit.nn.options.LSTMStructure`."""
        return LSTMStructure(self.options, self._layer_weights(), self._weight_names, self._cell_activations)

    def reset_parameters(self) -> None:
        """Initialise every parameter as ``init`` says (see the class docstring)."""
        with torch.no_grad():
            if self.init == "torch":
                bound = 1.0 / math.sqrt(self.hidden_size)
                for weight in self._flat_weights():
                    nn.init.uniform_(weight, -bound, bound)
            else:
                self._default_init()
            if self.chrono_init:
                self._chrono_init()
            for directions in self._layer_weights():
                for weights in directions:
                    for name in ("weight_peephole", "ln_c_bias"):
                        if getattr(weights, name) is not None:
                            getattr(weights, name).zero_()
                    for name in ("ln_ih_weight", "ln_hh_weight", "ln_c_weight"):
                        if getattr(weights, name) is not None:
                            getattr(weights, name).fill_(1.0)

    def _default_init(self) -> None:
        h = self.hidden_size
        # The forget gate's slice, or with coupled gates the input gate's, which sets f = 1 - i.
        if self.variants.coupled_gates:
            gate_slice, gate_bias = slice(0, h), -self.forget_bias
        else:
            gate_slice, gate_bias = slice(h, 2 * h), self.forget_bias
        for directions in self._layer_weights():
            for weights in directions:
                nn.init.xavier_uniform_(weights.weight_ih)
                for block in weights.weight_hh.split(h, dim=0):  # G x (H, H_out)
                    nn.init.orthogonal_(block)
                if weights.bias_ih is not None:
                    weights.bias_ih.zero_()
                    weights.bias_hh.zero_()
                    weights.bias_ih[gate_slice] = gate_bias
                if weights.weight_hr is not None:
                    nn.init.orthogonal_(weights.weight_hr)

    def _chrono_init(self) -> None:
        """Chrono initialisation of the gate biases (see the class docstring)."""
        h = self.hidden_size
        for directions in self._layer_weights():
            for weights in directions:
                if weights.bias_ih is None:
                    continue
                forget = torch.empty(h, dtype=weights.bias_ih.dtype).uniform_(1.0, self.chrono_init - 1.0).log_()
                weights.bias_ih[:h] = -forget.to(weights.bias_ih.device)  # input gate
                weights.bias_hh[:h] = 0.0
                if not self.variants.coupled_gates:
                    weights.bias_ih[h : 2 * h] = forget.to(weights.bias_ih.device)
                    weights.bias_hh[h : 2 * h] = 0.0

    def forward(
        self,
        input: Tensor | PackedSequence,
        hx: tuple[Tensor, Tensor] | None = None,
        lengths: Tensor | list[int] | None = None,
    ) -> tuple[Tensor | PackedSequence, tuple[Tensor, Tensor]]:
        """Run the LSTM; see the class docstring for the shapes of inputs and outputs."""
        if isinstance(input, PackedSequence):
            if lengths is not None:
                raise ValueError("LSTM: lengths must be None for a PackedSequence input, which has its own lengths")
            return self._forward_packed(input, hx)
        return self._forward_padded(input, hx, lengths)

    def step(
        self, x_t: Tensor, state: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        r"""Advance a unidirectional LSTM by one time step, for streaming input.

        ``h_t, state = lstm.step(x[t], state)`` for t = 0, 1, ... gives, in evaluation mode, ``forward(x)``'s
        output at each step and its final ``(h_n, c_n)`` (within float rounding), for every variant and
        activation. The outputs are new tensors; the state passed in is never modified. In evaluation mode
        with autograd off (``torch.no_grad()``), all layers' step is one call into the fast kernel (for a
        vanilla LSTM, once the kernel is built: the step loads a built one but never waits for a build),
        with the arguments checked and the call planned once per module and input shape
        (:mod:`lstmkit.nn.fast_step`; parameters updated in place or replaced are seen by the next call);
        otherwise each layer runs one step of the reference cell, differentiably. For the lowest latency
        per step, use :meth:`stream`, which also keeps the state and output buffers.

        In training mode every call draws fresh masks: zoneout and inter-layer ``dropout`` then behave as
        in ``forward`` (they draw per step there too), but ``recurrent_dropout`` and ``weight_drop``, which
        ``forward`` draws once per sequence, act per step, so a training-mode stream is not ``forward``'s
        computation. Use ``eval()`` to stream a trained model.

        Args:
            x_t: the input of this step, shape (N, H_in), or (H_in,) for one unbatched sequence.
            state: ``(h, c)`` returned by the previous call, shapes (num_layers, N, H_out) and
                (num_layers, N, H_cell), or (num_layers, H_out) and (num_layers, H_cell) unbatched; ``None``
                for zeros (the start of a stream).

        Returns:
            ``(h_t, (h, c))``: the last layer's output of this step, shape (N, H_out) or (H_out,) (with
            ``residual``, the output including the residual sum, as in ``forward``), and the new state, shaped
            like ``state``.

        Raises:
            ValueError: the LSTM is bidirectional; its reverse direction starts at the end of the sequence,
                which a stream has not reached yet.
            ShapeError: ``x_t`` or the state has the wrong shape.
            ValueError: ``x_t``'s dtype is not the parameters', or the state's dtype or device is not ``x_t``'s.

        Examples::

            >>> import torch
            >>> from lstmkit.nn import LSTM
            >>> lstm = LSTM(3, 4, num_layers=2).eval()
            >>> x = torch.randn(6, 2, 3)  # (L, N, H_in)
            >>> state = None
            >>> for x_t in x:
            ...     h_t, state = lstm.step(x_t, state)
            >>> output, (h_n, c_n) = lstm(x)
            >>> torch.allclose(h_t, output[-1], atol=1e-6) and torch.allclose(state[1], c_n, atol=1e-6)
            True
        """
        fast_step = _FAST_STEPS.get(self)
        if fast_step is not None and not self.training and not torch.is_grad_enabled():
            result = fast_step(x_t, state)  # None unless this call is one checked and planned already
            if result is not None:
                return result
        if self.bidirectional:
            raise ValueError(
                "LSTM.step: expected a unidirectional LSTM, got bidirectional=True; the reverse direction "
                "starts at the end of the sequence, which a stream has not reached yet. Call the module on "
                "the whole sequence instead"
            )
        if not isinstance(x_t, Tensor):
            raise TypeError(f"LSTM.step: expected x_t to be a Tensor, got {type(x_t).__name__}")
        if x_t.dim() not in (1, 2) or x_t.size(-1) != self.input_size:
            raise ShapeError(
                f"LSTM.step: expected x_t of shape (N, H_in) or unbatched (H_in,) with H_in={self.input_size}, "
                f"got shape {tuple(x_t.shape)}"
            )
        dtype = self.weight_ih_l0.dtype
        if x_t.dtype != dtype and not torch.is_autocast_enabled(x_t.device.type):
            raise ValueError(f"LSTM.step: expected x_t of dtype {dtype} like the parameters, got {x_t.dtype}")
        is_batched = x_t.dim() == 2
        x = x_t if is_batched else x_t.unsqueeze(0)  # (N, H_in)
        h0, c0 = self._initial_state(state, x.size(0), is_batched, x, owner="LSTM.step", names=("state", "h", "c"))
        for name, given in (("h", h0), ("c", c0)):
            if given.device != x.device or (given.dtype != x.dtype and not torch.is_autocast_enabled(x.device.type)):
                raise ValueError(
                    f"LSTM.step: expected state {name} of dtype {x.dtype} on {x.device} like x_t, got {given.dtype} "
                    f"on {given.device}"
                )
        backend = choose_backend(
            self.options, x, step=True, training=self.training, grad=torch.is_grad_enabled(), build=False
        )
        if backend.name == "fast":
            h_t, (h_n, c_n) = self._fast_step(x, h0, c0)
        else:
            stale = _FAST_STEPS.get(self)
            if stale is not None and not stale.current():  # e.g. after .half(): let go of the old parameters
                _FAST_STEPS.pop(self, None)
            h_t, (h_n, c_n) = _layer.step_lstm(
                x, h0, c0, self._layer_weights(), self._cell_activations, self.dropout, self.training, self.variants
            )
        if not is_batched:
            h_t = h_t.squeeze(0)  # (H_out,)
            h_n, c_n = h_n.squeeze(1), c_n.squeeze(1)  # (num_layers, H_out), (num_layers, H_cell)
        return h_t, (h_n, c_n)

    def stream(self, batch_size: int | None = None) -> LSTMStream:
        r"""An :class:`~lstmkit.nn.stream.LSTMStream` over this unidirectional LSTM: the evaluation-mode
        function one step per call, with the state kept inside and no per-call allocation (one C call per
        step where the fast kernel is available).

        Args:
            batch_size: N, or ``None`` for one unbatched sequence. Default: ``None``

        Examples::

            >>> import torch
            >>> from lstmkit.nn import LSTM
            >>> lstm = LSTM(3, 8).eval()
            >>> stream = lstm.stream()
            >>> y = stream.step(torch.randn(3))  # (H_out,), overwritten by the next step
        """
        return LSTMStream(self, batch_size)

    def _fast_step(self, x: Tensor, h0: Tensor, c0: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """``step`` in evaluation mode without autograd, as one C call; (N, H_in) input, batched states. Plans
        the module's :class:`~lstmkit.nn.fast_step.FastStep` (again, when the parameters have moved), which
        later calls then take without the checks above."""
        fast_step = _FAST_STEPS.get(self)
        if fast_step is None or not fast_step.current():
            fast_step = FastStep(self)
            if fast_step.reusable:
                _FAST_STEPS[self] = fast_step
            else:
                _FAST_STEPS.pop(self, None)
        return fast_step.run(x, h0, c0)

    def _forward_padded(
        self, input: Tensor, hx: tuple[Tensor, Tensor] | None, lengths: Tensor | list[int] | None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        self._check_input(input, ranks=(2, 3))
        is_batched = input.dim() == 3
        batch_dim = 0 if self.batch_first else 1
        if not is_batched:
            if lengths is not None:
                raise ShapeError(
                    f"LSTM: lengths needs a batched 3-D input, got unbatched input of shape {tuple(input.shape)}; "
                    "slice the sequence to its length instead"
                )
            input = input.unsqueeze(batch_dim)  # (1, L, H_in) or (L, 1, H_in)
        batch_size, seq_len = input.size(batch_dim), input.size(1 - batch_dim)
        if seq_len == 0:
            raise ShapeError(f"LSTM: expected at least one time step, got input of shape {tuple(input.shape)}")
        h0, c0 = self._initial_state(hx, batch_size, is_batched, input)
        if lengths is not None:
            lengths = self._check_lengths(lengths, batch_size, seq_len)
            if bool((lengths == seq_len).all()):
                lengths = None  # every sequence is full: the plain path computes the same, faster

        backend = self.choose_backend(input, lengths=lengths is not None)
        if backend.name == "fused":
            output, (h_n, c_n) = _fused.fused_lstm(
                input, (h0, c0), self._flat_weights(), self.bias, self.num_layers, self.dropout,
                self.training, self.bidirectional, self.batch_first, lengths,
            )  # fmt: skip
        else:
            x = input.transpose(0, 1) if self.batch_first else input  # (L, N, H_in)
            lengths = None if lengths is None else lengths.to(input.device)
            output, (h_n, c_n) = self._unfused(x, h0, c0, lengths, backend)
            if self.batch_first:
                output = output.transpose(0, 1)  # (N, L, D * H_out)

        if not is_batched:
            output = output.squeeze(batch_dim)  # (L, D * H_out)
            h_n, c_n = h_n.squeeze(1), c_n.squeeze(1)  # (D * num_layers, H_out), (D * num_layers, H_cell)
        return output, (h_n, c_n)

    def _forward_packed(
        self, input: PackedSequence, hx: tuple[Tensor, Tensor] | None
    ) -> tuple[PackedSequence, tuple[Tensor, Tensor]]:
        self._check_input(input.data, ranks=(2,), packed=True)
        batch_sizes = input.batch_sizes  # (L,) on the CPU, non-increasing
        batch_size = int(batch_sizes[0])
        h0, c0 = self._initial_state(hx, batch_size, True, input.data)
        backend = self.choose_backend(input.data, lengths=True)
        if backend.name == "fused":
            return _fused.fused_lstm_packed(
                input, (h0, c0), self._flat_weights(), self.bias, self.num_layers, self.dropout,
                self.training, self.bidirectional,
            )  # fmt: skip

        padded, lengths = pad_packed_sequence(input)  # (L, N, H_in) and (N,), in the caller's batch order
        output, hidden = self._unfused(padded, h0, c0, lengths.to(padded.device), backend)
        # Pack again in the input's order: sorted by length, time-major, only the real steps.
        if input.sorted_indices is not None:
            output = output.index_select(1, input.sorted_indices)  # (L, N, D * H_out), sorted
        batch_index = torch.arange(batch_size)
        valid = (batch_index.unsqueeze(0) < batch_sizes.unsqueeze(1)).to(output.device)  # (L, N)
        data = output[valid]  # (sum(lengths), D * H_out)
        packed = PackedSequence(data, batch_sizes, input.sorted_indices, input.unsorted_indices)
        return packed, hidden

    def _unfused(
        self, x: Tensor, h0: Tensor, c0: Tensor, lengths: Tensor | None, backend: Backend
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """The fast kernel or the reference loop, as ``backend`` says, on a time-major (L, N, H_in) input; the
        reference loop with its gates recorded while :func:`lstmkit.nn.record_gates` records this module."""
        tap = _record.tap(self)
        if tap is not None:
            return tap.run(self, x, h0, c0, lengths)
        run = {"fast": _fast.fast_lstm, "triton": _gpu.gpu_lstm}.get(backend.name, _layer.reference_lstm)
        return run(
            x, h0, c0, self._layer_weights(), self._cell_activations, self.dropout, self.training, lengths,
            self.variants,
        )  # fmt: skip

    def _check_input(self, input: Tensor, ranks: tuple[int, ...], packed: bool = False) -> None:
        if not isinstance(input, Tensor):
            raise TypeError(f"LSTM: expected input to be a Tensor or a PackedSequence, got {type(input).__name__}")
        if input.dim() not in ranks:
            if packed:
                expected = "PackedSequence data of shape (sum(lengths), H_in)"
            elif self.batch_first:
                expected = "input of shape (N, L, H_in) or unbatched (L, H_in)"
            else:
                expected = "input of shape (L, N, H_in) or unbatched (L, H_in)"
            raise ShapeError(f"LSTM: expected {expected}, got shape {tuple(input.shape)}")
        if input.size(-1) != self.input_size:
            raise ShapeError(
                f"LSTM: expected input with {self.input_size} features (last dimension), "
                f"got shape {tuple(input.shape)}"
            )
        dtype = self.weight_ih_l0.dtype
        if input.dtype != dtype and not torch.is_autocast_enabled(input.device.type):
            raise ValueError(
                f"LSTM: expected input of dtype {dtype} like the parameters, got {input.dtype}; "
                f"convert the input with .to({dtype}) or the model with .to({input.dtype})"
            )

    def _initial_state(
        self,
        hx: tuple[Tensor, Tensor] | None,
        batch_size: int,
        is_batched: bool,
        input: Tensor,
        owner: str = "LSTM",
        names: tuple[str, str, str] = ("hx", "h_0", "c_0"),
    ) -> tuple[Tensor, Tensor]:
        """Validate (h_0, c_0), or make zeros; returns them batched: (D * num_layers, N, H_out / H_cell).

        ``owner`` and ``names`` (the pair, h and c) are how error messages call the method and the state.
        """
        states = self.num_directions * self.num_layers
        h_shape = (states, batch_size, self.output_size)
        c_shape = (states, batch_size, self.hidden_size)
        if hx is None:
            zeros = {"dtype": input.dtype, "device": input.device}
            return torch.zeros(h_shape, **zeros), torch.zeros(c_shape, **zeros)
        pair, h_name, c_name = names
        if not isinstance(hx, (tuple, list)) or len(hx) != 2 or not all(isinstance(s, Tensor) for s in hx):
            raise TypeError(
                f"{owner}: expected {pair} to be a tuple ({h_name}, {c_name}) of two tensors, got {type(hx).__name__}"
            )
        h0, c0 = hx
        layers = "D*num_layers" if self.bidirectional or owner == "LSTM" else "num_layers"
        if is_batched:
            dims = layers + ", N, {}"
        else:
            dims = layers + ", {}"
            h_shape, c_shape = (states, self.output_size), (states, self.hidden_size)
        for name, state, shape, size_name in ((h_name, h0, h_shape, "H_out"), (c_name, c0, c_shape, "H_cell")):
            if tuple(state.shape) != shape:
                raise ShapeError(
                    f"{owner}: expected {name} of shape {shape} ({dims.format(size_name)}), got {tuple(state.shape)}"
                )
        if not is_batched:
            h0, c0 = h0.unsqueeze(1), c0.unsqueeze(1)  # (D * num_layers, 1, H)
        return h0, c0

    @staticmethod
    def _check_lengths(lengths: Tensor | list[int], batch_size: int, seq_len: int) -> Tensor:
        """Validate ``lengths`` and return them as a CPU int64 tensor of shape (N,)."""
        try:
            values = torch.as_tensor(lengths).detach().to("cpu")
        except (TypeError, ValueError, RuntimeError):
            raise ShapeError(
                f"LSTM: expected lengths as a list or 1-D tensor of {batch_size} integers, got {lengths!r}"
            ) from None
        if values.dim() != 1 or values.numel() != batch_size:
            raise ShapeError(
                f"LSTM: expected one length per sequence, shape ({batch_size},), got shape {tuple(values.shape)}"
            )
        if values.dtype == torch.bool or values.is_floating_point() or values.is_complex():
            raise ShapeError(f"LSTM: expected integer lengths, got dtype {values.dtype}")
        shortest, longest = int(values.min()), int(values.max())
        if shortest < 1 or longest > seq_len:
            raise ShapeError(
                f"LSTM: expected every length in 1..{seq_len} (the padded sequence length L), "
                f"got lengths from {shortest} to {longest}"
            )
        return values.to(torch.int64)

    def _layer_weights(self) -> tuple[tuple[LayerWeights, ...], ...]:
        """The parameters as ``[layer][direction]`` tuples, read now so that ``functional_call`` works."""
        return tuple(
            tuple(LayerWeights(*(None if n is None else getattr(self, n) for n in names)) for names in directions)
            for directions in self._weight_names
        )

    def _flat_weights(self) -> list[Tensor]:
        """The parameters in the flat order of PyTorch's kernel."""
        return [getattr(self, name) for name in self._flat_weight_names]

    def flatten_parameters(self) -> None:
        """Lay the fused path's weights out in one cuDNN buffer, as ``torch.nn.LSTM`` does, so that cuDNN
        does not copy every weight into one at every call (``.to("cuda")`` and ``.cuda()`` call this). A
        no-op off the GPU, for the variants, and where cuDNN cannot take the weights."""
        if not takes_fused(self.options):
            return
        weights = self._flat_weights()
        first = weights[0]
        if not all(w.is_cuda and w.dtype == first.dtype and torch.backends.cudnn.is_acceptable(w) for w in weights):
            return
        if len({w.data_ptr() for w in weights}) != len(weights) or not torch._use_cudnn_rnn_flatten_weight():
            return
        from torch.backends.cudnn import rnn as cudnn_rnn

        per_direction = (4 if self.bias else 2) + (1 if self.proj_size > 0 else 0)
        with torch.cuda.device_of(first), torch.no_grad():
            torch._cudnn_rnn_flatten_weight(weights, per_direction, self.input_size, cudnn_rnn.get_cudnn_mode("LSTM"),
                                            self.hidden_size, self.proj_size, self.num_layers, self.batch_first,
                                            self.bidirectional)

    def _apply(self, fn, recurse=True):  # type: ignore[no-untyped-def]
        result = super()._apply(fn, recurse)
        self.flatten_parameters()
        return result

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size != 0:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        for name, vanilla in VANILLA_ACTIVATIONS.items():
            if getattr(self, name) != vanilla:
                s += f", {name}={getattr(self, name)!r}"
        if self.init != "default":
            s += f", init={self.init!r}"
        elif self.forget_bias != 1.0 and not self.chrono_init:
            s += f", forget_bias={self.forget_bias}"
        if self.chrono_init:
            s += f", chrono_init={self.chrono_init}"
        if self.impl != "auto":
            s += f", impl={self.impl!r}"
        variants = self.variants.active()
        if "zoneout" in variants and variants["zoneout"][0] == variants["zoneout"][1]:
            variants["zoneout"] = variants["zoneout"][0]
        for name, value in variants.items():
            s += f", {name}={value!r}"
        return s

    @classmethod
    def from_torch(cls, torch_lstm: nn.LSTM, *, impl: str = "auto") -> LSTM:
        """Make an ``LSTM`` with the configuration, parameters and training mode of a ``torch.nn.LSTM``."""
        if not isinstance(torch_lstm, nn.LSTM):
            raise TypeError(f"LSTM.from_torch: expected a torch.nn.LSTM, got {type(torch_lstm).__name__}")
        reference = torch_lstm.weight_ih_l0
        lstm = cls(
            torch_lstm.input_size, torch_lstm.hidden_size, torch_lstm.num_layers, torch_lstm.bias,
            torch_lstm.batch_first, torch_lstm.dropout, torch_lstm.bidirectional, torch_lstm.proj_size,
            init="torch", impl=impl, device=reference.device, dtype=reference.dtype,
        )  # fmt: skip
        lstm.load_state_dict(torch_lstm.state_dict())
        return lstm.train(torch_lstm.training)

    def to_torch(self) -> nn.LSTM:
        """Return a ``torch.nn.LSTM`` with this module's configuration, parameters and training mode.

        Raises:
            ValueError: the activations are not ``torch.nn.LSTM``'s (sigmoid, tanh, tanh), or a variant is on.
        """
        non_vanilla = [f"{n}={getattr(self, n)!r}" for n, v in VANILLA_ACTIVATIONS.items() if getattr(self, n) != v]
        if non_vanilla:
            raise ValueError(
                "LSTM.to_torch: torch.nn.LSTM computes only gate_activation='sigmoid', cell_activation='tanh', "
                f"hidden_activation='tanh'; this LSTM has {', '.join(non_vanilla)}"
            )
        if self.variants.active():
            raise ValueError(
                f"LSTM.to_torch: torch.nn.LSTM computes the vanilla LSTM only; this LSTM has {self.variants.describe()}"
            )
        reference = self.weight_ih_l0
        torch_lstm = nn.LSTM(
            self.input_size, self.hidden_size, self.num_layers, self.bias, self.batch_first, self.dropout,
            self.bidirectional, self.proj_size, device=reference.device, dtype=reference.dtype,
        )  # fmt: skip
        torch_lstm.load_state_dict(self.state_dict())
        return torch_lstm.train(self.training)

