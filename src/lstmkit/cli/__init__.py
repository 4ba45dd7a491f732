"""The ``lstmkit`` command: parses arguments and calls library functions, nothing more.

One module per command, each with ``register(subparsers)`` (its arguments) and ``run(args) -> int`` (its
work). ``run`` checks the arguments before it imports PyTorch and the other heavy libraries, so a user
error answers at once. User errors (``LstmkitError``) print one line, ``lstmkit: error: ...``, and exit
with status 2.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import sys
from pathlib import Path
from typing import Sequence

from lstmkit.cli.parser import build_parser
from lstmkit.errors import LstmkitError

__all__ = ["main", "build_parser"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lstmkit`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        if isinstance(getattr(args, "model", None), Path):  # a run folder stands for its model/
            from lstmkit.runs.folder import resolve_model_folder

            args.model = resolve_model_folder(args.model)
        return args.func(args)
    except LstmkitError as exc:
        print(f"lstmkit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lstmkit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Whatever read the output has stopped (`lstmkit predict ... | head`): end quietly, as cat and grep do.
        # Standard output points at /dev/null from here, so the interpreter's last flush cannot fail again.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, io.UnsupportedOperation):
            pass
        return 141  # 128 + SIGPIPE, what a shell reports for a command ended by a closed pipe
    except OSError as exc:
        if exc.errno not in _STORAGE_ERRORS:
            raise
        # A full disk, a quota or a read-only file system: what to free or fix, not a traceback.
        where = f" {exc.filename}" if exc.filename else ""
        print(f"lstmkit: error: cannot write{where} ({exc.strerror or exc})", file=sys.stderr)
        return 2


_STORAGE_ERRORS = {errno.ENOSPC, errno.EROFS, getattr(errno, "EDQUOT", errno.ENOSPC)}
