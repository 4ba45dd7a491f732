"""The IDX file format (MNIST's) and the sources ``mnist`` and ``fashion-mnist`` built on it.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions), one
big-endian uint32 per dimension, then the values in C order, big-endian. Files may be gzipped.

Each source reads the four standard files ``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
``t10k-images-idx3-ubyte.gz`` and ``t10k-labels-idx1-ubyte.gz`` (or their un-gzipped names) from the
first of these places that has them:

1. ``data_dir``, when given (and only there: missing files are an error, nothing is downloaded);
2. a system folder (fashion-mnist: ``/usr/share/datasets/fashion-mnist`` from the Debian package
   ``dataset-fashion-mnist``);
3. the cache, ``$LSTMKIT_CACHE/<name>`` or ``~/.cache/lstmkit/<name>``;
4. a download into the cache from the mirrors (``$LSTMKIT_MNIST_MIRROR`` /
   ``$LSTMKIT_FASHION_MNIST_MIRROR``, comma-separated base URLs, replace the built-in list, all https),
   each file written atomically and checked against its published MD5; its SHA-256 is then recorded in the
   cache's ``SHA256SUMS``, and every later read from the cache checks each file against it (a file in the
   cache without a recorded SHA-256, or not matching it, is refused: delete it to download it again).
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import logging
import math
import os
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import numpy as np

from lstmkit.data.base import ArrayDataset, SourceData, register_source
from lstmkit.errors import DataError

__all__ = ["read_idx", "write_idx", "IDX_FILES", "CHECKSUMS", "MIRRORS", "MIRROR_ENV", "SYSTEM_DIRS",
           "cache_dir"]

log = logging.getLogger(__name__)

# IDX type code -> big-endian dtype.
_CODE_TO_DTYPE = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_KIND_TO_CODE = {(dtype.kind, dtype.itemsize): code for code, dtype in _CODE_TO_DTYPE.items()}
_KNOWN_MAGIC = {0x0801: "uint8 labels", 0x0803: "uint8 images"}
_GZIP_MAGIC = b"\x1f\x8b"
_MAX_NDIM = 32  # NumPy 1.x's limit (2.x allows 64); an IDX header may declare up to 255

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

# MD5 of each gzipped file as published upstream (and by torchvision; upstream publishes no SHA-256); checked
# on download, after which the file's SHA-256 goes into the cache's SHA256SUMS and is checked on every read.
# Files found in data_dir or a system folder are not checked: Debian, for one, ships fashion-mnist
# re-compressed, so its .gz files differ byte-wise though their content is the same.
CHECKSUMS: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}
MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/",),
    # The bucket behind upstream's http-only S3 website endpoint, over https; then the project's GitHub copy.
    "fashion-mnist": ("https://fashion-mnist.s3.eu-central-1.amazonaws.com/",
                      "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/"),
}
MIRROR_ENV = {"mnist": "LSTMKIT_MNIST_MIRROR", "fashion-mnist": "LSTMKIT_FASHION_MNIST_MIRROR"}
SYSTEM_DIRS: dict[str, tuple[Path, ...]] = {
    "mnist": (),
    "fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"),),
}
_HINTS = {
    "mnist": "pass --data-dir with a folder holding the 4 files",
    "fashion-mnist": "pass --data-dir with a folder holding the 4 files, "
                     "or install the Debian package dataset-fashion-mnist",
}
_LABEL_NAMES = {
    "mnist": [str(digit) for digit in range(10)],
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
}
_IMAGE_SHAPE = (28, 28)
_DOWNLOAD_TIMEOUT_S = 60
SUMS_FILE = "SHA256SUMS"
"""The cache's record of each downloaded file's SHA-256 (``sha256sum`` format)."""


# ----------------------------------------------------------------------------------------- IDX format


def _describe_magic(magic: int) -> str:
    if magic in _KNOWN_MAGIC:
        return _KNOWN_MAGIC[magic]
    dtype = _CODE_TO_DTYPE.get((magic >> 8) & 0xFF)
    return f"{dtype.newbyteorder('=').name if dtype else 'unknown type'}, {magic & 0xFF}-D"


def read_idx(path: str | Path, expected_magic: int | None = None) -> np.ndarray:
    """Read an IDX file, gzipped or plain, into an array of its native shape and dtype.

    Args:
        path: the file. Gzip is recognised from the content, not the name.
        expected_magic: if given, the magic number the file must have, e.g. ``0x00000803`` for uint8
            images of shape (N, rows, cols), ``0x00000801`` for uint8 labels of shape (N,).

    Returns:
        A writable array in native byte order, e.g. uint8 of shape (60000, 28, 28).

    Raises:
        DataError: naming the file, if it is missing, not valid gzip, truncated, longer than its header
            says, or has a bad or unexpected magic number.

    Example::

        >>> write_idx(tmp / "labels-idx1-ubyte.gz", np.array([3, 1, 4], dtype=np.uint8))
        >>> read_idx(tmp / "labels-idx1-ubyte.gz", expected_magic=0x801)
        array([3, 1, 4], dtype=uint8)
    """
    path = Path(path)
    what = f"IDX file {path}"
    content = _read_bytes(path, what)
    if len(content) < 4:
        raise DataError(f"{what}: expected at least a 4-byte header, got {len(content)} bytes")
    magic = int.from_bytes(content[:4], "big")
    if content[:2] != b"\x00\x00":
        raise DataError(f"{what}: expected a magic number 0x0000TTDD (two zero bytes, type code, "
                        f"dimension count), got 0x{magic:08x}")
    if expected_magic is not None and magic != expected_magic:
        raise DataError(f"{what}: expected magic 0x{expected_magic:08x} ({_describe_magic(expected_magic)}), "
                        f"got 0x{magic:08x} ({_describe_magic(magic)})")
    code, ndim = content[2], content[3]
    if code not in _CODE_TO_DTYPE:
        codes = ", ".join(f"0x{c:02x}" for c in _CODE_TO_DTYPE)
        raise DataError(f"{what}: expected a type code in {codes}, got 0x{code:02x}")
    if not 1 <= ndim <= _MAX_NDIM:
        raise DataError(f"{what}: expected 1 to {_MAX_NDIM} dimensions, got {ndim}")
    header_size = 4 + 4 * ndim
    if len(content) < header_size:
        raise DataError(f"{what}: expected a {header_size}-byte header for {ndim} dimensions, "
                        f"got {len(content)} bytes (truncated)")
    dims = tuple(int.from_bytes(content[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = _CODE_TO_DTYPE[code]
    expected_bytes = math.prod(dims) * dtype.itemsize  # Python ints: 255 uint32 sizes overflow int64
    got_bytes = len(content) - header_size
    if got_bytes != expected_bytes:
        reason = "truncated" if got_bytes < expected_bytes else "trailing bytes"
        raise DataError(f"{what}: expected {expected_bytes} data bytes for {dtype.newbyteorder('=').name} "
                        f"of shape {dims}, got {got_bytes} ({reason})")
    array = np.frombuffer(content, dtype=dtype, offset=header_size).reshape(dims)
    return array.astype(dtype.newbyteorder("="))  # a native-order, writable copy


def _read_bytes(path: Path, what: str) -> bytes:
    try:
        with path.open("rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise DataError(f"{what}: expected an existing file, got no such file") from None
    except IsADirectoryError:
        raise DataError(f"{what}: expected a file, got a folder") from None
    except OSError as e:
        raise DataError(f"{what}: expected a readable file, got {e.strerror or e}") from None
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{what}: expected a valid gzip stream, got a corrupt or truncated one "
                        f"({type(e).__name__}: {e})") from None


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file, gzipped when ``path`` ends in ``.gz`` (deterministic bytes).

    Supported dtypes: uint8, int8, int16, int32, float32, float64 (cast int64 labels to uint8 first).

    Raises:
        DataError: for an unsupported dtype, a 0-D array or a dimension that does not fit in uint32.
    """
    path = Path(path)
    array = np.asarray(array)
    code = _KIND_TO_CODE.get((array.dtype.kind, array.dtype.itemsize))
    if code is None:
        raise DataError(f"write_idx {path}: expected an array of dtype uint8, int8, int16, int32, float32 "
                        f"or float64, got {array.dtype}")
    if not 1 <= array.ndim <= _MAX_NDIM:  # what read_idx reads back
        raise DataError(f"write_idx {path}: expected an array with 1 to {_MAX_NDIM} dimensions, got {array.ndim}")
    if max(array.shape) >= 2**32:
        raise DataError(f"write_idx {path}: expected dimensions below 2**32, got shape {array.shape}")
    header = bytes([0, 0, code, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    payload = header + np.ascontiguousarray(array, dtype=_CODE_TO_DTYPE[code]).tobytes()
    if path.name.endswith(".gz"):
        payload = gzip.compress(payload, mtime=0)
    path.write_bytes(payload)


# -------------------------------------------------------------------------------- finding the files


def cache_dir(name: str) -> Path:
    """Where the source ``name`` caches downloads: ``$LSTMKIT_CACHE/<name>`` or ``~/.cache/lstmkit/<name>``."""
    root = os.environ.get("LSTMKIT_CACHE")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "lstmkit") / name


def _mirrors(name: str) -> list[str]:
    override = os.environ.get(MIRROR_ENV[name], "").strip()
    if override:
        return [url.strip() for url in override.split(",") if url.strip()]
    return list(MIRRORS[name])


def _find_files(folder: Path) -> tuple[dict[str, Path], list[str]]:
    """The standard files present in ``folder`` (gzipped preferred) and the names of those missing."""
    found: dict[str, Path] = {}
    missing: list[str] = []
    for stem in IDX_FILES:
        for candidate in (folder / f"{stem}.gz", folder / stem):
            if candidate.is_file():
                found[stem] = candidate
                break
        else:
            missing.append(f"{stem}.gz")
    return found, missing


def _download(name: str, filename: str, folder: Path) -> Path:
    """Fetch ``filename`` from the first mirror that serves it, verify its MD5, move it into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / filename
    expected = CHECKSUMS[name][filename]
    failures = []
    for base in _mirrors(name):
        url = base.rstrip("/") + "/" + filename
        log.info("%s: downloading %s", name, url)
        fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{filename}.", suffix=".part")
        tmp = Path(tmp_name)
        try:
            digest, sha256 = hashlib.md5(), hashlib.sha256()
            with os.fdopen(fd, "wb") as out:
                with urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as response:
                    while chunk := response.read(1 << 20):
                        digest.update(chunk)
                        sha256.update(chunk)
                        out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
            tmp.unlink(missing_ok=True)
            if isinstance(e, urllib.error.HTTPError):
                e.close()  # an HTTPError holds the open response
                reason = e
            else:
                reason = getattr(e, "reason", None) or e
            log.warning("%s: could not download %s: %s", name, url, reason)
            failures.append(f"{url} ({reason})")
            continue
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        got = digest.hexdigest()
        if got != expected:
            tmp.unlink(missing_ok=True)
            raise DataError(f"{name}: downloaded {filename} from {url}: expected MD5 {expected}, got {got}")
        os.replace(tmp, target)
        _record_sha256(folder, filename, sha256.hexdigest())
        return target
    raise DataError(f"{name}: the dataset could not be downloaded: {filename} failed from "
                    f"{'; '.join(failures) or 'no mirror'}; {_HINTS[name]}")


_ANNOUNCED: set[tuple[str, Path]] = set()


def _locate(name: str, data_dir: Path | None, download: bool) -> dict[str, Path]:
    if data_dir is not None:
        found, missing = _find_files(data_dir)
        if missing:
            raise DataError(f"{name}: expected the 4 IDX files (gzipped or not) in {data_dir}, "
                            f"missing {', '.join(missing)}")
        return found
    for folder in SYSTEM_DIRS[name]:
        found, missing = _find_files(folder)
        if not missing:
            if (name, folder) not in _ANNOUNCED:  # once per process: a run reads its data again for the report
                _ANNOUNCED.add((name, folder))
                log.info("%s: reading %s", name, folder)
            return found
    cache = cache_dir(name)
    found, missing = _find_files(cache)
    if missing and not download:
        raise DataError(f"{name}: expected the 4 IDX files in the cache {cache}, missing "
                        f"{', '.join(missing)} and download is off; {_HINTS[name]}")
    for filename in missing:
        found[filename.removesuffix(".gz")] = _download(name, filename, cache)
    _check_cached(name, cache, found)
    return found


def _read_sums(folder: Path) -> dict[str, str]:
    try:
        text = (folder / SUMS_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cache {folder}: cannot read {SUMS_FILE} ({exc}); delete the folder to download again") from None
    sums = {}
    for line in text.splitlines():
        digest, _, filename = line.strip().partition("  ")
        if len(digest) == 64 and filename:
            sums[filename] = digest
    return sums


def _record_sha256(folder: Path, filename: str, digest: str) -> None:
    """Add ``filename``'s SHA-256 to the cache's SHA256SUMS (rewritten atomically)."""
    sums = _read_sums(folder)
    sums[filename] = digest
    text = "".join(f"{d}  {f}\n" for f, d in sorted(sums.items()))
    tmp = folder / f".{SUMS_FILE}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, folder / SUMS_FILE)
    finally:
        tmp.unlink(missing_ok=True)


def _check_cached(name: str, cache: Path, found: dict[str, Path]) -> None:
    """Check every cached file against the SHA-256 recorded when it was downloaded."""
    sums = _read_sums(cache)
    for path in found.values():
        expected = sums.get(path.name)
        if expected is None:
            raise DataError(f"{name}: cached file {path} has no SHA-256 recorded in {cache / SUMS_FILE} (it was not "
                            "downloaded by this lstmkit); delete it to download it again, or pass --data-dir")
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        if digest.hexdigest() != expected:
            raise DataError(f"{name}: cached file {path}: expected SHA-256 {expected[:12]}... (recorded at download), "
                            f"got {digest.hexdigest()[:12]}...; it was modified or damaged: delete it to download it "
                            "again")


def _load_idx_source(name: str, data_dir: Path | None, download: bool) -> SourceData:
    files = _locate(name, data_dir, download)
    splits = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = read_idx(files[f"{prefix}-images-idx3-ubyte"], expected_magic=0x00000803)
        labels = read_idx(files[f"{prefix}-labels-idx1-ubyte"], expected_magic=0x00000801)
        if images.shape[1:] != _IMAGE_SHAPE:
            raise DataError(f"IDX file {files[f'{prefix}-images-idx3-ubyte']}: expected images of shape "
                            f"{_IMAGE_SHAPE}, got {images.shape[1:]}")
        if labels.shape[0] != images.shape[0]:
            raise DataError(f"IDX file {files[f'{prefix}-labels-idx1-ubyte']}: expected as many labels as "
                            f"images ({images.shape[0]}), got {labels.shape[0]}")
        splits[split] = ArrayDataset(images.astype(np.float32), labels.astype(np.int64))  # (N, 28, 28)
    return SourceData(
        train=splits["train"],
        test=splits["test"],
        label_names=list(_LABEL_NAMES[name]),
        image_shape=_IMAGE_SHAPE,
        pixel_max=255.0,
        name=name,
    )


@register_source("mnist")
def load_mnist(data_dir: Path | None, download: bool) -> SourceData:
    """MNIST handwritten digits: x (N, 28, 28) float32 in 0..255, row r of an image is step r."""
    return _load_idx_source("mnist", data_dir, download)


@register_source("fashion-mnist")
def load_fashion_mnist(data_dir: Path | None, download: bool) -> SourceData:
    """Zalando's Fashion-MNIST: x (N, 28, 28) float32 in 0..255, ten clothing classes."""
    return _load_idx_source("fashion-mnist", data_dir, download)
