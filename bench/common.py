"""Shared helpers for the benchmark scripts: machine description, timing statistics, table output."""

from __future__ import annotations

import os
import platform
import statistics
from typing import Iterable


def machine_info() -> dict[str, str]:
    """CPU model, core count and library versions, for the header of a results table."""
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": str(os.cpu_count()), "python": platform.python_version()}
    import torch

    info["torch"] = torch.__version__
    info["torch_threads"] = str(torch.get_num_threads())
    try:
        import tensorflow as tf  # noqa: F401

        info["tensorflow"] = tf.__version__
    except ImportError:
        pass
    return info


def summarize(samples: Iterable[float]) -> dict[str, float]:
    values = sorted(samples)
    return {"median": statistics.median(values), "min": values[0], "max": values[-1], "n": len(values)}


def markdown_table(rows: list[dict[str, str]]) -> str:
    headers = list(rows[0])
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(row[h]) for h in headers) + " |" for row in rows]
    return "\n".join(lines)
