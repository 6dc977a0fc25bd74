"""The ``tpdoc`` command line: parse, call the library, render.

In: command-line arguments. Out: results on stdout (tables, or JSON with ``--json``),
diagnostics on stderr, and an exit code: 0 success, 1 a document or model could not be
used, 2 bad usage (options, page specs), 130 interrupted. Each command lives in its own
module and registers itself on the shared ``app``; heavy libraries (torch, transformers,
pymupdf) are imported inside commands so ``--help`` stays fast.
"""

from __future__ import annotations

import typer

from tpdoc.cli import ask as _ask  # noqa: F401  (registers the command)
from tpdoc.cli import batch as _batch  # noqa: F401  (registers the command)
from tpdoc.cli import cache as _cache  # noqa: F401  (registers cache info, cache clear)
from tpdoc.cli import chat as _chat  # noqa: F401  (registers the command)
from tpdoc.cli import eval as _eval  # noqa: F401  (registers the command)
from tpdoc.cli import inspect as _inspect  # noqa: F401  (registers the command)
from tpdoc.cli import models as _models  # noqa: F401  (registers models, pull)
from tpdoc.cli import serve as _serve  # noqa: F401  (registers the command)
from tpdoc.cli import train as _train  # noqa: F401  (registers the command)
from tpdoc.cli.app import EXIT_INTERRUPTED, app, print_error, usage_message

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> int:
    """Console entry point: one-line usage errors instead of boxed help."""
    try:
        result = app(args=argv, prog_name="tpdoc", standalone_mode=False)
    except typer.Abort:
        return EXIT_INTERRUPTED
    except typer.TyperException as exc:  # usage errors raised while parsing
        if type(exc).__name__ == "NoArgsIsHelpError":
            typer.echo(exc.format_message(), err=True)
        else:
            print_error(usage_message(exc))
        return getattr(exc, "exit_code", 2)
    return result if isinstance(result, int) else 0
