"""Parse `auditor ...` command lines with the click parser without running them (README examples, CI jobs)."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import click

from auditor.cli import cli

_START = re.compile(r"^(?:- )?(?:\S*/)?auditor\s")


def parse_command_line(args: list[str]) -> click.Context:
    """The context of the command ``auditor ARGS`` names (``probe synth`` included), its options parsed and
    converted; a bad option raises `click.UsageError` as the CLI would. Nothing runs."""
    ctx = cli.make_context("auditor", list(args))
    command: click.Command = cli
    while isinstance(command, click.Group):
        held = ctx._protected_args if hasattr(ctx, "_protected_args") else ctx.protected_args  # click 8.2+ / 8.1
        rest = [*held, *ctx.args]
        name, command, rest = command.resolve_command(ctx, rest)
        ctx = command.make_context(name, rest, parent=ctx)
    return ctx


def option_names(words: list[str]) -> set[str]:
    """Every option spelling (``--out``, ``-q``) of the command the leading non-option ``words`` name."""
    command: click.Command = cli
    for word in words:
        if not isinstance(command, click.Group) or word not in command.commands:
            break
        command = command.commands[word]
    return {o for p in command.params if isinstance(p, click.Option) for o in (*p.opts, *p.secondary_opts)}


def readme_commands(readme: Path) -> list[str]:
    """Each `auditor ...` command in the README's code blocks, as one line: continuation lines (a trailing
    backslash, or a synopsis line starting with ``[``) joined, comments and anything after ``&&`` dropped."""
    commands: list[str] = []
    for block in re.findall(r"```[^\n]*\n(.*?)```", readme.read_text(encoding="utf-8"), re.DOTALL):
        current: list[str] | None = None
        for line in block.replace("\\\n", " ").splitlines():
            text = line.split("  #", 1)[0].strip()
            text = text.split("&& ", 1)[1] if "&& " in text and "auditor" in text.split("&& ", 1)[1] else text
            if _START.match(text):
                current = [text]
                commands.append("")
            elif current is not None and text.startswith("["):
                current.append(text)
            else:
                current = None
                continue
            commands[-1] = " ".join(current)
    return [c.split(" ", 1)[1] if c.startswith("- ") else c for c in commands]


def is_synopsis(command: str) -> bool:
    """A usage synopsis (``[--out DIR]``, ``{a,b}``, ``a|b``) rather than a command to run."""
    return any(ch in command for ch in "[{|")


def command_words(command: str) -> list[str]:
    """The arguments after the program name."""
    return shlex.split(command)[1:]
