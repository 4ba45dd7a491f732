"""Small pieces that several commands share: default run folders, output lines, argument checks."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from lstmkit.errors import LstmkitError


def default_run_folder(config: str | Path, prefix: str = "") -> Path:
    """``runs/[PREFIX]CONFIG-TIMESTAMP``, the run folder when ``--out`` is not given."""
    return Path("runs") / f"{prefix}{Path(config).stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def at_least_one(value: int, option: str) -> None:
    """Refuse an integer option below 1, naming it: ``predict --top: expected an integer >= 1, got 0``."""
    if value < 1:
        raise LstmkitError(f"{option}: expected an integer >= 1, got {value}")


def prediction_line(result: dict[str, Any], top: int) -> str:
    """``INPUT[INDEX]  LABEL  PROBABILITY  (the top classes with their probabilities)``."""
    best = sorted(result["probabilities"].items(), key=lambda kv: -kv[1])[:top]
    others = "  ".join(f"{name} {p:.3f}" for name, p in best)
    return f"{result['input']}[{result['index']}]\t{result['label']}\t{result['probability']:.3f}\t({others})"


def load_signal(path: Path | None):
    """``--signal FILE``: a .npy array to rank units against, or None."""
    import numpy as np

    from lstmkit.errors import ReportError

    if path is None:
        return None
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ReportError(f"--signal {path}: expected a .npy array (samples, L) or (L,), got {exc}") from None
