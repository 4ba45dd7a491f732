"""Small file-safety helpers shared by the readers and writers of run folders and model folders.

``json_depth_exceeds`` lets a reader refuse deeply nested JSON or TOML before a recursive parser meets it;
``remove_stale_temporaries`` deletes the ``.NAME.tmp-PID`` files that a killed or failed atomic write
(``lstmkit.artifacts.model_folder.write_synced_temp``) left behind.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["json_depth_exceeds", "remove_stale_temporaries"]


def json_depth_exceeds(text: str, limit: int) -> bool:
    """Whether ``text``'s brackets nest deeper than ``limit`` (brackets inside strings are skipped)."""
    depth, in_string, escaped = 0, False, False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the ``.NAME.tmp-PID`` files that killed or failed writes left in ``folder``; return them.

    A temporary whose PID is a live process other than this one is left alone (another writer's).
    """
    removed = []
    if not folder.is_dir():
        return removed
    for path in folder.glob(".*.tmp-*"):
        pid = path.name.rsplit(".tmp-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
            continue
        try:
            path.unlink()
            removed.append(path)
        except OSError:
            pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
