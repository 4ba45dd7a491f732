"""lstmkit's Shakespeare char-LM against a small GPT, for the same CPU time, on the same held-out text.

1. The text is read and split by lstmkit's ``char-lm`` source with configs/shakespeare.toml's ``[data]`` table:
   the first 90% trains, the last 10% is held out; both models use its character vocabulary.
2. The GPT (bench/gpt.py) trains in nanoGPT's documented CPU configuration: 4 layers, 4 heads, 128-dim
   embeddings, block 64, batch 12, 2,000 iterations, AdamW (lr 1e-3, betas 0.9/0.99, weight decay 0.1 on the
   matrices), 100 warm-up iterations then cosine decay to 1e-4, gradient clipping at 1.0, no dropout. Its
   training loop is timed in CPU seconds of this process (``time.process_time``) and in wall seconds.
3. The recipe trains through ``lstmkit train`` with ``train.max_minutes`` set to the GPT's CPU time and
   ``train.budget_clock = "cpu"``: the same compute, even on a busy shared machine; both use ``--threads``.
4. Both are scored the same way on the held-out 10%: non-overlapping windows of 64 characters, each read from
   an empty context (GPT) or a zero state (LSTM), mean cross-entropy of every next character in nats.

    python bench/char_lm_vs_gpt.py --data ../shared/datasets/tinyshakespeare/input.txt --seeds 0 --out runs/lm-vs-gpt
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from common import machine_info
from gpt import GPT, GPTConfig, nanogpt_lr

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from lstmkit.config import load_config
from lstmkit.data import load_source
from lstmkit.data.base import IGNORE_INDEX

RECIPE = ROOT / "configs" / "shakespeare.toml"


def training_stream(windows) -> np.ndarray:
    """The training text's ids, rebuilt from the source's non-overlapping windows (x = ids[s:s+L], y shifted)."""
    x, y = windows.x[:, :, 0].astype(np.int64), windows.y
    lengths = windows.lengths if windows.lengths is not None else np.full(len(x), x.shape[1])
    parts = [x[i, : lengths[i]] for i in range(len(x))]
    return np.concatenate(parts + [y[-1:, lengths[-1] - 1]])


def held_out_loss(logits_of, windows, batch: int = 256) -> float:
    """Mean next-character cross-entropy (nats) over every real step of the held-out windows."""
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(windows.x), batch):
            x = torch.from_numpy(windows.x[start:start + batch, :, 0].astype(np.int64))  # (N, L)
            y = torch.from_numpy(windows.y[start:start + batch])  # (N, L), padding IGNORE_INDEX
            logits = logits_of(x)  # (N, L, V)
            total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                                           ignore_index=IGNORE_INDEX, reduction="sum"))
            count += int((y != IGNORE_INDEX).sum())
    return total / count


def train_gpt(stream: np.ndarray, vocab: int, seed: int, iters: int) -> tuple[GPT, float, float]:
    """nanoGPT's CPU configuration on ``stream``: the model, its training CPU seconds and wall seconds."""
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=vocab, block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0))
    optimizer = model.optimizer(lr=1e-3, weight_decay=0.1, betas=(0.9, 0.99))
    data = torch.from_numpy(stream)
    generator = torch.Generator().manual_seed(seed)
    block, batch = 64, 12
    model.train()
    cpu_started, wall_started = time.process_time(), time.perf_counter()
    for iteration in range(iters):
        for group in optimizer.param_groups:
            group["lr"] = nanogpt_lr(iteration, decay_iters=iters)
        starts = torch.randint(len(data) - block - 1, (batch,), generator=generator)
        x = torch.stack([data[s:s + block] for s in starts])  # (B, T)
        y = torch.stack([data[s + 1:s + block + 1] for s in starts])  # (B, T)
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    cpu, wall = time.process_time() - cpu_started, time.perf_counter() - wall_started
    return model.eval(), cpu, wall


def train_lstm(data: str, seed: int, cpu_seconds: float, threads: int, out: Path) -> tuple[Path, float, list[str]]:
    """``lstmkit train`` of the recipe for ``cpu_seconds`` of CPU time; its run folder, wall seconds, command."""
    settings = [f"data.path={data}", f"train.seed={seed}", f"train.max_minutes={cpu_seconds / 60:.4f}",
                "train.budget_clock=cpu", f"train.num_threads={threads}", "train.report=false",
                "train.tensorboard=false"]
    command = [sys.executable, "-m", "lstmkit", "train", str(RECIPE), "--out", str(out)]
    for setting in settings:
        command += ["--set", setting]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": str(threads)}
    started = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shown = ["lstmkit", "train", "configs/shakespeare.toml"] + [f"--set {s}" for s in settings]
    return out, time.perf_counter() - started, shown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="tiny-shakespeare's input.txt")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--iters", type=int, default=2000, help="GPT iterations (nanoGPT's CPU configuration: 2000)")
    parser.add_argument("--threads", type=int, default=1, help="threads of both models")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "lm-vs-gpt")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = str(Path(args.data).resolve())
    config = load_config(RECIPE, [f"data.path={data}"])
    source = load_source(config.data.name, config=config.data)
    stream, vocab = training_stream(source.train), len(source.label_names)
    print(f"{len(stream)} training characters, {len(source.test)} held-out windows, vocabulary {vocab}", flush=True)
    rows = []
    for seed in args.seeds:
        load_before = os.getloadavg()[0]
        gpt, gpt_cpu, gpt_wall = train_gpt(stream, vocab, seed, args.iters)
        gpt_loss = held_out_loss(gpt, source.test)
        print(f"seed {seed}: GPT {args.iters} iterations in {gpt_cpu:.1f} CPU s ({gpt_wall:.1f} s wall), "
              f"held-out loss {gpt_loss:.4f} nats/char", flush=True)
        run, lstm_wall, command = train_lstm(data, seed, gpt_cpu, args.threads, args.out / f"lstm-seed{seed}")
        from lstmkit.tasks.text import TextModel

        module = TextModel.load(run / "model").loaded.module.eval()
        lstm_loss = held_out_loss(lambda x, m=module: m(x[:, :, None].float()), source.test)
        metrics = json.loads((run / "metrics.json").read_text())
        print(f"seed {seed}: LSTM for the same CPU time ({metrics['epochs_run']} epochs, {lstm_wall:.1f} s wall "
              f"with loading and testing), held-out loss {lstm_loss:.4f} nats/char", flush=True)
        rows.append({"seed": seed, "gpt_iterations": args.iters, "gpt_cpu_seconds": round(gpt_cpu, 1),
                     "gpt_wall_seconds": round(gpt_wall, 1), "gpt_loss": gpt_loss,
                     "lstm_command": " ".join(command), "lstm_wall_seconds_total": round(lstm_wall, 1),
                     "lstm_train_seconds_wall": metrics["train_seconds"], "lstm_epochs_run": metrics["epochs_run"],
                     "lstm_loss": lstm_loss, "lstm_test_loss_reported": metrics.get("test_loss"),
                     "load_average_before": load_before, "load_average_after": os.getloadavg()[0]})
        args.out.mkdir(parents=True, exist_ok=True)  # after every seed, so that a cut-short run keeps its numbers
        (args.out / "results.json").write_text(json.dumps({"machine": machine_info(), "threads": args.threads,
                                                           "runs": rows}, indent=2))
    print("\n| seed | GPT CPU s | GPT nats/char | LSTM nats/char (same CPU s) |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['seed']} | {r['gpt_cpu_seconds']} | {r['gpt_loss']:.4f} | {r['lstm_loss']:.4f} |")
    if len(rows) > 1:
        print(f"mean GPT {statistics.mean(r['gpt_loss'] for r in rows):.4f}, "
              f"mean LSTM {statistics.mean(r['lstm_loss'] for r in rows):.4f}")


if __name__ == "__main__":
    main()
