"""Self-describing model folders: save a trained model and load it back with nothing but the folder.

A model folder holds::

    model.safetensors   the weights (safetensors: loading never unpickles)
    config.toml         the run's exact config (the [model] table rebuilds the network)
    meta.json           lstmkit version, input geometry, label names, preprocessing statistics
    manifest.json       the SHA-256 of each file above, written last

Loading checks every file against the manifest and parses the very bytes it hashed, so a modified,
truncated, missing or swapped file is refused, naming it. It reads only these fixed names (never a name
taken from a file) and never unpickles: safetensors, TOML and JSON only. A folder without a manifest
(saved before lstmkit wrote one) is refused too; ``write_manifest(folder)`` vouches for one you trust.

Example::

    model = load_model("runs/digits/model")
    probs = model.predict_proba(x_raw)    # x_raw: (N, L, F) raw values, as the data source gives them
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save_file

import lstmkit
from lstmkit.config import Config, config_from_dict, config_to_dict, tomllib
from lstmkit.data.transforms import Standardizer, check_finite
from lstmkit.errors import ConfigError, DataError, ModelFolderError
from lstmkit.models import InputSpec, build_model

__all__ = ["LoadedModel", "save_model", "load_model", "write_manifest", "atomic_write_bytes", "write_synced_temp"]

WEIGHTS, CONFIG, META, MANIFEST = "model.safetensors", "config.toml", "meta.json", "manifest.json"
FILES = (WEIGHTS, CONFIG, META)
FORMAT_VERSION = 1
MANIFEST_FORMAT = "lstmkit-manifest-1"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def write_synced_temp(path: Path, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, flushed to disk; return the temporary's path.

    Renaming it onto ``path`` (``os.replace``) then publishes the whole file at once. If the write fails (a full
    disk), the temporary is removed and the ``OSError`` names ``path``.
    """
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise OSError(exc.errno, f"cannot write {path} ({exc.strerror or exc})") from None
        raise
    return tmp


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves either the old file or the new one, never half."""
    tmp = write_synced_temp(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@dataclass
class LoadedModel:
    """A model with everything needed to turn raw inputs into predictions."""

    module: torch.nn.Module
    config: Config
    meta: dict[str, Any]

    @property
    def label_names(self) -> list[str]:
        return list(self.meta["label_names"])

    @property
    def input_shape(self) -> tuple[int | None, int]:
        """``(sequence_length, input_size)``; the length is None for variable-length models."""
        return self.meta["sequence_length"], self.meta["input_size"]

    @property
    def standardizer(self) -> Standardizer | None:
        stats = self.meta.get("standardizer")
        return None if stats is None else Standardizer.from_dict(stats)

    def prepare(self, x: np.ndarray) -> torch.Tensor:
        """Check raw inputs ``(N, L, F)`` and apply the training preprocessing."""
        x = np.asarray(x, dtype=np.float32)
        length, features = self.input_shape
        expected = f"(N, {length if length is not None else 'L'}, {features})"
        if x.ndim != 3 or x.shape[-1] != features or (length is not None and x.shape[1] != length):
            raise DataError(f"model input: expected shape {expected}, got {tuple(x.shape)}")
        if x.shape[0] == 0:
            raise DataError(f"model input: expected at least one sample of shape {expected}, got none")
        check_finite(x, "model input")
        standardizer = self.standardizer
        if standardizer is not None:
            x = standardizer.transform(x)
        return torch.from_numpy(np.ascontiguousarray(x))

    @torch.no_grad()
    def predict_proba(self, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """Class probabilities ``(N, C)`` for raw inputs ``(N, L, F)``."""
        inputs = self.prepare(x)
        self.module.eval()
        chunks = [torch.softmax(self.module(batch), dim=-1) for batch in inputs.split(batch_size)]
        return torch.cat(chunks).numpy()

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class indices ``(N,)`` for raw inputs ``(N, L, F)``."""
        return self.predict_proba(x).argmax(axis=-1)


def save_model(
    folder: str | Path,
    module: torch.nn.Module,
    config: Config,
    spec: InputSpec,
    label_names: list[str],
    standardizer: Standardizer | None,
    extra_meta: dict[str, Any] | None = None,
) -> Path:
    """Write ``module`` and everything needed to use it into ``folder`` (created if needed)."""
    import tomli_w

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta = {
        "format_version": FORMAT_VERSION,
        "lstmkit_version": lstmkit.__version__,
        "task": config.model.task,
        "input_size": spec.input_size,
        "sequence_length": spec.sequence_length,
        "image_shape": list(spec.image_shape) if spec.image_shape else None,
        "num_outputs": spec.num_outputs,
        "label_names": list(label_names),
        "standardizer": None if standardizer is None else standardizer.to_dict(),
        **(extra_meta or {}),
    }
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    tmp_weights = folder / f".{WEIGHTS}.tmp-{os.getpid()}"
    try:
        save_file(state, str(tmp_weights))
        os.replace(tmp_weights, folder / WEIGHTS)
    except BaseException:
        tmp_weights.unlink(missing_ok=True)
        raise
    atomic_write_bytes(folder / CONFIG, tomli_w.dumps(config_to_dict(config)).encode())
    atomic_write_bytes(folder / META, json.dumps(meta, indent=2).encode())
    write_manifest(folder)  # last: a folder whose save was interrupted has no (or a stale) manifest
    return folder


def write_manifest(folder: str | Path) -> Path:
    """Write ``folder``'s ``manifest.json``: the SHA-256 of its files as they are now (atomically).

    ``save_model`` calls it. Call it yourself only for a folder you trust, e.g. one saved by an lstmkit
    that wrote no manifest.
    """
    folder = Path(folder)
    hashes = {name: hashlib.sha256(_read_bytes(folder, name)).hexdigest() for name in FILES}
    manifest = {"format": MANIFEST_FORMAT, "algorithm": "sha256", "files": hashes}
    path = folder / MANIFEST
    atomic_write_bytes(path, json.dumps(manifest, indent=2).encode())
    return path


def _read_bytes(folder: Path, name: str) -> bytes:
    path = folder / name
    if path.is_symlink() and not path.resolve().is_relative_to(folder.resolve()):
        raise ModelFolderError(f"model folder {folder}: {name} is a link to outside the folder ({path.resolve()})")
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ModelFolderError(f"model folder {folder}: missing {name}") from None
    except OSError as exc:
        raise ModelFolderError(f"model folder {folder}: cannot read {name} ({exc})") from None


def _text(folder: Path, name: str, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ModelFolderError(f"model folder {folder}: cannot read {name} ({exc})") from None


def _read_checked(folder: Path) -> dict[str, bytes]:
    """The bytes of each file of ``folder``, each checked against its SHA-256 in the manifest."""
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise ModelFolderError(
            f"model folder {folder}: missing {MANIFEST} (the SHA-256 of each file, which lstmkit checks before "
            "loading); a folder saved by an older lstmkit has none: if you trust it, add one with "
            f"python -c \"from lstmkit.model_folder import write_manifest; write_manifest('{folder}')\", "
            "or save the model again")
    try:
        manifest = json.loads(_text(folder, MANIFEST, _read_bytes(folder, MANIFEST)))
        if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"expected a JSON object with \"format\": \"{MANIFEST_FORMAT}\"")
        listed = manifest.get("files")
        if not isinstance(listed, dict):
            raise ValueError('expected "files": {name: sha256}')
    except ValueError as exc:
        raise ModelFolderError(f"model folder {folder}: {MANIFEST} is not valid ({exc})") from None
    for name, digest in listed.items():
        if name not in FILES:  # only fixed names are ever read: a listed "../x" or "/etc/x" is refused
            raise ModelFolderError(f"model folder {folder}: {MANIFEST} lists {name!r}; expected only "
                                   f"{', '.join(FILES)}")
        if not isinstance(digest, str) or not _SHA256.match(digest):
            raise ModelFolderError(f"model folder {folder}: {MANIFEST}: {name}: expected a SHA-256 (64 hex "
                                   f"digits), got {digest!r}")
    data = {}
    for name in FILES:
        if name not in listed:
            raise ModelFolderError(f"model folder {folder}: {MANIFEST} does not list {name}")
        content = _read_bytes(folder, name)
        actual = hashlib.sha256(content).hexdigest()
        if not hmac.compare_digest(actual, listed[name]):
            raise ModelFolderError(
                f"model folder {folder}: {name} does not match {MANIFEST} (SHA-256 {actual[:12]}..., expected "
                f"{listed[name][:12]}...): it was modified, truncated or replaced after saving; restore it or "
                "save the model again")
        data[name] = content
    return data


def load_model(folder: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a model folder written by ``save_model``, each file checked against its manifest first.

    Never unpickles anything and reads only the folder's fixed file names.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelFolderError(f"model folder {folder}: not found (expected a folder holding {WEIGHTS}, {CONFIG}, "
                               f"{META}, {MANIFEST})")
    files = _read_checked(folder)
    try:
        meta = json.loads(_text(folder, META, files[META]))
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        raise ModelFolderError(f"model folder {folder}: {META} is not valid ({exc})") from None
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelFolderError(
            f"model folder {folder}: expected format_version {FORMAT_VERSION} in {META}, got {meta.get('format_version')!r}"
        )
    try:
        config = config_from_dict(tomllib.loads(_text(folder, CONFIG, files[CONFIG])))
    except (tomllib.TOMLDecodeError, ConfigError) as exc:
        raise ModelFolderError(f"model folder {folder}: {CONFIG} is not valid ({exc})") from None
    image_shape = meta.get("image_shape")
    try:
        spec = InputSpec(
            input_size=int(meta["input_size"]),
            num_outputs=int(meta["num_outputs"]),
            sequence_length=meta.get("sequence_length"),
            image_shape=tuple(image_shape) if image_shape else None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFolderError(f"model folder {folder}: {META} lacks a valid input description ({exc})") from None
    module = build_model(config.model, spec)
    try:
        state = load_safetensors(files[WEIGHTS])  # the bytes that were hashed, not the file again
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFolderError(f"model folder {folder}: {WEIGHTS} is corrupt ({exc})") from None
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ModelFolderError(f"model folder {folder}: {WEIGHTS} does not match {CONFIG} ({first})") from None
    module.to(device).eval()
    return LoadedModel(module=module, config=config, meta=meta)
