"""Install PyTorch into a virtual environment without ever pulling a CUDA build onto a CPU-only machine.

Usage: ``python tools/install_torch.py VENV_PYTHON [SPEC]`` (SPEC defaults to ``torch==2.13.0``).

1. If the environment already has that torch version, do nothing.
2. On a machine with an NVIDIA driver (``nvidia-smi`` on PATH), install SPEC as pip resolves it: on Linux
   that is PyPI's CUDA build. (For a specific CUDA version, install torch yourself first; step 1 keeps it.)
3. Otherwise ask pip, without installing, which files it would take (``--dry-run --report``). If that
   build needs NVIDIA's CUDA packages, install from PyTorch's CPU-only index instead (override with the
   TORCH_CPU_INDEX environment variable). Otherwise (a local CPU wheel, macOS, Windows) install it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

CPU_INDEX = os.environ.get("TORCH_CPU_INDEX", "https://download.pytorch.org/whl/cpu")


def installed_version(python: str) -> str | None:
    probe = subprocess.run([python, "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True)
    return probe.stdout.strip() if probe.returncode == 0 else None


def pip(python: str, *args: str) -> None:
    print("+ pip install", " ".join(args), flush=True)
    subprocess.run([python, "-m", "pip", "install", *args], check=True)


def needs_cuda_packages(python: str, spec: str) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        report_path = os.path.join(tmp, "report.json")
        subprocess.run([python, "-m", "pip", "install", "--quiet", "--dry-run", "--report", report_path, spec],
                       check=True)
        with open(report_path) as fh:
            report = json.load(fh)
    names = [item["metadata"]["name"].lower() for item in report.get("install", [])]
    return any(name.startswith("nvidia-") for name in names)


def main(argv: list[str]) -> int:
    if not 2 <= len(argv) <= 3:
        print(__doc__, file=sys.stderr)
        return 2
    python, spec = argv[1], argv[2] if len(argv) == 3 else "torch==2.13.0"
    wanted = spec.partition("==")[2]
    have = installed_version(python)
    if have and wanted and have.split("+")[0] == wanted:
        print(f"torch {have} is already installed")
        return 0
    if shutil.which("nvidia-smi"):
        pip(python, spec)
    elif needs_cuda_packages(python, spec):
        print(f"no NVIDIA GPU here: installing the CPU-only build of {spec}", flush=True)
        pip(python, spec, "--index-url", CPU_INDEX)
    else:
        pip(python, spec)
    print(f"installed torch {installed_version(python)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
