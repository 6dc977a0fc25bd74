"""The command line's help and usage errors, and the README kept true to the command line:
every `tpdoc ...` example parses against the real commands, and the exit codes the README
lists are the ones the code uses."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import get_args

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from tpdoc.cli import app, main
from tpdoc.cli.app import EXIT_INTERRUPTED, Dtype, exit_codes

README = Path(__file__).parent.parent / "README.md"
ROOT = get_command(app)
SHELL_BLOCKS = {"", "bash", "console", "sh", "shell"}
NO_HELP = {"train"}  # forwards everything, --help included, to `python -m tpdoc.train`


def commands(group: typer.core.TyperCommand = ROOT, path: tuple[str, ...] = ()):
    """Every (path, command) under ``group``, groups included."""
    for name, command in sorted(getattr(group, "commands", {}).items()):
        yield (*path, name), command
        yield from commands(command, (*path, name))


def help_text(*args: str) -> str:
    result = CliRunner().invoke(app, [*args, "--help"])
    assert result.exit_code == 0, result.output
    return result.stdout


def flat(text: str) -> str:
    """Help text with rich's frame and wrapping taken out."""
    return " ".join(text.replace("│", " ").split())


# ------------------------------------------------------------------------------ help


def test_flags_show_no_type_and_repeatable_options_their_element():
    for path, _ in commands():
        if path[0] in NO_HELP:
            continue
        text = help_text(*path)
        assert "<bool>" not in text, path
        assert " range>" not in text, path  # <int> [x>=1], not <int range> [x>=1]
    options = {line.split()[1]: line for line in help_text("batch").splitlines() if "--" in line}
    assert "<str>" in options["--question"] and "list[" not in options["--question"]
    assert options["--resume"].split()[1:3] == ["--resume", "Skip"]  # no type column


def test_help_paragraphs_are_not_broken_mid_sentence(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    text = help_text("ask")
    line = next(line for line in text.splitlines() if "Every selected page" in line)
    assert "(mean log-probability of its tokens) wins." in line


@pytest.mark.parametrize("path", [p for p, _ in commands() if p[0] not in NO_HELP])
def test_every_command_help_ends_with_its_exit_codes(path):
    text = flat(help_text(*path))
    assert "Exit codes: " in text and 'See "Exit codes" in the README.' in text
    assert text.index("Exit codes: ") > text.index("--help")  # after the options


def test_root_help_lists_the_exit_codes_too():
    assert flat(exit_codes()) in flat(help_text())


USAGE_ERRORS = {
    "choice": (["ask", "x.pdf", "Q?", "--dtype", "7"],
               "--dtype: '7' is not one of auto, float32, bfloat16, float16"),
    "enum": (["inspect", "x.pdf", "--max-tiles", "7"], "--max-tiles: '7' is not one of 9, 16, 25"),
    "device": (["ask", "x.pdf", "Q?", "--device", "tpu"],
               "--device: 'tpu' is not one of auto, cpu, cuda, mps, cuda:N"),
    "minimum": (["inspect", "x.pdf", "--dpi", "0"],
                "--dpi: '0' should be greater than or equal to 1"),
    "number": (["batch", "x.pdf", "-q", "Q?", "--batch-size", "x"],
               "--batch-size: 'x' should be a valid integer"),
    "unknown option": (["inspect", "x.pdf", "--bogus"],
                       "No such option: --bogus; see tpdoc inspect --help"),
    "missing argument": (["ask", "x.pdf"], "Missing argument 'question'; see tpdoc ask --help"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(USAGE_ERRORS))
def test_values_the_parser_refuses_are_one_plain_line(capsys, case):
    args, message = USAGE_ERRORS[case]
    code = main(args)
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert captured.err == f"error: {message}\n"


def test_device_and_dtype_choices_are_the_loaders():
    from tpdoc.cli.app import DEVICES
    from tpdoc.weights.loading import DEVICES as LOADER_DEVICES
    from tpdoc.weights.loading import DTYPES

    assert DEVICES == LOADER_DEVICES and get_args(Dtype) == DTYPES


# ---------------------------------------------------------------------- README examples


def readme_code_blocks() -> list[tuple[str, list[str]]]:
    """(info string, lines) of every fenced block of the README."""
    blocks, current, info = [], None, ""
    for line in README.read_text().splitlines():
        if line.startswith("```"):
            if current is None:
                current, info = [], line[3:].strip()
            else:
                blocks.append((info, current))
                current = None
        elif current is not None:
            current.append(line)
    return blocks


def shell_commands(line: str) -> list[list[str]]:
    """The ``tpdoc`` command lines in a line of shell: at its start, after ``|``, ``;``,
    ``&&`` or inside ``$(...)``; comments dropped."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    found, current = [], []
    for token in [*lexer, ";"]:
        if token and set(token) <= set("();<>|&$"):
            if current[:1] == ["tpdoc"]:
                found.append(current[1:])
            current = []
        else:
            current.append(token)
    return found


def joined(lines: list[str]) -> list[str]:
    """Shell lines with their backslash continuations joined."""
    out: list[str] = []
    carry = ""
    for line in lines:
        if line.rstrip().endswith("\\"):
            carry += line.rstrip()[:-1] + " "
        else:
            out.append(carry + line)
            carry = ""
    return out + ([carry] if carry else [])


def readme_examples() -> list[tuple[str, list[str]]]:
    examples = []
    for info, lines in readme_code_blocks():
        if info not in SHELL_BLOCKS:
            continue
        for line in joined(lines):
            if re.search(r"(^\s*|[|;&]\s*|\$\()tpdoc\s", line):
                examples += [(line.strip(), args) for args in shell_commands(line)]
    return examples


def resolve(args: list[str]) -> tuple[typer.core.TyperCommand, list[str], list[str]]:
    """The command ``args`` name (subcommands followed), its path and the rest."""
    command, path = ROOT, []
    while getattr(command, "commands", None) and args and not args[0].startswith("-"):
        name, *args = args
        assert name in command.commands, f"no command {' '.join(['tpdoc', *path, name])}"
        command, path = command.commands[name], [*path, name]
    return command, path, args


def test_readme_has_examples_to_check():
    examples = {" ".join(resolve(args)[1]) for _, args in readme_examples()}
    assert {"ask", "batch", "chat", "eval", "inspect", "models", "pull", "serve"} <= examples


@pytest.mark.parametrize(("line", "args"), readme_examples(), ids=lambda v: str(v)[:60])
def test_readme_example_parses_against_the_real_command(line, args):
    """Each example is parsed as the command would parse it (options, values, arguments),
    without running it: a renamed option or command fails here."""
    command, path, rest = resolve(args)
    try:
        command.make_context(" ".join(["tpdoc", *path]), rest)
    except typer.TyperException as exc:  # the parser's UsageError
        pytest.fail(f"README example `{line}`: {exc.format_message()}")


def test_readme_chat_example_uses_chat_commands():
    from tpdoc.cli.chat import COMMANDS

    (block,) = [lines for _, lines in readme_code_blocks() if lines[0].startswith("tpdoc chat")]
    used = {line[2:].split()[0] for line in block if line.startswith("? /")}
    assert used and used <= set(COMMANDS)


def test_readme_inline_commands_and_their_options_exist():
    """`tpdoc CMD --option` spans in the prose: the command and every option it names."""
    text = re.sub(r"```.*?```", "", README.read_text(), flags=re.S)
    spans = re.findall(r"`(tpdoc [^`]+)`", text)
    assert len(spans) > 10
    for span in spans:
        command, _, rest = resolve(shlex.split(span)[1:])
        if command.name in NO_HELP:
            continue
        names = {n for p in command.get_params(typer.Context(command)) for n in p.opts}
        for word in rest:
            if word.startswith("-") and word != "-":
                assert word.split("=")[0] in names, f"`{span}`: {command.name} has no {word}"


def test_readme_exit_codes_are_the_codes_the_code_uses():
    from tpdoc.errors import TpdocError

    def table(after: str) -> dict[int, str]:
        section = README.read_text().split(after, 1)[1]
        rows = re.findall(r"^\| (\d+) \| (.+?) \|$", section.lstrip().split("\n\n")[0], re.M)
        return {int(code): meaning for code, meaning in rows}

    codes = set(table("## Exit codes\n"))
    errors, todo = set(), [TpdocError]
    while todo:
        kind = todo.pop()
        errors.add(kind.exit_code)
        todo += kind.__subclasses__()
    assert codes == {0, *errors, EXIT_INTERRUPTED}
    for path, command in commands():
        if path[0] in NO_HELP or not command.epilog:
            continue
        listed = {int(c) for c in re.findall(r"(?:: |; )(\d+) ", command.epilog)}
        assert listed <= codes and listed >= codes - {0}, (path, command.epilog)
    assert set(table("Exit codes of `tpdoc batch`:\n")) == codes
