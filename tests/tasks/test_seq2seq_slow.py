"""A small date-normalisation model trained for real: accuracy and a monotonic attention alignment."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lstmkit.data.pairs import format_date
from lstmkit.tasks.seq2seq import Translator, attention_monotonicity, attention_spearman, load_config, run

CONFIGS = Path(__file__).parent.parent.parent / "configs"


@pytest.mark.slow
def test_date_model_learns_a_monotonic_alignment(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        config = load_config(CONFIGS / "dates.toml", ["data.test_samples=300", "train.epochs=3"])
        metrics = run(config, tmp_path / "dates")
    finally:
        torch.set_num_threads(threads)
    assert metrics["test_exact_match"] >= 0.9
    translator = Translator.load(tmp_path / "dates" / "model")
    # Year-first formats are written in the ISO order, so the alignment should move left to right.
    import datetime as dt

    rng = np.random.default_rng(0)
    days = [dt.date(1970, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 29000, 20)]
    monotonic, spearman = [], []
    for day in days:
        for template in ("{Y}.{mm}.{dd}", "{Y}{mm}{dd}"):
            result = translator.translate(format_date(day, template))
            digits = result.attention[:-1]  # the <eos> row attends anywhere
            monotonic.append(attention_monotonicity(digits))
            spearman.append(attention_spearman(digits))
    assert np.nanmean(monotonic) >= 0.8, monotonic
    assert np.nanmean(spearman) > 0.8, spearman
