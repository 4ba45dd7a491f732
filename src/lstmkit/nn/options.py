r"""The options of one :class:`lstmkit.nn.LSTM` as one frozen, validated object, passed whole.

:class:`LSTMOptions` holds everything that defines the function an LSTM computes and how it runs, except
where its parameters live (``device``, ``dtype``): the sizes, stacking and directions, the activations, the
initialisation, the implementation, and the variants (:class:`lstmkit.nn.variants.Variants`). Each field is
checked when the object is made (``dataclasses.replace`` makes a new one, checked the same way), so an
``LSTMOptions`` that exists is a valid LSTM:

>>> from lstmkit.nn import LSTM, LSTMOptions
>>> options = LSTMOptions.create(8, 32, num_layers=2, peephole=True, zoneout=0.1)
>>> options.variants.zoneout, options.output_size
((0.1, 0.1), 32)
>>> lstm = LSTM.from_options(options)
>>> lstm.options == options
True

Models build one from their configuration and hand it to :meth:`lstmkit.nn.LSTM.from_options`; the keyword
arguments of :class:`lstmkit.nn.LSTM` are :meth:`LSTMOptions.create`'s.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field, fields
from functools import cached_property

from . import fast as _fast
from .activations import ACTIVATIONS
from .cell import CellActivations
from .layer import LayerWeights
from .variants import VANILLA, Variants, make_variants

__all__ = ["IMPLS", "INITS", "LSTMOptions", "LSTMStructure", "VANILLA_ACTIVATIONS"]

#: The activations of ``torch.nn.LSTM``: (gate, cell, hidden) = (sigmoid, tanh, tanh).
VANILLA_ACTIVATIONS = {"gate_activation": "sigmoid", "cell_activation": "tanh", "hidden_activation": "tanh"}
INITS = ("default", "torch")
IMPLS = ("auto", "reference", "fused", "fast")


@dataclass(frozen=True)
class LSTMOptions:
    r"""The options of one LSTM, validated when made; with the defaults (beyond the two sizes) the LSTM
    computes ``torch.nn.LSTM``'s function (``init="default"`` initialises it otherwise, see ``LSTM``).

    The fields are :class:`lstmkit.nn.LSTM`'s keyword arguments (see its docstring for what each one
    does), with the variant options gathered in ``variants``. :meth:`create` takes them flat, as the LSTM
    does.

    Raises:
        ValueError: a field has the wrong type or is out of range, or two fields contradict each other
            (``impl="fused"`` with a variant, ``merge_mode="sum"`` without ``bidirectional``, ...); the
            message names the field, what it accepts and what it got.
    """

    input_size: int
    hidden_size: int
    num_layers: int = 1
    bias: bool = True
    batch_first: bool = False
    dropout: float = 0.0
    bidirectional: bool = False
    proj_size: int = 0
    gate_activation: str = "sigmoid"
    cell_activation: str = "tanh"
    hidden_activation: str = "tanh"
    forget_bias: float = 1.0
    init: str = "default"
    chrono_init: int = 0
    impl: str = "auto"
    variants: Variants = field(default=VANILLA)

    @classmethod
    def create(
        cls,
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
    ) -> LSTMOptions:
        """The options from :class:`lstmkit.nn.LSTM`'s arguments, flat (the variants among them)."""
        _check_bool("bidirectional", bidirectional)
        variants = make_variants(
            peephole=peephole, coupled_gates=coupled_gates, layer_norm=layer_norm,
            recurrent_dropout=recurrent_dropout, zoneout=zoneout, weight_drop=weight_drop, cell_clip=cell_clip,
            residual=residual, merge_mode=merge_mode, bidirectional=bidirectional,
        )  # fmt: skip
        return cls(
            input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, proj_size,
            gate_activation=gate_activation, cell_activation=cell_activation, hidden_activation=hidden_activation,
            forget_bias=forget_bias, init=init, chrono_init=chrono_init, impl=impl, variants=variants,
        )  # fmt: skip

    def __post_init__(self) -> None:
        _check_int("input_size", self.input_size, minimum=1)
        _check_int("hidden_size", self.hidden_size, minimum=1)
        _check_int("num_layers", self.num_layers, minimum=1)
        _check_int("proj_size", self.proj_size, minimum=0)
        if self.proj_size >= self.hidden_size:
            raise ValueError(
                f"LSTM: proj_size: expected 0 (no projection) or less than hidden_size={self.hidden_size}, "
                f"got {self.proj_size}"
            )
        for name in ("bias", "batch_first", "bidirectional"):
            _check_bool(name, getattr(self, name))
        dropout = self.dropout
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0 <= dropout <= 1:
            raise ValueError(f"LSTM: dropout: expected a probability in [0, 1], got {dropout!r}")
        forget_bias = self.forget_bias
        if isinstance(forget_bias, bool) or not isinstance(forget_bias, numbers.Real):
            raise ValueError(f"LSTM: forget_bias: expected a real number, got {forget_bias!r}")
        _check_int("chrono_init", self.chrono_init, minimum=0)
        if 0 < self.chrono_init < 3:
            raise ValueError(f"LSTM: chrono_init: expected 0 (off) or a longest dependency T_max >= 3 steps, "
                             f"got {self.chrono_init}")
        if self.init not in INITS:
            raise ValueError(f"LSTM: init: expected one of {_quoted(INITS)}, got {self.init!r}")
        if self.impl not in IMPLS:
            raise ValueError(f"LSTM: impl: expected one of {_quoted(IMPLS)}, got {self.impl!r}")
        for name, value in self.activation_names.items():
            if not isinstance(value, str) or value not in ACTIVATIONS:
                raise ValueError(f"LSTM: {name}: expected one of {_quoted(ACTIVATIONS)}, got {value!r}")
        if not isinstance(self.variants, Variants):
            raise ValueError(
                f"LSTM: variants: expected lstmkit.nn.variants.Variants, got {type(self.variants).__name__}"
            )
        if self.variants.merge_mode != "concat" and not self.bidirectional:
            make_variants(merge_mode=self.variants.merge_mode, bidirectional=False)  # raises, naming both
        non_vanilla = self.non_vanilla_activations()
        if self.impl == "fused" and non_vanilla:
            got = ", ".join(f"{n}={v!r}" for n, v in non_vanilla.items())
            raise ValueError(
                "LSTM: impl='fused' runs PyTorch's kernel, which computes only gate_activation='sigmoid', "
                f"cell_activation='tanh', hidden_activation='tanh'; got {got}. Use impl='auto' or 'reference'"
            )
        if self.impl == "fused" and self.variants.active():
            raise ValueError(
                "LSTM: impl='fused' runs PyTorch's kernel, which computes the vanilla LSTM only; "
                f"got {self.variants.describe()}. Use impl='auto' or 'reference'"
            )
        if self.impl == "fast" and not _fast.covers(self.activation_tuple):
            raise ValueError(
                f"LSTM: impl='fast': the fast kernel implements the activations {_quoted(_fast.ACTIVATION_CODES)}; "
                f"got {', '.join(f'{n}={v!r}' for n, v in self.activation_names.items())}. "
                "Use impl='auto' or 'reference'"
            )
        # Normalise the numbers so that equal options compare equal (1 and 1.0, numpy scalars).
        object.__setattr__(self, "dropout", float(dropout))
        object.__setattr__(self, "forget_bias", float(forget_bias))
        object.__setattr__(self, "chrono_init", int(self.chrono_init))

    @property
    def num_directions(self) -> int:
        """D: 2 when bidirectional, else 1."""
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        """H_out: the size of each hidden state, ``proj_size`` if it is non-zero, else ``hidden_size``."""
        return self.proj_size if self.proj_size > 0 else self.hidden_size

    @property
    def activation_names(self) -> dict[str, str]:
        """``{"gate_activation": ..., "cell_activation": ..., "hidden_activation": ...}``."""
        return {name: getattr(self, name) for name in VANILLA_ACTIVATIONS}

    @cached_property
    def activation_tuple(self) -> tuple[str, str, str]:
        """The (gate, cell, hidden) activation names."""
        return (self.gate_activation, self.cell_activation, self.hidden_activation)

    def non_vanilla_activations(self) -> dict[str, str]:
        """The activations that differ from ``torch.nn.LSTM``'s, by argument name."""
        return {n: v for n, v in self.activation_names.items() if v != VANILLA_ACTIVATIONS[n]}

    @cached_property
    def is_vanilla(self) -> bool:
        """Whether this is the function ``torch.nn.LSTM`` computes: default activations and no variant."""
        return not self.non_vanilla_activations() and not self.variants.active()

    def kwargs(self) -> dict[str, object]:
        """The options as :class:`lstmkit.nn.LSTM`'s keyword arguments, flat (what :meth:`create` takes)."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "variants"}
        values.update({f.name: getattr(self.variants, f.name) for f in fields(Variants)})
        return values


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"LSTM: {name}: expected an integer >= {minimum}, got {value!r}")


def _check_bool(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"LSTM: {name}: expected True or False, got {value!r}")


def _quoted(names) -> str:
    return ", ".join(repr(n) for n in names)


@dataclass(frozen=True)
class LSTMStructure:
    """What an :class:`lstmkit.nn.LSTM` is made of, read from the module when asked (:attr:`LSTM.structure`).

    The one public description of a module's inside, for the code that runs or reads it other than through
    ``forward`` (streaming, gate recording, export): its options, its parameters per layer and direction as
    the module holds them now (so ``torch.func.functional_call`` and in-place updates show), their names,
    and the activation functions.

    Attributes:
        options: the module's :class:`LSTMOptions`.
        layers: ``layers[k][d]``, the parameters of layer ``k`` in direction ``d`` (0 forward, 1 reverse), as
            :class:`lstmkit.nn.layer.LayerWeights` (``None`` for a parameter the options do not have).
        names: the same layout with each parameter's name in the state dict (``"weight_ih_l0_reverse"``).
        activations: the (gate, cell, hidden) activation functions of the cell.
    """

    options: LSTMOptions
    layers: tuple[tuple[LayerWeights, ...], ...]
    names: tuple[tuple[LayerWeights, ...], ...]
    activations: CellActivations
