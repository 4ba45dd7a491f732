"""The server's limits and batching settings, each a flag of ``lstmkit serve``."""

from __future__ import annotations

from dataclasses import dataclass, fields

from lstmkit.errors import ConfigError

__all__ = ["ServeOptions"]


@dataclass(frozen=True)
class ServeOptions:
    """Limits and batching of ``lstmkit serve`` (the flag of each is its name with dashes)."""

    max_batch: int = 64
    """Most sequences in one model call, and so in one ``/v1/predict`` request; also the most sessions
    whose steps go into one step call."""
    batch_wait_ms: float = 2.0
    """How long a model call may wait for requests that are still being read (never when none are)."""
    max_sequence_length: int = 1024
    """Most steps in one sequence of ``/v1/predict``, and in one ``/step`` request."""
    max_payload_bytes: int = 1 << 20
    """Largest request body; larger ones get 413."""
    session_ttl: float = 300.0
    """Seconds a session may stay idle before it expires."""
    max_sessions: int = 10_000
    """Most open sessions; one more gets 429."""
    max_queue: int = 4096
    """Most sequences (predict) or step requests waiting for the model; beyond that requests get 503."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (
                    value == 0 and f.name != "batch_wait_ms"):
                flag = "--" + f.name.replace("_", "-")
                raise ConfigError(f"serve {flag}: expected a positive number, got {value!r}")
