"""The argument parser of ``lstmkit``: the global options, then each command's own (``register``)."""

from __future__ import annotations

import argparse

from lstmkit import __version__
from lstmkit.cli import (evaluate, export, forecast, generate, inspect, longlag, predict, report, serve, train,
                         translate, tune)

# In the order ``lstmkit --help`` lists them.
COMMANDS = (train, translate, tune, longlag, evaluate, predict, generate, forecast, export, report, inspect, serve)


def build_parser() -> argparse.ArgumentParser:
    """The ``lstmkit`` parser; each command's ``run`` is its ``func`` default."""
    parser = argparse.ArgumentParser(prog="lstmkit", description="Train, evaluate and deploy LSTM models.")
    parser.add_argument("--version", action="version", version=f"lstmkit {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(subparsers)
    return parser
