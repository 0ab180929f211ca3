"""Command line (click): parse, call the API, map errors to exit codes. Progress on stderr, summary on stdout.

Modules that load torch are imported inside the commands that use them, so ``auditor --help``, ``auditor checks``
and ``auditor probe check`` start fast. `main` is the entry point (console script, ``python -m auditor``, tests);
`cli` is the click group (for ``click.testing.CliRunner``).
"""
from __future__ import annotations

from auditor.cli._main import cli, main

__all__ = ["main", "cli"]
