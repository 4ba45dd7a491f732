"""LSTMOptions (one validated object, passed whole), LSTM.structure, choose_backend and draw_masks."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch.nn import functional as F

from lstmkit.nn import LSTM, LSTMOptions, LSTMStructure, fast, record_gates
from lstmkit.nn.backend import choose_backend
from lstmkit.nn.layer import draw_masks
from lstmkit.nn.variants import Variants

VARIANT = {"num_layers": 2, "bidirectional": True, "proj_size": 3, "peephole": True, "layer_norm": True,
           "zoneout": (0.1, 0.2), "cell_clip": 2.0, "merge_mode": "sum", "cell_activation": "relu"}


def test_from_options_is_the_keyword_constructor() -> None:
    """Same options, same parameters drawn in the same RNG order, same function."""
    options = LSTMOptions.create(4, 6, **VARIANT)
    torch.manual_seed(0)
    by_keywords = LSTM(4, 6, **VARIANT)
    torch.manual_seed(0)
    by_options = LSTM.from_options(options)
    assert by_keywords.options == options == by_options.options
    assert by_keywords.state_dict().keys() == by_options.state_dict().keys()
    for name, value in by_keywords.state_dict().items():
        assert torch.equal(value, by_options.state_dict()[name]), name
    x = torch.randn(5, 2, 4)
    torch.testing.assert_close(by_keywords.eval()(x)[0], by_options.eval()(x)[0], rtol=0, atol=0)


def test_kwargs_round_trip_and_normalised_values() -> None:
    options = LSTMOptions.create(4, 6, dropout=1, forget_bias=2, zoneout=0.1, **{"num_layers": 2})
    assert options.dropout == 1.0 and isinstance(options.dropout, float) and isinstance(options.forget_bias, float)
    assert options.variants.zoneout == (0.1, 0.1)
    assert LSTMOptions.create(**options.kwargs()) == options
    assert LSTM(4, 6, num_layers=2, dropout=1.0, forget_bias=2.0, zoneout=(0.1, 0.1)).options == options


def test_options_are_frozen_and_the_module_attributes_read_them() -> None:
    lstm = LSTM(3, 5, num_layers=2, batch_first=True, peephole=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        lstm.options.hidden_size = 7  # type: ignore[misc]
    with pytest.raises(AttributeError):
        lstm.hidden_size = 7  # type: ignore[misc]
    assert (lstm.input_size, lstm.hidden_size, lstm.num_layers, lstm.batch_first) == (3, 5, 2, True)
    assert lstm.variants is lstm.options.variants and lstm.variants.peephole


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hidden_size": 0}, r"^LSTM: hidden_size: expected an integer >= 1, got 0$"),
        ({"dropout": 1.5}, r"^LSTM: dropout: expected a probability in \[0, 1\], got 1.5$"),
        ({"impl": "cuda"}, r"^LSTM: impl: expected one of 'auto', 'reference', 'fused', 'fast', got 'cuda'$"),
        ({"gate_activation": "swish"}, r"^LSTM: gate_activation: expected one of .*, got 'swish'$"),
        ({"variants": Variants(merge_mode="sum")}, r"merge_mode='sum' combines the two directions .* bidirectional=False"),
        ({"impl": "fused", "variants": Variants(peephole=True)}, r"impl='fused' .* vanilla LSTM only; got peephole=True"),
        ({"variants": {"peephole": True}}, r"^LSTM: variants: expected lstmkit.nn.variants.Variants, got dict$"),
    ],
)
def test_every_copy_is_validated_too(change: dict, message: str) -> None:
    """``dataclasses.replace`` makes a new object, checked like the first: no invalid LSTMOptions exists."""
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(LSTMOptions(3, 8), **change)


def test_from_options_refuses_anything_else() -> None:
    with pytest.raises(TypeError, match=r"^LSTM.from_options: expected an lstmkit.nn.LSTMOptions, got dict$"):
        LSTM.from_options({"input_size": 3, "hidden_size": 8})  # type: ignore[arg-type]


def test_structure_describes_the_parameters_the_module_holds() -> None:
    lstm = LSTM(3, 5, num_layers=2, bidirectional=True, proj_size=2, layer_norm=True)
    structure = lstm.structure
    assert isinstance(structure, LSTMStructure) and structure.options is lstm.options
    assert len(structure.layers) == 2 and all(len(directions) == 2 for directions in structure.layers)
    parameters = dict(lstm.named_parameters())
    named = set()
    for weights_by_direction, names_by_direction in zip(structure.layers, structure.names):
        for weights, names in zip(weights_by_direction, names_by_direction):
            for tensor, name in zip(weights, names):
                assert (tensor is None) == (name is None)
                if name is not None:
                    assert tensor is parameters[name]
                    named.add(name)
    assert named == set(parameters)  # every parameter, each once
    assert structure.names[1][1].ln_c_bias == "ln_c_bias_l1_reverse"
    assert structure.activations.gate is torch.sigmoid
    with pytest.raises(dataclasses.FrozenInstanceError):
        structure.layers = ()  # type: ignore[misc]


def test_structure_reads_the_parameters_when_asked() -> None:
    """As ``torch.func.functional_call`` replaces them for one call, so does the structure read in it."""
    lstm = LSTM(3, 4)
    zeros = {name: torch.zeros_like(p) for name, p in lstm.named_parameters()}
    seen = []
    original = LSTM.forward

    def spy(self, *args, **kwargs):
        seen.append(self.structure.layers[0][0].weight_hh)
        return original(self, *args, **kwargs)

    LSTM.forward = spy
    try:
        torch.func.functional_call(lstm, zeros, (torch.randn(2, 1, 3),))
    finally:
        LSTM.forward = original
    assert seen and seen[0].abs().sum() == 0 and lstm.weight_hh_l0.abs().sum() > 0


def test_choose_backend_decides_every_call_and_says_why() -> None:
    x = torch.zeros(2, 3)
    vanilla, variant = LSTMOptions.create(3, 8), LSTMOptions.create(3, 8, peephole=True)
    assert choose_backend(vanilla, x) == ("fused", "the vanilla LSTM: PyTorch's kernel")
    assert choose_backend(LSTMOptions.create(3, 8, impl="reference"), x) == ("reference", "impl='reference'")
    assert choose_backend(vanilla, x, recording=True).name == "reference"
    assert "float32 and float64" in choose_backend(variant, x.half()).reason
    assert choose_backend(variant, x, step=True, training=True).reason.startswith("training mode")
    assert choose_backend(variant, x, step=True, grad=True).reason.startswith("autograd is on")
    assert choose_backend(LSTMOptions.create(3, 8, bidirectional=True, peephole=True), x, step=True).name == "reference"
    if not fast.available():
        assert choose_backend(variant, x).name == "reference"
        return
    assert choose_backend(variant, x).name == "fast"
    assert choose_backend(vanilla, x, lengths=True).name == "fast"  # the CPU's packed kernel is slower
    assert choose_backend(LSTMOptions.create(3, 8, impl="fused"), x, lengths=True).name == "fused"
    assert choose_backend(variant, x, step=True).name == "fast"


def test_the_module_and_its_recording_ask_the_same_function() -> None:
    lstm = LSTM(2, 4)
    x = torch.zeros(3, 1, 2)
    assert lstm.choose_backend(x) == choose_backend(lstm.options, x)
    with record_gates(lstm):
        assert lstm.choose_backend(x).name == "reference"
    assert lstm.choose_backend(x).name == "fused"


def test_draw_masks_draws_in_one_fixed_order() -> None:
    """weight_drop, recurrent_dropout, zoneout on h, zoneout on c: the order the golden values and the
    seeded parity of the reference and fast paths rest on."""
    variants = Variants(weight_drop=0.3, recurrent_dropout=0.4, zoneout=(0.2, 0.1))
    w, h0, c0 = torch.randn(8, 3), torch.zeros(2, 3), torch.zeros(2, 2)
    torch.manual_seed(7)
    masks = draw_masks(w, h0, c0, 5, variants, training=True)
    torch.manual_seed(7)
    weight = F.dropout(w, p=0.3, training=True)
    recurrent = torch.empty_like(h0).bernoulli_(0.6) / 0.6
    keep_h = h0.new_empty((5, 2, 3)).bernoulli_(0.2)
    keep_c = c0.new_empty((5, 2, 2)).bernoulli_(0.1)
    for got, want in zip(masks, (weight, recurrent, keep_h, keep_c)):
        assert torch.equal(got, want)
    state = torch.random.get_rng_state()
    evaluation = draw_masks(w, h0, c0, 5, variants, training=False)
    assert evaluation.weight_hh is w and evaluation[1:] == (None, None, None)
    assert torch.equal(torch.random.get_rng_state(), state)  # nothing drawn out of training


def test_a_stream_says_which_backend_it_runs_and_why() -> None:
    stream = LSTM(3, 8, peephole=True).eval().stream()
    reference = LSTM(3, 8, peephole=True, impl="reference").eval().stream()
    assert reference.backend == "reference" and reference.backend_reason == "impl='reference'"
    if fast.available():
        assert stream.backend == "fast" and "one call into the fast kernel" in stream.backend_reason
    half = LSTM(3, 8, peephole=True).half().eval().stream()
    assert half.backend == "reference" and "float32 and float64" in half.backend_reason
