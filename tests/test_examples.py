"""Each script in examples/ runs top to bottom (with EXAMPLE_FAST=1: small data, few epochs)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
# Each script and a line its output must hold.
EXAMPLES = {"mnist_rows.py": "test accuracy", "streaming.py": "test accuracy", "airline_forecast.py": "seasonal_naive"}


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(EXAMPLES))
def test_example_runs(script):
    env = {**os.environ, "EXAMPLE_FAST": "1", "EXAMPLE_THREADS": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, str(ROOT / "examples" / script)], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert EXAMPLES[script] in result.stdout
