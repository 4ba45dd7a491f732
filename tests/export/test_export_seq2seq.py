"""seq2seq ONNX export: encoder and decoder step graphs against PyTorch, padding that never leaks, greedy and
beam decoding over the graphs (numpy + onnxruntime) giving Translator's strings, refusals, the CLI."""

import copy
import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from lstmkit.cli import main
from lstmkit.data.tokenizer import EOS, Vocabulary
from lstmkit.export import ExportError, export_onnx, read_onnx_meta, seq2seq_graph
from lstmkit.export.seq2seq_decode import OnnxTranslator
from lstmkit.tasks.seq2seq import Translator, build_model, load_config, save_model

pytestmark = pytest.mark.usefixtures("one_thread")

DIGITS = Vocabulary(["<pad>", "<bos>", "<eos>", "<unk>", *"0123456789"])
RNG = np.random.default_rng(0)
TEXTS = ["".join(map(str, RNG.integers(0, 10, RNG.integers(1, 9)))) for _ in range(10)] + ["7x"]  # x: <unk>


def make_folder(path, eos_bias=0.5, vocab=DIGITS, **model):
    """A seq2seq model folder with random weights, scaled so that greedy outputs end at varied lengths (some
    at <eos>, some cut at the maximum) and beam search differs from greedy."""
    model = {"hidden_size": 8, "embedding_size": 4, **model}
    sets = [f"model.{key}={json.dumps(value)}" for key, value in model.items()]
    config = load_config(None, ["data.name=\"reverse\"", "data.samples=64", "data.val_samples=8",
                                "data.test_samples=8", f"data.tokens=\"{vocab.tokens}\"", *sets])
    torch.manual_seed(0)
    module = build_model(config.model, len(vocab), len(vocab))
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.mul_(3)
        module.output.bias[EOS] += eos_bias
    save_model(path, module, config, vocab, vocab, 12)
    return path


CASES = {  # model options, and the <eos> bias that makes outputs of varied lengths
    "bidirectional_two_layers_additive": {"num_layers": 2, "attention": "additive", "eos_bias": 0.5},
    "unidirectional_general": {"bidirectional": False, "attention": "general", "eos_bias": 1.0},
    "bidirectional_dot": {"attention": "dot", "eos_bias": 2.0},
}


@pytest.fixture(scope="module", params=list(CASES))
def exported(request, tmp_path_factory):
    folder = make_folder(tmp_path_factory.mktemp(request.param) / "model", **CASES[request.param])
    result = export_onnx(folder, folder.parent / "s2s.onnx")
    return folder, result


def test_export_writes_encoder_decoder_step_and_vocabularies(exported):
    _, result = exported
    assert set(result.paths) == {"predict", "decoder_step", "vocab.json"}
    assert result.paths["decoder_step"].name == "s2s.decoder_step.onnx" and result.step_path is None
    assert set(result.checks) == {"fixed_length", "variable_length", "decoder_step", "reference"}
    assert max(result.checks.values()) <= 1e-4
    meta = read_onnx_meta(result.paths["decoder_step"])
    assert meta["files"] == {"predict": "s2s.onnx", "decoder_step": "s2s.decoder_step.onnx"}
    assert meta["side_files"] == {"vocab.json": "s2s.vocab.json"} and meta["max_output_length"] == 12
    assert json.loads(result.paths["vocab.json"].read_text())["target"]["itos"] == DIGITS.itos


def test_encoder_ignores_padding_and_step_matches_pytorch(exported):
    """The encoder on a padded batch (random ids past each length) equals each source alone in PyTorch; one
    decoder step from there equals Seq2Seq.step."""
    folder, result = exported
    model = Translator.load(folder).model
    lengths = np.array([5, 2, 7], dtype=np.int64)
    ids = np.random.default_rng(1).integers(0, len(DIGITS), size=(3, 7))
    encoder = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    keys, projected, h0, c0 = encoder.run(None, {"source": ids, "lengths": lengths})
    step = ort.InferenceSession(str(result.paths["decoder_step"]), providers=["CPUExecutionProvider"])
    tokens = np.array([1, 5, 9], dtype=np.int64)
    feed = np.random.default_rng(2).normal(size=(3, model.hidden_size)).astype(np.float32)
    logits, _, attention, _, next_h, _ = step.run(None, {"tokens": tokens, "feed": feed, "h": h0, "c": c0,
                                                         "keys": keys, "projected": projected, "lengths": lengths})
    with torch.no_grad():
        for i, length in enumerate(lengths):
            want_keys, mask, want_projected, state = model.encode(torch.from_numpy(ids[i:i + 1, :length]), [length])
            np.testing.assert_allclose(keys[i, :length], want_keys[0], atol=1e-4)
            np.testing.assert_allclose(h0[:, i], state[0][:, 0], atol=1e-4)
            want_logits, _, want_state, weights = model.step(torch.from_numpy(tokens[i:i + 1]),
                                                             torch.from_numpy(feed[i:i + 1]), state, want_keys, mask,
                                                             want_projected)
            np.testing.assert_allclose(logits[i], want_logits[0], atol=1e-4)
            np.testing.assert_allclose(attention[i, :length], weights[0], atol=1e-4)
            assert (attention[i, length:] == 0).all()
            np.testing.assert_allclose(next_h[:, i], want_state[0][:, 0], atol=1e-4)


@pytest.mark.parametrize("beam", [1, 3])
def test_decoding_over_the_graphs_gives_translators_strings(exported, beam):
    folder, result = exported
    translator, onnx_translator = Translator.load(folder), OnnxTranslator(result.path)
    lengths = set()
    for text in TEXTS:
        want, got = translator.translate(text, beam=beam), onnx_translator.translate(text, beam=beam)
        assert got.text == want.text, text
        assert [DIGITS.itos[i] for i in got.output_ids] == want.output_tokens
        assert got.output_ids[-1] == EOS or len(got.output_ids) == 12
        np.testing.assert_allclose(got.attention, want.attention, atol=1e-4)
        lengths.add(len(got.output_ids))
    assert len(lengths) >= 2  # outputs of varied lengths: <eos> is reached at different steps


def test_batched_greedy_equals_one_at_a_time(exported):
    _, result = exported
    onnx_translator = OnnxTranslator(result.path)
    batch = onnx_translator.greedy([onnx_translator.encode(t) for t in TEXTS])
    for text, (ids, attention) in zip(TEXTS, batch):
        alone = onnx_translator.translate(text)
        assert ids == alone.output_ids
        np.testing.assert_allclose(attention, alone.attention, atol=1e-4)


def test_a_wrong_decoder_step_graph_is_refused_and_nothing_written(tmp_path, monkeypatch):
    folder = make_folder(tmp_path / "model")
    build = seq2seq_graph.decoder_step_graph

    def off_by_a_little(translator):
        translator = copy.deepcopy(translator)
        with torch.no_grad():
            translator.model.combine.bias += 1e-2
        return build(translator)

    monkeypatch.setattr(seq2seq_graph, "decoder_step_graph", off_by_a_little)
    with pytest.raises(ExportError, match=r"in the decoder_step check exceeds the tolerance 0\.0001 .*"
                                          r"s2s\.onnx was not written"):
        export_onnx(folder, tmp_path / "s2s.onnx")
    assert list(tmp_path.glob("s2s*")) == []


def test_bad_verification_samples_and_wrong_files_are_named(tmp_path):
    folder = make_folder(tmp_path / "model")
    with pytest.raises(ExportError, match=r"seq2seq verification samples: expected integer source ids \(N, S\) in "
                                          r"0\.\.13, got float64 \(2, 3\)"):
        export_onnx(folder, tmp_path / "s2s.onnx", samples=np.zeros((2, 3)))
    result = export_onnx(folder, tmp_path / "s2s.onnx", samples=np.array([[4, 5, 6], [13, 0, 1]]))
    with pytest.raises(ValueError, match="expected the encoder file of an exported seq2seq model, got task "
                                         "'seq2seq', graph 'decoder_step'"):
        OnnxTranslator(result.paths["decoder_step"])
    with pytest.raises(ValueError, match="translate: beam: expected an integer >= 1, got 0"):
        OnnxTranslator(result.path).translate("12", beam=0)


def test_export_cli_lists_the_files_of_a_seq2seq_set(tmp_path, capsys):
    folder = make_folder(tmp_path / "model")
    assert main(["export", str(folder), "--out", str(tmp_path / "s2s.onnx")]) == 0
    out = capsys.readouterr().out
    assert f"wrote {tmp_path / 's2s.decoder_step.onnx'} (decoder_step)" in out
    assert f"wrote {tmp_path / 's2s.vocab.json'} (vocab.json)" in out
    assert "decoder_step" in out.splitlines()[-1]  # the checks


def test_an_option_the_exporter_does_not_know_is_refused(tmp_path, monkeypatch):
    folder = make_folder(tmp_path / "model", attention="dot")
    monkeypatch.setattr(seq2seq_graph, "_KNOWN_MODEL_KEYS", seq2seq_graph._KNOWN_MODEL_KEYS - {"attention"})
    with pytest.raises(ExportError, match=r"export: cannot export to ONNX: unsupported \[model\] attention = 'dot' "
                                          r"\(an option the ONNX exporter does not know\)"):
        export_onnx(folder, tmp_path / "s2s.onnx")


def test_word_tokens_split_and_join_as_translator_does(tmp_path):
    words = Vocabulary(["<pad>", "<bos>", "<eos>", "<unk>", "one", "two", "three", "four", "five"], tokens="word")
    folder = make_folder(tmp_path / "model", vocab=words, eos_bias=1.0)
    translator, onnx_translator = Translator.load(folder), OnnxTranslator(export_onnx(folder, tmp_path / "w.onnx").path)
    for text in ["one two", "five  four three one", "six"]:
        want, got = translator.translate(text, beam=2), onnx_translator.translate(text, beam=2)
        assert (got.text, got.source_tokens) == (want.text, want.source_tokens)
        assert " " in got.text or len(got.output_ids) <= 2


def test_the_onnx_decoder_runs_without_lstmkit(tmp_path):
    """seq2seq_decode.py copied alone, lstmkit unimportable, decodes the export (numpy and onnxruntime only)."""
    import subprocess
    import sys
    from pathlib import Path

    import lstmkit.export.seq2seq_decode as decode_module

    folder = make_folder(tmp_path / "model")
    result = export_onnx(folder, tmp_path / "s2s.onnx")
    (tmp_path / "decode.py").write_bytes(Path(decode_module.__file__).read_bytes())
    script = (f"import sys; sys.path.insert(0, {str(tmp_path)!r}); sys.modules['lstmkit'] = None; "
              f"from decode import OnnxTranslator; "
              f"print(OnnxTranslator({str(result.path)!r}).translate({TEXTS[3]!r}, beam=3).text)")
    out = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == Translator.load(folder).translate(TEXTS[3], beam=3).text
