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

__all__ = ["LoadedModel", "save_model", "load_model", "write_model_folder", "read_model_folder", "FolderContents",
           "write_manifest", "atomic_write_bytes", "write_synced_temp"]

WEIGHTS, CONFIG, META, MANIFEST = "model.safetensors", "config.toml", "meta.json", "manifest.json"
FILES = (WEIGHTS, CONFIG, META)
VOCAB = "vocab.json"
EXTRA_FILES = (VOCAB,)
"""Files a task may add beside the three every folder has (seq2seq: its two vocabularies). The names are
fixed here and never taken from a file."""
FORMAT_VERSION = 1
MANIFEST_FORMAT = "lstmkit-manifest-1"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def write_synced_temp(path: Path, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, flushed to disk; return the temporary's path.

    Renaming it onto ``path`` (``os.replace``) then publishes the whole file at once.
    """
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return tmp


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves either the old file or the new one, never half."""
    os.replace(write_synced_temp(path, data), path)


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
    def predict_proba(self, x: np.ndarray, lengths: np.ndarray | None = None, batch_size: int = 512) -> np.ndarray:
        """Class probabilities ``(N, C)`` for raw inputs ``(N, L, F)``; ``lengths`` (N,) gives the true steps of
        zero-padded sequences (variable-length models), so that padding never reaches the answer."""
        inputs = self.prepare(x)
        if lengths is not None:
            lengths = np.asarray(lengths)
            if lengths.shape != (len(inputs),) or lengths.min() < 1 or lengths.max() > inputs.shape[1]:
                raise DataError(f"model input: expected lengths (N,) = ({len(inputs)},) in 1..{inputs.shape[1]}, "
                                f"got {lengths.tolist()[:8]}")
        self.module.eval()
        chunks = []
        for start in range(0, len(inputs), batch_size):
            batch = inputs[start:start + batch_size]
            outputs = (self.module(batch) if lengths is None else
                       self.module(batch, lengths=torch.as_tensor(lengths[start:start + batch_size])))
            chunks.append(torch.softmax(outputs, dim=-1))
        return torch.cat(chunks).numpy()

    def predict(self, x: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        """Class indices ``(N,)`` for raw inputs ``(N, L, F)`` (and ``lengths``, see ``predict_proba``)."""
        return self.predict_proba(x, lengths).argmax(axis=-1)


@dataclass
class FolderContents:
    """A model folder's files, each checked against the manifest: the weights, the config's TOML text, the
    metadata and any extra files (by name)."""

    folder: Path
    weights: dict[str, torch.Tensor]
    config_text: str
    meta: dict[str, Any]
    extras: dict[str, bytes]


def write_model_folder(folder: str | Path, state: dict[str, torch.Tensor], config_toml: bytes,
                       meta: dict[str, Any], extras: dict[str, bytes] | None = None) -> Path:
    """Write a model folder for any task: weights (safetensors), config, metadata (with the format and
    lstmkit versions added), any of ``EXTRA_FILES``, then the manifest (last, so a folder whose save was
    interrupted has none, or a stale one, and is refused on load)."""
    folder = Path(folder)
    extras = dict(extras or {})
    unknown = sorted(set(extras) - set(EXTRA_FILES))
    if unknown:
        raise ValueError(f"model folder extras: expected names among {', '.join(EXTRA_FILES)}, got {unknown}")
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"format_version": FORMAT_VERSION, "lstmkit_version": lstmkit.__version__, **meta}
    weights = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    tmp_weights = folder / f".{WEIGHTS}.tmp-{os.getpid()}"
    try:
        save_file(weights, str(tmp_weights))
        os.replace(tmp_weights, folder / WEIGHTS)
    finally:
        tmp_weights.unlink(missing_ok=True)
    atomic_write_bytes(folder / CONFIG, config_toml)
    atomic_write_bytes(folder / META, json.dumps(meta, indent=2).encode())
    for name, data in extras.items():
        atomic_write_bytes(folder / name, data)
    for name in EXTRA_FILES:  # a stale extra from an earlier save would not match this model
        if name not in extras:
            (folder / name).unlink(missing_ok=True)
    write_manifest(folder)
    return folder


def read_model_folder(folder: str | Path) -> FolderContents:
    """Read any task's model folder, every file checked against its manifest first; never unpickles.

    Returns the parsed metadata (its ``format_version`` checked), the config's text and the weights. A run
    folder stands for its ``model/``.
    """
    from lstmkit.runs.folder import resolve_model_folder

    folder = resolve_model_folder(folder)
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
        weights = load_safetensors(files[WEIGHTS])  # the bytes that were hashed, not the file again
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFolderError(f"model folder {folder}: {WEIGHTS} is corrupt ({exc})") from None
    return FolderContents(folder=folder, weights=weights, config_text=_text(folder, CONFIG, files[CONFIG]),
                          meta=meta, extras={name: files[name] for name in EXTRA_FILES if name in files})


def load_weights(module: torch.nn.Module, contents: FolderContents) -> torch.nn.Module:
    """Load the folder's weights into ``module`` (built from its config); a mismatch is refused by name."""
    try:
        module.load_state_dict(contents.weights)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ModelFolderError(f"model folder {contents.folder}: {WEIGHTS} does not match {CONFIG} ({first})") from None
    return module.eval()


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

    meta = {
        "task": config.model.task,
        "input_size": spec.input_size,
        "sequence_length": spec.sequence_length,
        "image_shape": list(spec.image_shape) if spec.image_shape else None,
        "num_outputs": spec.num_outputs,
        "label_names": list(label_names),
        "standardizer": None if standardizer is None else standardizer.to_dict(),
        **(extra_meta or {}),
    }
    return write_model_folder(folder, module.state_dict(), tomli_w.dumps(config_to_dict(config)).encode(), meta)


def write_manifest(folder: str | Path) -> Path:
    """Write ``folder``'s ``manifest.json``: the SHA-256 of its files as they are now (atomically).

    ``save_model`` calls it. Call it yourself only for a folder you trust, e.g. one saved by an lstmkit
    that wrote no manifest.
    """
    folder = Path(folder)
    names = [*FILES, *(name for name in EXTRA_FILES if (folder / name).exists())]
    hashes = {name: hashlib.sha256(_read_bytes(folder, name)).hexdigest() for name in names}
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
            f"python -c \"from lstmkit.artifacts.model_folder import write_manifest; write_manifest('{folder}')\", "
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
        if name not in FILES + EXTRA_FILES:  # only fixed names are ever read: "../x" or "/etc/x" is refused
            raise ModelFolderError(f"model folder {folder}: {MANIFEST} lists {name!r}; expected only "
                                   f"{', '.join(FILES + EXTRA_FILES)}")
        if not isinstance(digest, str) or not _SHA256.match(digest):
            raise ModelFolderError(f"model folder {folder}: {MANIFEST}: {name}: expected a SHA-256 (64 hex "
                                   f"digits), got {digest!r}")
    data = {}
    for name in FILES:
        if name not in listed:
            raise ModelFolderError(f"model folder {folder}: {MANIFEST} does not list {name}")
    for name in EXTRA_FILES:
        if name not in listed and (folder / name).exists():
            raise ModelFolderError(f"model folder {folder}: {name} is not listed in {MANIFEST}: it was added "
                                   "after saving; remove it or save the model again")
    for name in listed:
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
    contents = read_model_folder(folder)
    folder, meta = contents.folder, contents.meta
    try:
        config = config_from_dict(tomllib.loads(contents.config_text))
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
    module = load_weights(build_model(config.model, spec), contents)
    module.to(device).eval()
    return LoadedModel(module=module, config=config, meta=meta)
