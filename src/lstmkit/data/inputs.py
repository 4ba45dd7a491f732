"""Reading a user's inputs for prediction: ``.npy``, CSV text (a file or stdin) and image files."""

from __future__ import annotations

import logging
import math
import os
import re
import sys
import tokenize
import warnings
from pathlib import Path

import numpy as np

from lstmkit.data.transforms import check_finite
from lstmkit.errors import DataError

__all__ = ["read_inputs", "read_sequences", "read_npy_array", "IMAGE_SUFFIXES", "TEXT_SUFFIXES"]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".pgm")
TEXT_SUFFIXES = (".csv", ".txt")

# What NumPy's .npy header parser raises on malformed bytes, besides ValueError and OSError: it
# evaluates the header as a Python literal (and re-tokenises old ones) and sorts its keys.
_NPY_HEADER_ERRORS = (EOFError, TypeError, SyntaxError, tokenize.TokenError, RecursionError, MemoryError)


def read_inputs(
    source: str | Path,
    sequence_length: int,
    input_size: int,
    image_shape: tuple[int, int] | None = None,
    pixel_max: float | None = None,
    invert: bool = False,
) -> np.ndarray:
    """Read samples to predict on, as raw (un-standardised) float32 of shape (N, L, F).

    Args:
        source: a path, or ``"-"`` for CSV text on stdin. By extension:

            * ``.npy``: an array of shape (N, L, F) or (L, F), or flattened (N, L*F) or (L*F,).
            * ``.csv`` / ``.txt``: one sample per row of L*F numbers (comma- or whitespace-separated,
              row-major: step 0's F features, then step 1's, ...); a first row that is not all numbers
              is a header and is skipped.
            * ``.png .jpg .jpeg .bmp .gif .pgm`` (only when ``image_shape`` is given): converted to
              grayscale (transparent parts become white), resized to ``image_shape`` = (rows, cols) by
              box averaging, and scaled from 0..255 to 0..``pixel_max``.
        sequence_length: L, the number of steps per sample.
        input_size: F, the number of features per step.
        image_shape: (rows, cols) when the model reads images row by row; enables image files.
        pixel_max: the training data's pixel scale (16 for digits, 255 for MNIST); None keeps 0..255.
        invert: for images with dark strokes on a light background: use ``255 - value`` (the
            training images are light on dark).

    Raises:
        DataError: for a missing file, an unsupported extension, an unreadable file or image, a wrong
            shape or number count (naming the CSV row), or NaN/Inf values.
    """
    L, F = int(sequence_length), int(input_size)
    if str(source) == "-":
        return _finish(_parse_text(sys.stdin.read(), "stdin", L * F), "stdin", L, F)
    path = _existing_file(source)
    name = str(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return _finish(_read_npy(path, name), name, L, F)
    if suffix in TEXT_SUFFIXES:
        return _finish(_parse_text(_read_text(path), name, L * F), name, L, F)
    if suffix in IMAGE_SUFFIXES:
        if image_shape is None:
            raise DataError(f"input {name}: expected a .npy or .csv file (the model was not trained on images), "
                            f"got a {suffix} image")
        return _finish(_read_image(path, name, image_shape, pixel_max, invert), name, L, F)
    supported = ", ".join((".npy",) + TEXT_SUFFIXES + IMAGE_SUFFIXES)
    raise DataError(f"input {name}: expected one of the extensions {supported} or '-' for stdin, "
                    f"got {suffix or 'no extension'!r}")


def read_sequences(
    source: str | Path,
    sequence_length: int | None,
    input_size: int,
    image_shape: tuple[int, int] | None = None,
    pixel_max: float | None = None,
    invert: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Samples to predict on, ``(x, lengths)``: for a fixed-length model, ``read_inputs`` and None; for a
    variable-length model (``sequence_length`` None), sequences of any length.

    Variable lengths: a ``.npy`` of shape (N, L, F), (L, F) or (L*F,); a CSV or text file (or ``-``) with
    one sequence per row, each row a positive multiple of F numbers (step 0's F features, then step 1's,
    ...). Rows of different lengths come back zero-padded to the longest, with ``lengths`` (N,) the true
    number of steps of each, so that padding never reaches the model.
    """
    if sequence_length is not None:
        return read_inputs(source, sequence_length, input_size, image_shape, pixel_max, invert), None
    F = int(input_size)
    name = "stdin" if str(source) == "-" else str(source)
    if str(source) == "-":
        rows = _parse_text(sys.stdin.read(), name, F, variable=True)
    else:
        path = _existing_file(source)
        suffix = path.suffix.lower()
        if suffix == ".npy":
            array = _read_npy(path, name)
            if array.ndim == 2 and array.shape[1] == F:
                array = array[None]
            elif array.ndim == 1 and array.size and array.size % F == 0:
                array = array.reshape(1, -1, F)
            if array.ndim != 3 or array.shape[2] != F or 0 in array.shape:
                raise DataError(f"input {name}: expected an array of shape (N, L, {F}), (L, {F}) or (L*{F},) "
                                f"with L >= 1, got {array.shape}")
            return _finish(array, name, array.shape[1], F), None
        if suffix not in TEXT_SUFFIXES:
            raise DataError(f"input {name}: expected a .npy, .csv or .txt file or '-' for stdin (the model reads "
                            f"sequences of {F} features per step), got {suffix or 'no extension'!r}")
        rows = _parse_text(_read_text(path), name, F, variable=True)
    lengths = np.array([len(row) // F for row in rows], dtype=np.int64)
    padded = np.zeros((len(rows), int(lengths.max()) * F), dtype=np.float64)
    for i, row in enumerate(rows):
        padded[i, :len(row)] = row
    x = _finish(padded.reshape(len(rows), -1, F), name, int(lengths.max()), F)
    return x, None if (lengths == lengths[0]).all() else lengths


def _existing_file(source: str | Path) -> Path:
    """``source`` as a path, refused unless it names an existing file."""
    path = Path(source)
    if not path.exists():
        raise DataError(f"input {path}: expected an existing file, got no such file")
    if path.is_dir():
        raise DataError(f"input {path}: expected a file, got a folder")
    return path


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"input {path}: expected a readable UTF-8 text file, got {e}") from None


def read_npy_array(source: str | Path) -> np.ndarray:
    """A ``.npy`` file's array of real numbers, its header checked against the file's size before any data is
    allocated; never unpickles. A missing file, another extension or NaN/Inf is a ``DataError``."""
    path = Path(source)
    if path.suffix.lower() != ".npy":
        raise DataError(f"input {path}: expected a .npy file, got {path.suffix or 'no extension'!r}")
    path = _existing_file(path)
    array = _read_npy(path, str(path))
    check_finite(array, f"input {path}")
    return array


def _read_npy(path: Path, name: str) -> np.ndarray:
    """Like ``np.load``, but the header is checked against the file's size before any data is allocated."""
    fmt = np.lib.format
    try:
        with path.open("rb") as f:
            version = fmt.read_magic(f)
            if version not in ((1, 0), (2, 0)):  # 3.0 is only for structured dtypes with non-Latin-1 names
                raise DataError(f"input {name}: expected a .npy file of format version 1.0 or 2.0, "
                                f"got {version[0]}.{version[1]}")
            read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, fortran_order, dtype = read_header(f)
            if dtype.kind not in "biuf":  # not complex, dates, text or records
                raise DataError(f"input {name}: expected an array of real numbers (bool, int or float), "
                                f"got dtype {dtype}")
            if any(d < 0 for d in shape):
                raise DataError(f"input {name}: expected a shape of non-negative sizes, got {shape}")
            count = math.prod(shape)
            available = os.fstat(f.fileno()).st_size - f.tell()
            if count * dtype.itemsize > available:
                raise DataError(f"input {name}: expected {count * dtype.itemsize} data bytes for {dtype} of "
                                f"shape {shape}, got {available} (truncated)")
            array = np.fromfile(f, dtype=dtype, count=count)
            return array.reshape(shape, order="F" if fortran_order else "C")
    except DataError:  # a ValueError too: ours, already clear
        raise
    except (ValueError, OSError) + _NPY_HEADER_ERRORS as e:
        raise DataError(f"input {name}: expected a NumPy .npy file, got unreadable data "
                        f"({_one_line(f'{type(e).__name__}: {e}')})") from None


def _one_line(text: str) -> str:
    """``text`` with newlines and other unprintable characters escaped, for a one-line message."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _parse_text(text: str, name: str, count: int, variable: bool = False) -> np.ndarray | list[list[float]]:
    """Rows of ``count`` numbers as an array (N, count); with ``variable``, rows of any positive multiple of
    ``count`` numbers (F features per step, any number of steps) as a list."""
    rows = []
    first_data_line = True
    for line_number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        cells = [c.strip().strip("\"'") for c in (line.split(",") if "," in line else line.split())]
        while cells and cells[-1] == "":
            cells.pop()  # a trailing comma
        try:
            values = [float(c) for c in cells]
        except ValueError:
            if first_data_line and _is_header(cells):
                first_data_line = False  # a header row: names only, none of them a number or a mistyped one
                continue
            bad = next(c for c in cells if not _is_number(c))
            raise DataError(f"input {name} row {line_number}: expected {count} numbers, "
                            f"got non-numeric value {bad!r}") from None
        first_data_line = False
        if variable and (not values or len(values) % count):
            raise DataError(f"input {name} row {line_number}: expected a multiple of {count} numbers (the "
                            f"{count} features of each step), got {len(values)}")
        if not variable and len(values) != count:
            raise DataError(f"input {name} row {line_number}: expected {count} numbers, got {len(values)}")
        rows.append(values)
    if not rows:
        raise DataError(f"input {name}: expected at least one row of {count} numbers, got none")
    return rows if variable else np.asarray(rows, dtype=np.float64)  # (N, L*F)


_NUMBER_LIKE = re.compile(r"^[-+]?[0-9.,]*[0-9][0-9.,eE+-]*$")


def _is_header(cells: list[str]) -> bool:
    """Whether a first row is a header: no cell is a number or looks like a mistyped one (``1..5``)."""
    return not any(_is_number(c) or _NUMBER_LIKE.match(c) for c in cells)


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _read_image(path: Path, name: str, image_shape: tuple[int, int], pixel_max: float | None,
                invert: bool) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    rows, cols = (int(v) for v in image_shape)
    try:
        with warnings.catch_warnings():
            # A header declaring more than Image.MAX_IMAGE_PIXELS is refused before it is decoded.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                gray = _to_gray(image)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as e:
        raise DataError(f"input {name}: expected a readable image, got "
                        f"{_one_line(f'{type(e).__name__}: {e}')}") from None
    original_size = gray.size
    gray = gray.resize((cols, rows), Image.Resampling.BOX)  # PIL sizes are (width, height)
    pixels = np.asarray(gray, dtype=np.float32)  # (rows, cols), 0..255
    if invert:
        pixels = 255.0 - pixels
    if pixel_max is not None:
        pixels = pixels * np.float32(float(pixel_max) / 255.0)
    log.debug("input %s: %dx%d image resized to %dx%d", name, *original_size, cols, rows)
    return pixels[None]  # (1, rows, cols)


def _to_gray(image):
    """8-bit grayscale; transparency over white; 16-bit images scaled down rather than clipped."""
    from PIL import Image

    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        values = np.asarray(image, dtype=np.float64)
        scale = 255.0 / 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 1.0
        return Image.fromarray(np.clip(values * scale, 0, 255).round().astype(np.uint8))  # mode L
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("L")
    return image.convert("L")


def _finish(array: np.ndarray, name: str, L: int, F: int) -> np.ndarray:
    """Bring an array to (N, L, F) float32, accepting (L, F) and flattened forms; reject NaN/Inf."""
    shape = array.shape
    if array.ndim == 3 and shape[1:] == (L, F):
        out = array
    elif array.ndim == 2 and shape == (L, F):
        out = array[None]
    elif array.ndim == 2 and shape[1] == L * F:
        out = array.reshape(shape[0], L, F)
    elif array.ndim == 1 and shape[0] == L * F:
        out = array.reshape(1, L, F)
    else:
        raise DataError(f"input {name}: expected an array of shape (N, {L}, {F}) or ({L}, {F}) "
                        f"(or flattened (N, {L * F}) or ({L * F},)), got {shape}")
    if out.shape[0] == 0:
        raise DataError(f"input {name}: expected at least one sample, got shape {shape}")
    check_finite(out, f"input {name}")
    if out.dtype.kind == "f" and out.dtype.itemsize > 4:  # float64 can hold numbers float32 cannot
        too_large = np.abs(out) > np.finfo(np.float32).max
        if too_large.any():
            first = tuple(int(i) for i in np.argwhere(too_large)[0])
            raise DataError(f"input {name}: expected numbers within float32's range (+-3.4e38), got "
                            f"{out[first]:g} at index {first}")
    return np.ascontiguousarray(out, dtype=np.float32)
