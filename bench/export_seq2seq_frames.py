"""seq2seq and frames at their recipes' sizes: how long export (build + verification) takes, and PyTorch
against ONNX Runtime per call.

Models are built at the recipe's sizes with random weights (configs/dates.toml, configs/moving_digits.toml),
so nothing is trained: an untrained seq2seq decoder rarely emits <eos>, so every decode runs to
``max_output_length`` steps (the slowest case). Medians of ``--repeats`` calls, one thread each.

    python bench/export_seq2seq_frames.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import machine_info

ROOT = Path(__file__).parent.parent


def median_ms(function, repeats: int) -> float:
    function()  # warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def seq2seq(folder: Path, repeats: int) -> None:
    from lstmkit.data.tokenizer import Vocabulary
    from lstmkit.export import export_onnx
    from lstmkit.export.seq2seq_decode import OnnxTranslator
    from lstmkit.tasks.seq2seq import (
        Translator,
        build_model,
        load_config,
        make_pairs,
        save_model,
    )

    config = load_config(ROOT / "configs" / "dates.toml")
    train, _, test = make_pairs(config.data, config.train.seed)
    source = Vocabulary.build((s for s, _ in train), config.data.tokens)
    target = Vocabulary.build((t for _, t in train), config.data.tokens)
    torch.manual_seed(0)
    max_length = max(len(target.encode(t)) for _, t in train) + 6
    save_model(folder, build_model(config.model, len(source), len(target)), config, source, target, max_length)
    start = time.perf_counter()
    result = export_onnx(folder, folder.parent / "dates.onnx")
    print(f"seq2seq (dates sizes: hidden {config.model.hidden_size}, max_output_length {max_length}): export "
          f"{time.perf_counter() - start:.2f} s, checks " + ", ".join(f"{k} {v:.1e}" for k, v in result.checks.items()))
    translator, onnx_translator = Translator.load(folder), OnnxTranslator(result.path)
    text = test[0][0]
    for beam in (1, 4):
        same = translator.translate(text, beam).text == onnx_translator.translate(text, beam).text
        torch_ms = median_ms(lambda beam=beam: translator.translate(text, beam), repeats)
        onnx_ms = median_ms(lambda beam=beam: onnx_translator.translate(text, beam), repeats)
        print(f"  translate {text!r} beam {beam}: torch {torch_ms:.2f} ms, onnx {onnx_ms:.2f} ms (same text: {same})")


def frames(folder: Path, repeats: int) -> None:
    import onnxruntime as ort

    from lstmkit.export import export_onnx
    from lstmkit.tasks.frames import (
        FrameForecaster,
        _save_model,
        build_model,
        load_config,
    )

    config = load_config(ROOT / "configs" / "moving_digits.toml")
    torch.manual_seed(0)
    _save_model(folder, build_model(config.model), config)
    start = time.perf_counter()
    result = export_onnx(folder, folder.parent / "frames.onnx")
    d = config.data
    print(f"frames (moving_digits sizes: {d.frame_size}x{d.frame_size}, {d.input_frames} in, {d.output_frames} out, "
          f"hidden {config.model.hidden_channels}): export {time.perf_counter() - start:.2f} s, checks "
          + ", ".join(f"{k} {v:.1e}" for k, v in result.checks.items()))
    forecaster = FrameForecaster.load(folder)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(result.path), options, providers=["CPUExecutionProvider"])
    for n in (1, 8):
        x = np.random.default_rng(0).random((n, d.input_frames, 1, d.frame_size, d.frame_size), dtype=np.float32)
        lengths = np.full(n, d.input_frames, dtype=np.int64)
        feeds = {"frames": x, "lengths": lengths}
        torch_ms = median_ms(lambda x=x: forecaster.predict(x), repeats)
        onnx_ms = median_ms(lambda feeds=feeds: session.run(["predicted"], feeds), repeats)
        print(f"  predict batch {n}: torch {torch_ms:.1f} ms, onnx {onnx_ms:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(machine_info())
    with tempfile.TemporaryDirectory() as tmp:
        seq2seq(Path(tmp) / "dates", args.repeats)
        frames(Path(tmp) / "frames", args.repeats)


if __name__ == "__main__":
    main()
