"""`tpdoc serve`: load a model once and answer over an OpenAI-compatible HTTP API.

In: where to listen, the model and its device, the body limit. Out: a server on
``http://HOST:PORT/v1`` until Ctrl-C or SIGTERM (requests in flight are finished first);
one line on stderr says where, and warnings (a host other machines can reach) go there
too. stdout stays empty.
"""

from __future__ import annotations

from typing import Annotated

import typer

from tpdoc.cli.app import (
    DeviceOpt,
    DtypeOpt,
    ModelOpt,
    NoCacheOpt,
    app,
    exit_codes,
    handled_errors,
    stderr_console,
)
from tpdoc.errors import TpdocError, UsageError
from tpdoc.serve import (
    DEFAULT_HOST,
    DEFAULT_MAX_BODY,
    DEFAULT_PORT,
    MAX_BATCH_CUDA,
    MAX_BATCH_OTHER,
    MAX_PENDING,
)

HostOpt = Annotated[
    str,
    typer.Option(
        "--host",
        help="Address to listen on (loopback: this machine only; a name with several "
        "addresses: the first).",
    ),
]
PortOpt = Annotated[int, typer.Option("--port", min=0, max=65535, help="Port (0: any free one).")]
MaxBodyOpt = Annotated[
    str, typer.Option("--max-body", help="Largest request body, e.g. 50M or 1G (413 above).")
]
MaxBatchOpt = Annotated[
    int | None,
    typer.Option(
        "--max-batch",
        min=1,
        help=f"Most requests answered together (default: {MAX_BATCH_CUDA} on CUDA; "
        f"{MAX_BATCH_OTHER} on CPU and MPS, as batching measured slower on CPU).",
        show_default=False,
    ),
]
MaxPendingOpt = Annotated[
    int, typer.Option("--max-pending", min=1, help="Most requests waiting (503 above).")
]


@app.command(
    epilog=exit_codes(
        ok=None,  # it runs until stopped
        failed="the model or the address could not be used",
        interrupted="stopped by Ctrl-C (SIGTERM ends it by that signal)",
    )
)
def serve(
    host: HostOpt = DEFAULT_HOST,
    port: PortOpt = DEFAULT_PORT,
    model: ModelOpt = None,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    no_cache: NoCacheOpt = False,
    max_body: MaxBodyOpt = f"{DEFAULT_MAX_BODY // 2**20}M",
    max_batch: MaxBatchOpt = None,
    max_pending: MaxPendingOpt = MAX_PENDING,
) -> None:
    """Serve a model over an OpenAI-compatible API (POST /v1/chat/completions) until Ctrl-C.

    The model stays loaded; on CUDA, requests that arrive together are answered in one
    batch. Point `tpdoc ask --server URL` (or TPDOC_SERVER) or any OpenAI client at it.
    """
    with handled_errors():
        limit = _size(max_body)
        serving = _serving_modules()
        from tpdoc.answering.qa import DocumentQA

        sock = serving.listen(host, port)
        if not serving.is_loopback(sock.getsockname()[0]):
            stderr_console().print(
                f"[yellow]warning:[/yellow] --host {host} takes connections from other "
                "machines; the server has no authentication",
                soft_wrap=True,
            )
        qa = DocumentQA(model, device=device, dtype=dtype, cache=not no_cache)
        stderr_console().print(
            f"serving {qa.name} on {serving.base_url(sock)}/v1 (OpenAI API); Ctrl-C to stop",
            soft_wrap=True,
            markup=False,
        )
        asgi = serving.create_app(qa, max_body=limit, max_batch=max_batch, max_pending=max_pending)
        serving.serve(asgi, sock)


def _size(text: str) -> int:
    from tpdoc.answering.cache import parse_size

    try:
        return parse_size(text)
    except UsageError:
        raise UsageError(f"--max-body: {text!r} is not a size like 50M or 1G") from None


def _serving_modules():
    try:
        from tpdoc.serve import app as serving
    except ImportError as exc:
        raise TpdocError(
            f"tpdoc serve needs FastAPI and uvicorn ({exc}); install them with "
            "pip install 'tpdoc[serve]'"
        ) from None
    return serving
