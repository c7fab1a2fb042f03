"""The commands the README and docs/ show are true: each `ticker ...` parses.

Every shell line in a code block of README.md and docs/*.md that runs `ticker` (by
path or bare, after any VAR=value and in any pipeline), and a systemd unit's
ExecStart=, is parsed by the real argument parser as the shell would split it; so are
`ticker ...` spans in the prose that carry a flag (those may leave out a required
argument: they name a flag, not a whole command). `python -m MODULE` names a module
that exists; TOML examples load as settings. And ticker.example.toml is every setting
at its default.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ticker.auth.publishers import load_publishers
from ticker.cli import build_parser, example_config, parse_command_line
from ticker.config import Config
from ticker.errors import ConfigError
from ticker.settings import load_config

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^ *```(\w*)\n(.*?)^ *```", re.DOTALL | re.MULTILINE)
INLINE = re.compile(r"`([^`\n]+)`")
OPERATORS = {"|", "||", "&&", ";", "&"}


@dataclass(frozen=True)
class Command:
    where: str
    argv: list[str]
    complete: bool
    """From a code block: must parse as it stands."""


def _segments(line: str) -> Iterator[list[str]]:
    lexer = shlex.shlex(line, posix=True, punctuation_chars="|&;")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    words: list[str] = []
    for token in lexer:
        if token in OPERATORS:
            yield words
            words = []
        else:
            words.append(token)
    yield words


def _without_redirections(words: list[str]) -> list[str]:
    """The words a program receives: `> file`, `>> file`, `< file`, `2>&1` are the shell's."""
    kept: list[str] = []
    skip = False
    for word in words:
        if skip:
            skip = False
        elif word in (">", ">>", "<", "2>"):
            skip = True
        elif not re.fullmatch(r"\d?>>?&?\d*|<", word):
            kept.append(word)
    return kept


def _commands(text: str, where: str, *, complete: bool) -> Iterator[Command]:
    try:
        segments = list(_segments(text))
    except ValueError:  # unbalanced quotes: prose, not a command
        return
    for words in segments:
        while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):
            words = words[1:]
        words = _without_redirections(words)
        if words and Path(words[0]).name in ("ticker", "python", "python3"):
            yield Command(where, words, complete)


def doc_commands() -> list[Command]:
    found: list[Command] = []
    for doc in DOCS:
        text = doc.read_text()
        name = doc.relative_to(ROOT)
        for fence in FENCE.finditer(text):
            kind = fence.group(1)
            if kind not in ("", "sh", "bash", "shell", "console", "ini"):
                continue
            start = text.count("\n", 0, fence.start()) + 2
            for i, line in enumerate(fence.group(2).splitlines()):
                if kind == "ini":  # a systemd unit: its ExecStart= runs a command
                    if not line.startswith("ExecStart="):
                        continue
                    line = line.removeprefix("ExecStart=")
                found += _commands(line, f"{name}:{start + i}", complete=True)
        prose = FENCE.sub("", text)
        for span in INLINE.finditer(prose):
            if " --" in span.group(1):
                found += _commands(span.group(1), f"{name}: `{span.group(1)}`", complete=False)
    return found


COMMANDS = doc_commands()


def test_the_docs_show_commands() -> None:
    # The extraction itself works: the README's own examples are among them.
    wheres = [c.where for c in COMMANDS]
    assert sum(w.startswith("README.md") for w in wheres) >= 8
    assert sum(w.startswith("docs/CAPTURE.md") for w in wheres) >= 5
    assert any(c.argv[:3] == [".venv/bin/ticker", "feeds", "--venues"] for c in COMMANDS)
    assert any(c.argv[0] == "/opt/ticker/.venv/bin/ticker" for c in COMMANDS)  # the unit


@pytest.mark.parametrize("command", COMMANDS, ids=[c.where for c in COMMANDS])
def test_every_documented_command_parses(
    command: Command, capsys: pytest.CaptureFixture[str]
) -> None:
    program, *args = command.argv
    if Path(program).name != "ticker":
        if args[:1] == ["-m"]:
            assert importlib.util.find_spec(args[1]), f"{command.where}: no module {args[1]}"
        else:
            assert (ROOT / args[0]).is_file(), f"{command.where}: no script {args[0]}"
        return
    try:
        parse_command_line(build_parser(), args)
    except SystemExit as exited:
        err = capsys.readouterr().err
        if exited.code == 0:  # --help, --version
            return
        # A span in prose names a flag ("`ticker replay --target`"), not a whole command.
        incomplete = ("the following arguments are required", "expected one argument")
        if not command.complete and any(reason in err for reason in incomplete):
            return
        pytest.fail(f"{command.where}: `{' '.join(command.argv)}` does not parse:\n{err}")


def test_a_wrong_flag_in_the_docs_would_be_caught(capsys: pytest.CaptureFixture[str]) -> None:
    # What README.md showed before: `--rate` is not a flag of `ticker feeds`.
    [command] = _commands(
        ".venv/bin/ticker feeds --venues cbx,itx --rate 50 --duration 10", "x", complete=True
    )
    with pytest.raises(SystemExit) as exited:
        parse_command_line(build_parser(), command.argv[1:])
    assert exited.value.code == 2
    assert "unrecognized arguments: --rate 50" in capsys.readouterr().err


def test_toml_examples_in_the_docs_load() -> None:
    blocks = [(doc, m.group(2)) for doc in DOCS for m in FENCE.finditer(doc.read_text())
              if m.group(1) == "toml"]  # fmt: skip
    assert blocks
    for doc, block in blocks:
        path = ROOT / ".pytest-docs.toml"
        try:
            path.write_text(textwrap.dedent(block))
            if block.startswith("# publish_tokens_file"):  # the publishers' own file
                assert load_publishers("", str(path)), f"{doc.name}: no publisher loaded"
                continue
            load_config({}, environ={}, config_file=str(path))
        except ConfigError as exc:
            pytest.fail(f"{doc.name}: a TOML example does not load: {exc}")
        finally:
            path.unlink(missing_ok=True)


def test_the_shipped_example_config_is_every_setting_at_its_default() -> None:
    example = ROOT / "ticker.example.toml"
    assert load_config({}, environ={}, config_file=str(example)) == Config()
    # Complete and current; after adding a setting, regenerate it with
    #   .venv/bin/python -c "from ticker.cli import example_config as e; print(e(), end='')" \
    #     > ticker.example.toml
    assert example.read_text() == example_config()
    for name in Config.names():
        assert re.search(rf"(?m)^{name} = ", example.read_text()), name
