"""Token models (Att-BLSTM text classifier, tagger, char LM) and the per-step objective."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lstmkit.config import ModelConfig
from lstmkit.data.base import IGNORE_INDEX
from lstmkit.errors import ConfigError, ShapeError
from lstmkit.models import InputSpec, build_model, model_objective
from lstmkit.models.sequence_objectives import StepClassification, token_f1

SPEC = InputSpec(input_size=1, num_outputs=3)


def config(task: str, **kw) -> ModelConfig:
    options = dict(task=task, vocab_size=20, embedding_size=5, hidden_size=4)
    return ModelConfig(**{**options, **kw})


def ids(*rows: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded float ids (N, L, 1) and lengths, padding filled with non-zero junk ids (masking must hide it)."""
    length = max(len(r) for r in rows)
    x = torch.full((len(rows), length, 1), 7.0)
    for i, r in enumerate(rows):
        x[i, : len(r), 0] = torch.tensor(r, dtype=torch.float32)
    return x, torch.tensor([len(r) for r in rows])


@pytest.mark.parametrize("merge_mode", ["sum", "concat"])
def test_att_blstm_padding_changes_nothing(merge_mode):
    torch.manual_seed(0)
    model = build_model(config("text-classifier", bidirectional=True, merge_mode=merge_mode), SPEC).eval()
    short, long = [3, 4, 5], [2, 9, 9, 1, 6, 3]
    x, lengths = ids(short, long)
    batched = model(x, lengths=lengths)
    alone = model(torch.tensor(short, dtype=torch.float32).view(1, 3, 1))
    torch.testing.assert_close(batched[0], alone[0], atol=1e-6, rtol=1e-5)
    _, weights = model.attend(x, lengths)
    assert (weights[0, 3:] == 0).all()
    torch.testing.assert_close(weights.sum(1), torch.ones(2))
    batched.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_att_blstm_is_zhou_et_al():
    """h* = tanh(H alpha), alpha = softmax(w^T tanh(H)), H = forward + backward outputs."""
    torch.manual_seed(0)
    model = build_model(config("text-classifier", bidirectional=True, merge_mode="sum"), SPEC).eval()
    x, _ = ids([3, 4, 5, 6])
    e = model.embedding.embedding(x[..., 0].long())
    lstm = torch.nn.LSTM(5, 4, batch_first=True, bidirectional=True)
    lstm.load_state_dict(model.lstm.state_dict())  # same parameter names as torch.nn.LSTM
    out, _ = lstm(e)  # (N, L, 2H): forward and backward halves
    H = out[..., :4] + out[..., 4:]
    alpha = torch.softmax(torch.tanh(H) @ model.attention.weight_score, dim=1)  # (N, L)
    h_star = torch.tanh((alpha.unsqueeze(-1) * H).sum(1))
    torch.testing.assert_close(model(x), model.head(h_star), atol=1e-5, rtol=1e-5)


def test_tagger_gives_one_output_per_step_and_padding_changes_nothing():
    torch.manual_seed(0)
    model = build_model(config("tagger", bidirectional=True), SPEC).eval()
    x, lengths = ids([3, 4], [5, 6, 7, 8])
    out = model(x, lengths=lengths)
    assert out.shape == (2, 4, 3)
    alone = model(torch.tensor([[[3.0], [4.0]]]))
    torch.testing.assert_close(out[0, :2], alone[0], atol=1e-6, rtol=1e-5)


def test_char_lm_step_equals_forward():
    torch.manual_seed(0)
    model = build_model(config("char-lm", num_layers=2), InputSpec(input_size=1, num_outputs=20)).eval()
    sequence = [2, 5, 9, 3, 3, 11]
    full = model(torch.tensor(sequence, dtype=torch.float32).view(1, -1, 1))  # (1, L, V)
    state = None
    with torch.no_grad():
        for t, token in enumerate(sequence):
            logits, state = model.step(torch.tensor([token]), state)
            torch.testing.assert_close(logits[0], full[0, t], atol=1e-5, rtol=1e-5)


def test_token_model_errors():
    with pytest.raises(ConfigError, match=r"\[model\] vocab_size: the task 'tagger' embeds token ids"):
        build_model(ModelConfig(task="tagger"), SPEC)
    with pytest.raises(ConfigError, match=r"expected token ids, one feature per step .* got data with 8 features"):
        build_model(config("text-classifier"), InputSpec(input_size=8, num_outputs=2))
    with pytest.raises(ConfigError, match=r"\[model\] bidirectional: a language model .* expected false"):
        build_model(config("char-lm", bidirectional=True), SPEC)
    model = build_model(config("tagger"), SPEC)
    with pytest.raises(ShapeError, match=r"expected whole-number token ids, got values such as 0.5 "
                                         r"\(set \[data\] normalize = false"):
        model(torch.full((1, 2, 1), 0.5))
    with pytest.raises(ShapeError, match=r"expected token ids in 0..19 \(\[model\] vocab_size 20\), got 0..25"):
        model(torch.tensor([[[0.0], [25.0]]]))


# ----------------------------------------------------------------------------------------------------------
# The per-step objective


def test_token_f1_on_a_hand_computed_example():
    # labels: 0 = O, 1 = B-PER, 2 = B-LOC
    gold = np.array([1, 0, 2, 0, 1, 2])
    pred = np.array([1, 0, 0, 2, 2, 2])
    # non-O gold tokens: positions 0, 2, 4, 5 (4); non-O predictions: 0, 3, 4, 5 (4); exact hits: 0, 5 (2)
    scores = token_f1(gold, pred, outside=0)
    assert scores["token_precision"] == pytest.approx(2 / 4)
    assert scores["token_recall"] == pytest.approx(2 / 4)
    assert scores["token_f1"] == pytest.approx(0.5)
    pred = np.array([1, 0, 2, 0, 0, 0])  # 2 predicted, both right; 4 gold
    scores = token_f1(gold, pred, outside=0)
    assert (scores["token_precision"], scores["token_recall"]) == (1.0, 0.5)
    assert scores["token_f1"] == pytest.approx(2 * 1.0 * 0.5 / 1.5)
    assert token_f1(gold, gold, outside=None)["token_f1"] == 1.0


def test_step_objective_ignores_padding():
    objective = model_objective(config("tagger"))
    assert isinstance(objective, StepClassification) and objective.headline == ("token_f1",)
    assert model_objective(config("char-lm")).headline == ("perplexity", "bits_per_token")
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4)
    y = torch.tensor([[1, 2, IGNORE_INDEX], [3, IGNORE_INDEX, IGNORE_INDEX]])
    loss, stats = objective.loss(logits, y)
    changed = logits.clone()
    changed[0, 2] = 100.0
    changed[1, 1:] = -50.0
    loss2, stats2 = objective.loss(changed, y)
    assert float(loss) == pytest.approx(float(loss2)) and stats == stats2 and stats["tokens"] == 3
    expected = -(torch.log_softmax(logits[0, 0], -1)[1] + torch.log_softmax(logits[0, 1], -1)[2]
                 + torch.log_softmax(logits[1, 0], -1)[3]) / 3
    assert float(loss) == pytest.approx(float(expected), rel=1e-6)
    report = objective.evaluate(logits.numpy(), y.numpy(), ["O", "B-PER", "B-LOC", "I-LOC"])
    assert report["tokens"] == 3 and report["loss"] == pytest.approx(float(expected), rel=1e-6)
    assert report["perplexity"] == pytest.approx(math.exp(report["loss"]))
    assert sum(map(sum, report["confusion_matrix"])) == 3
    with pytest.raises(ShapeError, match=r"expected logits \(N, L, C\) and targets \(N, L\)"):
        objective.loss(torch.randn(2, 4), y)
