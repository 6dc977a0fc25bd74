"""The shared pieces of the ``tpdoc`` command line: the app, options, help and errors.

In: nothing at import time (commands import these). Out: the ``typer`` app every command
registers on, the options several commands share, the help every command gets (flags
without a type, paragraphs that are not broken mid-sentence, an epilog with the exit
codes), ``handled_errors`` (the one place where known errors become a one-line message
and an exit code), ``usage_message`` (the same for values the parser refuses) and the
stderr console.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from typing import Annotated, Any, Literal

import typer
from typer.core import TyperCommand, TyperGroup

from tpdoc import __version__
from tpdoc.errors import TpdocError, UsageError

DEBUG_ENV = "TPDOC_DEBUG"
PASSWORD_ENV = "TPDOC_PDF_PASSWORD"

EXIT_OK = 0
EXIT_FAILED = TpdocError.exit_code  # 1: a document or model could not be used
EXIT_USAGE = UsageError.exit_code  # 2: bad usage
EXIT_INTERRUPTED = 130


def exit_codes(
    ok: str | None = "success",
    failed: str = "a document or model could not be used",
    interrupted: str = "interrupted",
) -> str:
    """The help epilog of a command: its exit codes (``ok=None``: it never ends by itself)
    and where the README explains them."""
    codes = [(EXIT_OK, ok), (EXIT_FAILED, failed), (EXIT_USAGE, "bad usage")]
    codes.append((EXIT_INTERRUPTED, interrupted))
    listed = "; ".join(f"{code} {meaning}" for code, meaning in codes if meaning is not None)
    return f'Exit codes: {listed}. See "Exit codes" in the README.'


def _reflow(text: str | None) -> str | None:
    """Docstring paragraphs as single lines, so help wraps them at the terminal's width
    instead of keeping the source's line breaks (rich help keeps them after the first
    paragraph, which broke sentences in the middle)."""
    if not text:
        return text
    import inspect

    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(p if p.startswith("\b") else " ".join(p.split()) for p in paragraphs)


def _tidy_type(param: Any, ctx: typer.Context) -> None:
    """The type column of the help: nothing for a flag (not ``<bool>``), the element type
    for a repeatable option (``<str>``, not ``<list[str]>``), ``<int>`` for a ranged int
    (the range follows it)."""
    if getattr(param, "param_type_name", "") != "option" or param.metavar is not None:
        return
    if param.is_flag:
        param.metavar = ""
        return
    shown = param.display_type(ctx)
    if param.multiple:
        shown = re.sub(r"^<list\[(.*)\]>$", r"<\1>", shown)
    param.metavar = re.sub(r" range>$", ">", shown)


class _TidyHelp:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.help = _reflow(self.help)
        self.epilog = _reflow(self.epilog)

    def format_help(self, ctx: typer.Context, formatter: Any) -> None:
        for param in self.get_params(ctx):
            _tidy_type(param, ctx)
        super().format_help(ctx, formatter)


class TpdocCommand(_TidyHelp, TyperCommand):
    """A command whose help is tidied and ends with its exit codes (``exit_codes()``
    unless the command gives its own epilog)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.epilog:
            self.epilog = exit_codes()


class TpdocGroup(_TidyHelp, TyperGroup):
    """A command group (``tpdoc``, ``tpdoc cache``) with tidied help."""


class TpdocTyper(typer.Typer):
    """``typer.Typer`` whose commands are ``TpdocCommand`` and groups ``TpdocGroup``."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("cls", TpdocGroup)
        kwargs.setdefault("rich_markup_mode", "rich")
        kwargs.setdefault("context_settings", {"help_option_names": ["-h", "--help"]})
        super().__init__(**kwargs)

    def command(self, name: str | None = None, *, cls: Any = None, **kwargs: Any) -> Any:
        return super().command(name, cls=cls or TpdocCommand, **kwargs)


app = TpdocTyper(
    name="tpdoc",
    help="OCR-free question answering over high-resolution documents (TokenPacker).",
    epilog=exit_codes(),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def stderr_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def print_error(message: str) -> None:
    """One red ``error:`` line on stderr; the message is literal text, never markup
    (file names may hold brackets)."""
    from rich.markup import escape

    stderr_console().print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)


@contextmanager
def handled_errors() -> Iterator[None]:
    """Known errors become one red line on stderr and their exit code."""
    try:
        yield
    except TpdocError as exc:
        if os.environ.get(DEBUG_ENV):
            raise
        print_error(str(exc))
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        stderr_console().print("[red]interrupted[/red]")
        raise typer.Exit(EXIT_INTERRUPTED) from None


def usage_message(exc: Any) -> str:
    """A usage error found while parsing, as one line: ``--dtype: '7' is not one of auto,
    float32, bfloat16, float16`` rather than the parser's "Invalid value for '--dtype':
    Value error, ..."; others (a missing argument, an unknown option) with a pointer to
    the command's ``--help``."""
    param = getattr(exc, "param", None)
    if isinstance(exc, typer.BadParameter) and param is not None and exc.message:
        name = next((o for o in param.opts if o.startswith("--")), None) or param.opts[0]
        if param.param_type_name == "argument":
            name = name.upper()
        return f"{name}: {_value_problem(exc)}"
    message = exc.format_message().rstrip(".")
    ctx = getattr(exc, "ctx", None)
    return f"{message}; see {ctx.command_path} --help" if ctx is not None else message


def _value_problem(exc: typer.BadParameter) -> str:
    """The parser's complaint about a value, with the value in it and without pydantic's
    wording ("Value error, ", "Input should ...", quoted choices)."""
    message = exc.message.removeprefix("Value error, ").rstrip(".")
    errors = getattr(exc.__cause__, "errors", None)
    if callable(errors) and errors() and "input" in errors()[0]:
        value = errors()[0]["input"]
        message = re.sub(r"^Input should", f"{str(value)!r} should", message)
        message = message.split(", unable to ")[0]  # "a valid integer, unable to parse..."
    choices = re.fullmatch(r"(.*) is not one of (.*)", message)
    if choices:
        message = f"{choices[1]} is not one of {choices[2].replace(chr(39), '')}"
    return message


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tpdoc {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """OCR-free question answering over high-resolution documents (TokenPacker)."""


ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="Embedded model name, model folder or hub id (default: the embedded model).",
    ),
]
PagesOpt = Annotated[
    str | None, typer.Option("--pages", "-p", help="Pages, e.g. '1,3-5' (default: all).")
]
DpiOpt = Annotated[
    float | None,
    typer.Option(
        "--dpi", min=1.0, help="Render PDFs at this DPI (default: at the size the tiler uses)."
    ),
]


class MaxTiles(str, Enum):
    nine = "9"
    sixteen = "16"
    twenty_five = "25"


class Scale(str, Enum):
    two = "2"
    three = "3"
    four = "4"


MaxTilesOpt = Annotated[
    MaxTiles | None,
    typer.Option("--max-tiles", help="Tile cap: 9, 16 or 25 (default: the model's)."),
]
ScaleOpt = Annotated[
    Scale | None,
    typer.Option(
        "--scale", help="TokenPacker scale: 2, 3 or 4 (144, 64, 36 tokens per 336px tile)."
    ),
]
PasswordOpt = Annotated[
    str | None,
    typer.Option("--password", envvar=PASSWORD_ENV, help="Password of an encrypted PDF."),
]
# The values tpdoc.weights.loading accepts (DEVICES, DTYPES; that module imports torch,
# so they are repeated here, and a test keeps the two the same).
DEVICES = ("auto", "cpu", "cuda", "mps")  # and cuda:N
Dtype = Literal["auto", "float32", "bfloat16", "float16"]


def _check_device(value: str) -> str:
    if value in DEVICES or re.fullmatch(r"cuda:\d+", value):
        return value
    raise typer.BadParameter(f"{value!r} is not one of {', '.join(DEVICES)}, cuda:N")


DeviceOpt = Annotated[
    str,
    typer.Option(
        "--device",
        metavar="<auto|cpu|cuda[:N]|mps>",
        callback=_check_device,
        help="Where the model runs (auto: a GPU if there is one).",
    ),
]
DtypeOpt = Annotated[
    Dtype,
    typer.Option(
        "--dtype",
        help="Precision (auto: bf16 on a GPU; fp32 on CPU, bf16 matmuls where it has them).",
    ),
]
BudgetOpt = Annotated[
    int | None,
    typer.Option(
        "--budget", min=1, help="At most this many visual tokens per page (tile cap chosen to fit)."
    ),
]
MaxNewTokensOpt = Annotated[
    int, typer.Option("--max-new-tokens", min=1, help="Longest answer, in tokens.")
]
NoCacheOpt = Annotated[
    bool, typer.Option("--no-cache", help="Neither read nor write the visual-token cache.")
]
ShortlistOpt = Annotated[
    int,
    typer.Option(
        "--shortlist",
        min=0,
        help="Documents with more pages than this are ranked by a one-tile overview of each "
        "page and only the best this many are read in full (0: read every page).",
    ),
]
ProgressOpt = Annotated[
    bool,
    typer.Option("--progress", help="Progress on stderr even when it is not a terminal."),
]


def tile_options(max_tiles: MaxTiles | None, scale: Scale | None) -> dict[str, int | None]:
    """``--max-tiles`` and ``--scale`` as numbers (``None``: the model's own), as
    ``AskOptions`` and ``Geometry.with_options`` take them."""
    return {
        "max_tiles": int(max_tiles.value) if max_tiles else None,
        "scale": int(scale.value) if scale else None,
    }
