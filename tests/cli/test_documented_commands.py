"""Every ``rnnkit ...`` command line in the README and the docs parses: its subcommands exist, its flags are
known and its required options are there (a reader who pastes one gets a run, not a usage error)."""

import shlex
from pathlib import Path

import pytest
import typer

from rnnkit.cli import app

ROOT = Path(__file__).parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]  # the task pages too


def _command_lines() -> list[tuple[str, str]]:
    # "rnnkit <command> ...": a line such as "rnnkit LSTM/GRU over ..." is part of a diagram
    names = typer.main.get_command(app).commands
    return [
        (page.name, line)
        for page in PAGES
        for line in page.read_text(encoding="utf-8").splitlines()
        if line.startswith("rnnkit ") and line.split()[1] in names
    ]


LINES = _command_lines()


def test_the_pages_show_commands_of_every_task():
    shown = {line.split()[1] for _, line in LINES}
    assert {"lm", "forecast", "classify", "translate", "asr", "inspect", "export"} <= shown


@pytest.mark.parametrize(("page", "line"), LINES, ids=[f"{page}:{line[:48]}" for page, line in LINES])
def test_a_documented_command_parses(page, line):
    words = shlex.split(line, comments=True)[1:]  # the comment after '#' is prose
    command, path = typer.main.get_command(app), ["rnnkit"]
    # typer carries its own copy of click, so a group is told by its subcommands, not by click's classes
    while hasattr(command, "commands") and words and words[0] in command.commands:
        path.append(words[0])
        command = command.commands[words.pop(0)]
    assert not hasattr(command, "commands"), f"{page}: {line!r} names no command"
    # parsing checks the flags, their types and the required options; nothing runs
    command.make_context(" ".join(path), words)
