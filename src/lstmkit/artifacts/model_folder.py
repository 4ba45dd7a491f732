"""Self-describing model folders: save a trained model and load it back with nothing but the folder.

A model folder holds::

    model.safetensors   the weights (safetensors: loading never unpickles)
    config.toml         the run's exact config (the [model] table rebuilds the network)
    meta.json           lstmkit version, the task, input geometry, label names, preprocessing statistics
    vocab.json          (seq2seq) the source and target vocabularies
    manifest.json       the SHA-256 of each file above, written last

Every task writes its folder with ``write_model_folder`` and reads it with ``read_model_folder`` and
``load_weights``; ``save_model`` / ``load_model`` are the sequence models' (classifiers, regressors, text).

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
import stat
from dataclasses import dataclass
from pathlib import Path
import typing
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
from lstmkit.artifacts.safe_files import json_depth_exceeds, remove_stale_temporaries

__all__ = ["LoadedModel", "save_model", "load_model", "write_model_folder", "read_model_folder", "FolderContents",
           "load_weights", "write_manifest", "atomic_write_bytes", "write_synced_temp"]

WEIGHTS, CONFIG, META, MANIFEST = "model.safetensors", "config.toml", "meta.json", "manifest.json"
FILES = (WEIGHTS, CONFIG, META)
VOCAB = "vocab.json"
EXTRA_FILES = (VOCAB,)
"""Files a task may add beside the three every folder has (seq2seq: its two vocabularies). The names are
fixed here and never taken from a file."""
FORMAT_VERSION = 1
MANIFEST_FORMAT = "lstmkit-manifest-1"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_TEXT_BYTES = {MANIFEST: 64 * 2**10, CONFIG: 1 * 2**20, META: 64 * 2**20, VOCAB: 64 * 2**20}
"""The largest manifest, config and meta files read (meta.json holds a text model's vocabulary)."""
MAX_WEIGHTS_BYTES = 16 * 2**30
"""The largest weights file read when the config's own size is not known yet (``_read_checked``)."""
_HEADER_ALLOWANCE = 2**20
"""Bytes a safetensors file may hold beyond its tensors' data: the JSON header of names, dtypes and shapes."""
MAX_JSON_DEPTH = 32
"""The deepest nesting of brackets accepted in manifest.json, meta.json and config.toml."""
_CHUNK = 2**20


def write_synced_temp(path: Path, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, flushed to disk; return the temporary's path.

    Renaming it onto ``path`` (``os.replace``) then publishes the whole file at once. If the write fails (a full
    disk), the temporary is removed and the ``OSError``'s filename is ``path``.
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
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
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

    def streaming_unsupported_reason(self) -> str | None:
        """Why this model cannot stream step by step, or None when it can: its module's reason
        (``streaming_unsupported_reason``, where the module has one), then its audio front end's (a front end
        that normalises whole recordings, ``[data] cmn``, cannot give frames as the audio arrives)."""
        from lstmkit.data.audio import front_end_streaming_reason

        module_reason = getattr(self.module, "streaming_unsupported_reason", None)
        reasons = [module_reason() if module_reason is not None else None, front_end_streaming_reason(self.meta)]
        return "; ".join(r for r in reasons if r) or None

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
            with np.errstate(over="ignore", invalid="ignore"):
                x = standardizer.transform(x)
            check_finite(x, "model input once standardised with the training statistics (a value beyond "
                            "float32 after (x - mean) / std)")
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
        probabilities = torch.cat(chunks).numpy()
        check_finite(probabilities, "model output (the inputs are beyond what the network can represent)")
        return probabilities

    def predict(self, x: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        """Class indices ``(N,)`` for raw inputs ``(N, L, F)`` (and ``lengths``, see ``predict_proba``)."""
        return self.predict_proba(x, lengths).argmax(axis=-1)


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
    remove_stale_temporaries(folder)  # what a killed or failed save left
    meta = {"format_version": FORMAT_VERSION, "lstmkit_version": lstmkit.__version__, **meta}
    weights = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    tmp_weights = folder / f".{WEIGHTS}.tmp-{os.getpid()}"
    try:
        save_file(weights, str(tmp_weights))
        os.replace(tmp_weights, folder / WEIGHTS)
    except BaseException:
        tmp_weights.unlink(missing_ok=True)
        raise
    atomic_write_bytes(folder / CONFIG, config_toml)
    atomic_write_bytes(folder / META, json.dumps(meta, indent=2).encode())
    for name, data in extras.items():
        atomic_write_bytes(folder / name, data)
    for name in EXTRA_FILES:  # a stale extra from an earlier save would not match this model
        if name not in extras:
            (folder / name).unlink(missing_ok=True)
    write_manifest(folder)
    return folder


def write_manifest(folder: str | Path) -> Path:
    """Write ``folder``'s ``manifest.json``: the SHA-256 of its files as they are now (atomically).

    ``save_model`` calls it. Call it yourself only for a folder you trust, e.g. one saved by an lstmkit
    that wrote no manifest.
    """
    folder = Path(folder)
    hashes = {}
    for name in [*FILES, *(name for name in EXTRA_FILES if (folder / name).exists())]:
        digest = hashlib.sha256()
        _read_bytes(folder, name, digest=digest)
        hashes[name] = digest.hexdigest()
    manifest = {"format": MANIFEST_FORMAT, "algorithm": "sha256", "files": hashes}
    path = folder / MANIFEST
    atomic_write_bytes(path, json.dumps(manifest, indent=2).encode())
    return path


def _read_bytes(folder: Path, name: str, limit: int | None = None, digest: Any = None) -> bytes:
    """The bytes of ``folder/name``: a regular file of at most ``limit`` bytes, read in chunks.

    A FIFO, device or folder is refused before it is opened (opening a FIFO would block), the file is opened
    non-blocking and checked again, and reading stops at ``limit``. Each chunk goes into ``digest`` (a
    ``hashlib`` object) as it arrives, when one is given.
    """
    path = folder / name
    limit = MAX_TEXT_BYTES.get(name, MAX_WEIGHTS_BYTES) if limit is None else limit
    if path.is_symlink() and not path.resolve().is_relative_to(folder.resolve()):
        raise ModelFolderError(f"model folder {folder}: {name} is a link to outside the folder ({path.resolve()})")
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise ModelFolderError(f"model folder {folder}: {name}: expected a regular file, got "
                                   f"{_file_kind(os.stat(path).st_mode)}")
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ModelFolderError(f"model folder {folder}: missing {name}") from None
    except OSError as exc:
        raise ModelFolderError(f"model folder {folder}: cannot read {name} ({exc.strerror or exc})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):  # swapped between the check and the open
            raise ModelFolderError(f"model folder {folder}: {name}: expected a regular file, got "
                                   f"{_file_kind(info.st_mode)}")
        if info.st_size > limit:
            raise ModelFolderError(f"model folder {folder}: {name}: expected at most {limit} bytes, got "
                                   f"{info.st_size}")
        data = bytearray()
        while chunk := os.read(fd, min(_CHUNK, limit + 1 - len(data))):
            data += chunk
            if digest is not None:
                digest.update(chunk)
            if len(data) > limit:  # grew while being read
                raise ModelFolderError(f"model folder {folder}: {name}: expected at most {limit} bytes, got more")
        return bytes(data)
    except OSError as exc:
        raise ModelFolderError(f"model folder {folder}: cannot read {name} ({exc.strerror or exc})") from None
    finally:
        os.close(fd)


def _file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return kind
    return "a special file"


def _text(folder: Path, name: str, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ModelFolderError(f"model folder {folder}: cannot read {name} ({exc})") from None


def _check_depth(folder: Path, name: str, text: str) -> None:
    """Refuse JSON or TOML nested deeper than ``MAX_JSON_DEPTH`` before a recursive parser sees it."""
    if json_depth_exceeds(text, MAX_JSON_DEPTH):
        raise ModelFolderError(f"model folder {folder}: {name} is not valid (expected brackets nested at most "
                               f"{MAX_JSON_DEPTH} deep, got deeper)")


def _parse_json(folder: Path, name: str, data: bytes) -> Any:
    text = _text(folder, name, data)
    _check_depth(folder, name, text)
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ModelFolderError(f"model folder {folder}: {name} is not valid ({exc})") from None


def _read_manifest(folder: Path) -> dict[str, str]:
    """The manifest's ``{name: sha256}``, checked to list exactly the folder's fixed names."""
    manifest_path = folder / MANIFEST
    if not manifest_path.exists() and not manifest_path.is_symlink():
        raise ModelFolderError(
            f"model folder {folder}: missing {MANIFEST} (the SHA-256 of each file, which lstmkit checks before "
            "loading); a folder saved by an older lstmkit has none: if you trust it, add one with "
            f"python -c \"from lstmkit.artifacts.model_folder import write_manifest; write_manifest('{folder}')\", "
            "or save the model again")
    manifest = _parse_json(folder, MANIFEST, _read_bytes(folder, MANIFEST))
    try:
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
    for name in FILES:
        if name not in listed:
            raise ModelFolderError(f"model folder {folder}: {MANIFEST} does not list {name}")
    for name in EXTRA_FILES:
        if name not in listed and ((folder / name).exists() or (folder / name).is_symlink()):
            raise ModelFolderError(f"model folder {folder}: {name} is not listed in {MANIFEST}: it was added "
                                   "after saving; remove it or save the model again")
    return listed


def _read_one_checked(folder: Path, name: str, expected: str, limit: int | None = None) -> bytes:
    """The bytes of ``name``, hashed as they are read and checked against the manifest's SHA-256."""
    digest = hashlib.sha256()
    content = _read_bytes(folder, name, limit, digest)
    actual = digest.hexdigest()
    if not hmac.compare_digest(actual, expected):
        raise ModelFolderError(
            f"model folder {folder}: {name} does not match {MANIFEST} (SHA-256 {actual[:12]}..., expected "
            f"{expected[:12]}...): it was modified, truncated or replaced after saving; restore it or "
            "save the model again")
    return content


def _read_checked(folder: Path) -> dict[str, bytes]:
    """The bytes of each file of ``folder``, each checked against its SHA-256 in the manifest."""
    listed = _read_manifest(folder)
    return {name: _read_one_checked(folder, name, listed[name]) for name in FILES}


def _check_meta(folder: Path, meta: dict[str, Any]) -> None:
    """The types and bounds of what ``load_model`` takes from meta.json."""
    def fail(key: str, expected: str) -> typing.NoReturn:
        raise ModelFolderError(f"model folder {folder}: {META} {key}: expected {expected}, got "
                               f"{str(meta.get(key))[:60]!r}")

    def count(key: str, low: int, high: int, optional: bool = False) -> None:
        value = meta.get(key)
        if optional and value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            fail(key, f"an integer in {low}..{high}" + (" or null" if optional else ""))

    count("input_size", 1, MAX_DIMENSION)
    count("num_outputs", 1, MAX_DIMENSION)
    count("sequence_length", 1, 2**31 - 1, optional=True)
    image_shape = meta.get("image_shape")
    if image_shape is not None and (not isinstance(image_shape, list) or len(image_shape) != 2 or not all(
            isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= MAX_DIMENSION for n in image_shape)):
        fail("image_shape", f"null or [height, width] of integers in 1..{MAX_DIMENSION}")
    labels = meta.get("label_names")
    if not isinstance(labels, list) or not all(isinstance(n, str) for n in labels):
        fail("label_names", "a list of strings")
    if labels and len(labels) != meta["num_outputs"]:
        raise ModelFolderError(f"model folder {folder}: {META} label_names: expected {meta['num_outputs']} names "
                               f"(one per output), got {len(labels)}")
    standardizer = meta.get("standardizer")
    if standardizer is not None and not isinstance(standardizer, dict):
        fail("standardizer", "null or an object")


MAX_DIMENSION = 2**20
"""The largest input size, output count or image side accepted from a model folder's meta.json."""


def _weights_bytes(module: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in module.state_dict().values())


@dataclass
class FolderContents:
    """A model folder as read so far: the manifest, the metadata, the config's text and any extra files, each
    checked against the manifest. The weights are read on demand (``load_weights``), bounded by the size of
    the network the config describes."""

    folder: Path
    listed: dict[str, str]
    meta: dict[str, Any]
    config_text: str
    extras: dict[str, bytes]

    def weights(self, limit: int) -> dict[str, torch.Tensor]:
        """The tensors of the weights file, read only when it holds at most ``limit`` bytes."""
        data = _read_one_checked(self.folder, WEIGHTS, self.listed[WEIGHTS], limit)
        try:
            return load_safetensors(data)  # the bytes that were hashed, not the file again
        except (SafetensorError, OSError, ValueError) as exc:
            raise ModelFolderError(f"model folder {self.folder}: {WEIGHTS} is corrupt ({exc})") from None


def read_model_folder(folder: str | Path) -> FolderContents:
    """Read any task's model folder, every file checked against its manifest as it is read; never unpickles.

    Returns the parsed metadata (a JSON object with the right ``format_version``), the config's text (nested
    at most ``MAX_JSON_DEPTH`` deep) and the extra files; the weights come with ``load_weights``. A run folder
    stands for its ``model/``.
    """
    from lstmkit.runs.folder import resolve_model_folder

    folder = resolve_model_folder(folder)
    if not folder.is_dir():
        raise ModelFolderError(f"model folder {folder}: not found (expected a folder holding {WEIGHTS}, {CONFIG}, "
                               f"{META}, {MANIFEST})")
    listed = _read_manifest(folder)
    meta = _parse_json(folder, META, _read_one_checked(folder, META, listed[META]))
    if not isinstance(meta, dict):
        raise ModelFolderError(f"model folder {folder}: {META} is not valid (expected a JSON object, got "
                               f"{type(meta).__name__})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelFolderError(
            f"model folder {folder}: expected format_version {FORMAT_VERSION} in {META}, got {meta.get('format_version')!r}"
        )
    config_text = _text(folder, CONFIG, _read_one_checked(folder, CONFIG, listed[CONFIG]))
    _check_depth(folder, CONFIG, config_text)
    extras = {}
    for name in EXTRA_FILES:
        if name in listed:
            extras[name] = _read_one_checked(folder, name, listed[name])
            _check_depth(folder, name, _text(folder, name, extras[name]))
    return FolderContents(folder=folder, listed=listed, meta=meta, config_text=config_text, extras=extras)


def load_weights(build: typing.Callable[[], torch.nn.Module], contents: FolderContents) -> torch.nn.Module:
    """The network ``build()`` makes (from the folder's config), holding the folder's weights, in eval mode.

    The network is built on the meta device first (no memory), so a config that claims a huge network is
    refused before anything is allocated, and the weights file is read only up to twice that network's
    float32 size (room for float64 weights, never for a file of gigabytes). A mismatch is refused by name.
    """
    folder = contents.folder
    try:
        with torch.device("meta"):
            expected = _weights_bytes(build())
    except (RuntimeError, ValueError) as exc:
        raise ModelFolderError(f"model folder {folder}: {CONFIG} does not describe a network that can be "
                               f"built ({str(exc).strip().splitlines()[0] if str(exc).strip() else exc})") from None
    if expected > MAX_WEIGHTS_BYTES:
        raise ModelFolderError(f"model folder {folder}: {CONFIG} describes a network of {expected} bytes of weights; "
                               f"expected at most {MAX_WEIGHTS_BYTES}")
    state = contents.weights(2 * expected + _HEADER_ALLOWANCE)
    module = build()
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ModelFolderError(f"model folder {folder}: {WEIGHTS} does not match {CONFIG} ({first})") from None
    return module.eval()


def load_model(folder: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a sequence model's folder written by ``save_model`` (or the run folder holding one), each file
    checked against its manifest first, its metadata against its types and bounds.

    Never unpickles anything and reads only the folder's fixed file names.
    """
    contents = read_model_folder(folder)
    folder, meta = contents.folder, contents.meta
    try:
        config = config_from_dict(tomllib.loads(contents.config_text))
    except (tomllib.TOMLDecodeError, ConfigError, RecursionError) as exc:
        raise ModelFolderError(f"model folder {folder}: {CONFIG} is not valid ({exc})") from None
    _check_meta(folder, meta)
    image_shape = meta.get("image_shape")
    spec = InputSpec(input_size=meta["input_size"], num_outputs=meta["num_outputs"],
                     sequence_length=meta.get("sequence_length"),
                     image_shape=tuple(image_shape) if image_shape else None)
    module = load_weights(lambda: build_model(config.model, spec), contents)
    module.to(device).eval()
    return LoadedModel(module=module, config=config, meta=meta)
