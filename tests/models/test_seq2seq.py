"""Seq2Seq: shapes, source masks, teacher forcing, greedy and beam search, gradients."""

from __future__ import annotations

import pytest
import torch

from lstmkit.data.tokenizer import BOS, EOS, PAD
from lstmkit.models.seq2seq import Seq2Seq

SRC_VOCAB, TGT_VOCAB = 17, 11


pytestmark = pytest.mark.usefixtures("one_thread")


def make(attention="general", bidirectional=True, num_layers=1, seed=0) -> Seq2Seq:
    torch.manual_seed(seed)
    return Seq2Seq(SRC_VOCAB, TGT_VOCAB, embedding_size=8, hidden_size=12, num_layers=num_layers,
                   bidirectional=bidirectional, attention=attention).eval()


def batch(seed=0, n=4, s=7, t=5):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(4, SRC_VOCAB, (n, s), generator=g)
    lengths = torch.tensor([s, 3, 5, 1][:n])
    for i, length in enumerate(lengths):
        src[i, length:] = PAD
    tgt_in = torch.randint(4, TGT_VOCAB, (n, t), generator=g)
    tgt_in[:, 0] = BOS
    return src, lengths, tgt_in


@pytest.mark.parametrize("attention", ["additive", "dot", "general"])
@pytest.mark.parametrize("bidirectional,num_layers", [(True, 1), (False, 2)])
def test_shapes(attention, bidirectional, num_layers):
    model = make(attention, bidirectional, num_layers)
    src, lengths, tgt_in = batch()
    logits, attn = model(src, lengths, tgt_in)
    assert logits.shape == (4, 5, TGT_VOCAB) and attn.shape == (4, 5, 7)
    assert bool((attn[1, :, 3:] == 0).all()) and bool((attn[3, :, 1:] == 0).all())
    torch.testing.assert_close(attn.sum(-1), torch.ones(4, 5))
    tokens, attn = model.greedy(src, lengths, max_length=6)
    assert tokens.shape[0] == 4 and tokens.shape[1] <= 6 and attn.shape == (4, tokens.shape[1], 7)


@pytest.mark.parametrize("attention", ["additive", "dot", "general"])
def test_source_padding_changes_nothing(attention):
    model = make(attention)
    src, lengths, tgt_in = batch()
    logits, attn = model(src, lengths, tgt_in)
    longer = torch.cat([src, torch.randint(4, SRC_VOCAB, (4, 3))], dim=1)  # more, different padding
    longer[0, 7:] = PAD  # the full-length sequence's padding: still outside its length
    for i, length in enumerate(lengths):
        longer[i, length:] = torch.randint(4, SRC_VOCAB, (longer.shape[1] - length,))
    logits2, attn2 = model(longer, lengths, tgt_in)
    torch.testing.assert_close(logits, logits2)
    torch.testing.assert_close(attn, attn2[:, :, :7])
    assert bool((attn2[:, :, 7:] == 0).all())
    # one at a time, unpadded, gives the same as in the padded batch
    for i, length in enumerate(lengths.tolist()):
        alone, _ = model(src[i:i + 1, :length], [length], tgt_in[i:i + 1])
        torch.testing.assert_close(alone[0], logits[i], atol=1e-5, rtol=1e-5)


def test_teacher_forcing_ratio_one_feeds_the_true_tokens():
    model = make()
    src, lengths, tgt_in = batch()
    logits, _ = model(src, lengths, tgt_in, teacher_forcing=1.0)
    changed = tgt_in.clone()
    changed[:, 3] = (changed[:, 3] - 3) % (TGT_VOCAB - 4) + 4  # another real token at step 3
    logits2, _ = model(src, lengths, changed, teacher_forcing=1.0)
    torch.testing.assert_close(logits[:, :3], logits2[:, :3])  # the past does not see the future
    assert not torch.allclose(logits[:, 3:], logits2[:, 3:])  # step 3 on sees the new token


def test_teacher_forcing_ratio_zero_feeds_the_model_its_own_outputs():
    model = make(seed=3)
    src, lengths, tgt_in = batch()
    logits, _ = model(src, lengths, tgt_in, teacher_forcing=0.0)
    other = tgt_in.clone()
    other[:, 1:] = torch.randint(4, TGT_VOCAB, other[:, 1:].shape)
    logits2, _ = model(src, lengths, other, teacher_forcing=0.0)
    torch.testing.assert_close(logits, logits2)  # only <bos> is read
    tokens, _ = model.greedy(src, lengths, max_length=tgt_in.shape[1])
    own = logits.argmax(-1)
    for row, decoded in zip(own.tolist(), tokens.tolist()):  # free running = greedy, up to <eos>
        cut = decoded.index(EOS) + 1 if EOS in decoded else len(decoded)
        assert row[:cut] == decoded[:cut]
    with pytest.raises(ValueError, match=r"teacher_forcing: expected a ratio in \[0, 1\]"):
        model(src, lengths, tgt_in, teacher_forcing=1.5)


@pytest.mark.parametrize("attention", ["additive", "dot", "general"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_of_one_is_greedy(attention, seed):
    model = make(attention, seed=seed)
    src, lengths, _ = batch(seed=seed)
    tokens, attn = model.greedy(src, lengths, max_length=9)
    beams = model.beam_search(src, lengths, beam=1, max_length=9)
    for i, (ids, beam_attn) in enumerate(beams):
        row = tokens[i].tolist()
        cut = row.index(EOS) + 1 if EOS in row else len(row)
        assert ids == row[:cut]
        torch.testing.assert_close(beam_attn, attn[i, :cut, :int(lengths[i])], atol=1e-5, rtol=1e-5)


def test_a_wider_beam_never_finds_a_less_probable_output():
    model = make(seed=5)
    src, lengths, _ = batch(seed=5)

    def log_prob(i: int, ids: list[int]) -> float:
        tgt_in = torch.tensor([[BOS] + ids[:-1]])
        logits, _ = model(src[i:i + 1, :int(lengths[i])], [int(lengths[i])], tgt_in)
        return float(torch.log_softmax(logits[0], -1).gather(1, torch.tensor(ids)[:, None]).sum())

    for i, ((narrow, _), (wide, _)) in enumerate(zip(model.beam_search(src, lengths, 1, 8),
                                                      model.beam_search(src, lengths, 4, 8))):
        if narrow[-1] == EOS and wide[-1] == EOS:
            assert log_prob(i, wide) >= log_prob(i, narrow) - 1e-5


def test_gradient_reaches_every_parameter():
    model = make("additive").train()
    src, lengths, tgt_in = batch()
    logits, _ = model(src, lengths, tgt_in)
    torch.nn.functional.cross_entropy(logits.flatten(0, 1), tgt_in.roll(-1, 1).flatten()).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        if "embedding" not in name:
            assert parameter.grad.abs().sum() > 0, name
