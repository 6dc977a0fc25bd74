"""The HTTP server: FastAPI routes over one model thread, served by uvicorn.

In: a ``DocumentQA``, the request-body and queue limits, and a socket to listen on. Out:
an ASGI app with ``GET /health``, ``GET /v1/models`` and ``POST /v1/chat/completions``
(OpenAI's format, ``"stream": true`` as server-sent events), and ``serve`` to run it
until Ctrl-C or SIGTERM; uvicorn then stops taking connections, gives the requests in
flight up to ``GRACEFUL_SHUTDOWN_SECONDS`` to finish, and the model thread finishes
the batch it is in.

A request's life: refused at once (503) if ``max_pending`` requests wait already; its
body read up to the limit (413 beyond it, from ``Content-Length`` or while counting,
never read whole); parsed (``protocol``), its document written to a private temporary
file (``documents``) and queued for the model thread (``batching``), off the event loop;
from then on only its question and options are in memory. It is answered together with
the requests waiting beside it, its document removed, and the answer, or the library's
error with the client's name for the document, sent back. A client that disconnects
before the model thread takes its request has it dropped, document and all.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future
from contextlib import asynccontextmanager, contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from tpdoc import __version__
from tpdoc.answering.results import FailedRequest, check_question
from tpdoc.answering.results import Request as AskRequest
from tpdoc.errors import ServerError, TpdocError, UsageError
from tpdoc.serve import DEFAULT_MAX_BODY, GRACEFUL_SHUTDOWN_SECONDS, MAX_PENDING
from tpdoc.serve.batching import Batcher, Busy, Unavailable, default_max_batch
from tpdoc.serve.documents import Upload, UploadFolder, decode_data_url
from tpdoc.serve.protocol import (
    CLIENT_ERROR,
    SERVER_ERROR,
    ChatAsk,
    RequestError,
    chunks,
    completion,
    completion_id,
    error_body,
    error_status,
    model_list,
    parse_chat_request,
    server_sent_events,
)
from tpdoc.serve.wire import result_to_wire

if TYPE_CHECKING:
    from tpdoc.answering.qa import DocumentQA
    from tpdoc.serve.batching import Outcome

BACKLOG = 2048  # uvicorn's default
CLIENT_GONE = 499  # the status of an answer nobody is left to read (nginx's convention)
RETRY_AFTER_SECONDS = 1  # what a busy server tells clients to wait


class TpdocServer:
    """The routes' state: the model thread, the upload folder, the limits."""

    def __init__(
        self, qa: DocumentQA, *, max_body: int, max_batch: int | None, max_pending: int
    ) -> None:
        self.qa = qa
        self.max_body = max_body
        batch = default_max_batch(qa) if max_batch is None else max_batch
        self.batcher = Batcher(qa, max_batch=batch, max_pending=max_pending)
        self.uploads: UploadFolder | None = None
        self.created = int(time.time())

    @asynccontextmanager
    async def lifespan(self, _app: FastAPI) -> AsyncIterator[None]:
        self.uploads = UploadFolder()
        self.batcher.start()
        try:
            yield
        finally:  # the requests in flight have been answered (or given up on) by now
            await run_in_threadpool(self.batcher.close)
            self.remove_uploads()

    def remove_uploads(self) -> None:
        """Remove the upload folder and whatever is left in it."""
        if self.uploads is not None:
            self.uploads.close()

    async def health(self) -> JSONResponse:
        if self.batcher.alive:
            return JSONResponse({"status": "ok", "model": self.qa.name})
        return JSONResponse(
            {"status": "error", "model": self.qa.name,
             "error": "the model thread has stopped; restart tpdoc serve"},
            status_code=503,
        )  # fmt: skip

    async def models(self) -> dict[str, Any]:
        return model_list(self.qa.name, self.created)

    async def chat_completions(self, request: Request) -> Response:
        self.batcher.check()  # a full queue refuses before reading the body
        ask, upload, future = await self._accept(request)
        outcome = await self._outcome(request, future, upload)
        if outcome is None:
            return Response(status_code=CLIENT_GONE)
        if isinstance(outcome, FailedRequest):
            cause = outcome.cause or TpdocError(outcome.error)
            status, code = error_status(cause)
            raise RequestError(status, code, upload.public(str(cause)))
        result = replace(outcome, file=upload.name)
        extra: dict[str, Any] = {"tpdoc": result.to_json()}
        if ask.result:
            extra["tpdoc_result"] = result_to_wire(result)
        ident = completion_id()
        if ask.stream:
            events = server_sent_events(chunks(ident, self.qa.name, result.answer, extra))
            return StreamingResponse(
                iter(events), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
            )
        return JSONResponse(completion(ident, self.qa.name, result.answer, extra))

    async def _accept(self, request: Request) -> tuple[ChatAsk, Upload, Future]:
        """Read, parse and queue the request; its body is let go of when this returns."""
        body = await self._read_body(request)
        return await run_in_threadpool(self._queue, body)

    async def _read_body(self, request: Request) -> bytes:
        """The body, refused (413) as soon as it is known to pass ``max_body``."""
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            raise self._too_large()
        parts, size = [], 0
        async for part in request.stream():
            size += len(part)
            if size > self.max_body:
                raise self._too_large()
            parts.append(part)
        return b"".join(parts)

    def _too_large(self) -> RequestError:
        return RequestError(
            413,
            "body_too_large",
            f"the request is larger than this server's limit of {self.max_body:,} bytes "
            "(tpdoc serve --max-body)",
        )

    def _queue(self, body: bytes) -> tuple[ChatAsk, Upload, Future]:
        """Parse the request, write its document to a temporary file and queue it (on a
        worker thread: all of it happens even if the request's task is cancelled
        meanwhile, so the model thread removes the file). What comes back holds neither
        the body nor the document."""
        ask, document = parse_chat_request(body)
        check_question(ask.question)
        data = decode_data_url(document)
        assert self.uploads is not None, "the server has not started"
        upload = self.uploads.save(data, ask.filename)
        request = AskRequest(str(upload.path), ask.question, options=ask.options)
        try:
            future = self.batcher.submit(request, upload.remove)
        except BaseException:
            upload.remove()  # never queued, so nothing else would remove it
            raise
        return ask, upload, future

    async def _outcome(self, request: Request, future: Future, upload: Upload) -> Outcome | None:
        """The request's outcome, or None if its client disconnected first; a request the
        model thread has not taken yet is then dropped, and its document removed."""
        answer = asyncio.wrap_future(future)
        gone = asyncio.ensure_future(_disconnected(request))
        try:
            await asyncio.wait((answer, gone), return_when=asyncio.FIRST_COMPLETED)
        finally:  # also when uvicorn cancels the request at the end of a shutdown
            gone.cancel()
            if not answer.done() and future.cancel():
                upload.remove()  # the model thread will skip it
        return answer.result() if answer.done() else None


async def _disconnected(request: Request) -> None:
    """Returns once the client has disconnected (after the body, what the server
    receives next is the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def create_app(
    qa: DocumentQA,
    *,
    max_body: int = DEFAULT_MAX_BODY,
    max_batch: int | None = None,
    max_pending: int = MAX_PENDING,
) -> FastAPI:
    """The ASGI app serving ``qa``; ``app.state.server`` is its ``TpdocServer``.
    ``max_batch`` None: ``default_max_batch`` (16 on CUDA, 1 elsewhere)."""
    server = TpdocServer(qa, max_body=max_body, max_batch=max_batch, max_pending=max_pending)
    app = FastAPI(
        title="tpdoc", version=__version__, lifespan=server.lifespan, docs_url=None,
        redoc_url=None,
    )  # fmt: skip
    app.state.server = server
    app.get("/health")(server.health)
    app.get("/v1/models")(server.models)
    app.post("/v1/chat/completions")(server.chat_completions)
    app.add_exception_handler(TpdocError, _refused)
    app.add_exception_handler(Unavailable, _unavailable)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _internal_error)
    return app


async def _refused(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TpdocError)
    status, code = error_status(exc)
    kind = SERVER_ERROR if status >= 500 else CLIENT_ERROR
    return JSONResponse(error_body(str(exc), kind, code), status_code=status)


async def _unavailable(_request: Request, exc: Exception) -> JSONResponse:
    """503: busy (a client may retry), shutting down, or the model thread has stopped."""
    assert isinstance(exc, Unavailable)
    retry = {"Retry-After": str(RETRY_AFTER_SECONDS)} if isinstance(exc, Busy) else None
    return JSONResponse(
        error_body(str(exc), SERVER_ERROR, exc.code), status_code=503, headers=retry
    )


async def _client_gone(_request: Request, _exc: Exception) -> Response:
    """The client left while sending its request: nobody reads this answer."""
    return Response(status_code=CLIENT_GONE)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = str(exc.detail).lower().replace(" ", "_")
    return JSONResponse(
        error_body(str(exc.detail), CLIENT_ERROR, code),
        status_code=exc.status_code,
        headers=exc.headers,
    )


async def _internal_error(_request: Request, exc: Exception) -> JSONResponse:
    """Unexpected: the client gets a JSON 500, the server's log the traceback."""
    message = f"internal error ({type(exc).__name__}); the server's log has the traceback"
    return JSONResponse(error_body(message, SERVER_ERROR, "internal_error"), status_code=500)


# -------------------------------------------------------------------------- serving


def is_loopback(address: str) -> bool:
    """Whether a socket bound to ``address`` (an IP address, as ``getsockname`` gives it)
    only takes connections from this machine."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port`` (port 0: any free one), opened before the model
    loads: a port in use fails at once, and clients that connect meanwhile wait in the
    backlog until the server runs. A name with several addresses (``localhost``: often
    ``::1`` and ``127.0.0.1``) is bound to the first that ``getaddrinfo`` gives only;
    ``base_url`` says which."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except OSError as exc:
        raise UsageError(f"--host {host}: not an address here: {exc.strerror or exc}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise ServerError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; is a server already "
            "running there? choose another --port"
        ) from None
    return sock


def base_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def server_config(app: FastAPI, log_level: str = "warning") -> uvicorn.Config:
    """uvicorn's configuration: warnings and errors on stderr, no access log, and at most
    ``GRACEFUL_SHUTDOWN_SECONDS`` of waiting for requests in flight at shutdown (then
    they are cancelled; the model thread still finishes the batch it is in)."""
    return uvicorn.Config(
        app, log_level=log_level, access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )  # fmt: skip


class _Server(uvicorn.Server):
    """uvicorn's server, calling ``on_stop`` after it has stopped but before it re-raises
    the signal that stopped it: a re-raised SIGTERM ends the process where it stands.

    A second Ctrl-C skips the app's shutdown, so the lifespan task is still waiting when
    the process ends and Starlette reports its cancellation as a failed shutdown, a
    traceback in uvicorn's log; on a forced quit that report is dropped, nothing else."""

    def __init__(self, config: uvicorn.Config, on_stop: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_stop = on_stop

    def filter(self, record: logging.LogRecord) -> bool:
        """A ``logging`` filter for uvicorn's log: all but that one report."""
        lines = record.getMessage().rstrip().splitlines()
        return not (self.force_exit and lines and lines[-1].endswith("CancelledError"))

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            try:
                yield
            finally:
                self._on_stop()


def serve(app: FastAPI, sock: socket.socket, log_level: str = "warning") -> None:
    """Serve until Ctrl-C or SIGTERM (uvicorn re-raises the signal once it has stopped).
    The upload folder goes however it stops: a second Ctrl-C skips the app's shutdown."""
    remove = app.state.server.remove_uploads
    server = _Server(server_config(app, log_level), on_stop=remove)
    log = logging.getLogger("uvicorn.error")  # the lifespan's report comes as run() ends
    log.addFilter(server)
    try:
        server.run(sockets=[sock])
    finally:
        log.removeFilter(server)
        remove()
