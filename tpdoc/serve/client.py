"""`tpdoc ask --server URL`: one question sent to a running ``tpdoc serve``.

In: the server's URL (``--server`` or ``TPDOC_SERVER``), a document path, a question and
``tpdoc ask``'s options as plain values. Out: the server's response, from which the
command prints what a local ``ask`` prints: ``record_of`` is the ``ask --json`` record,
``result_of`` the whole ``AnswerResult`` (for the terminal panel and report).

Standard library only, and nothing heavy: a warm answer must not pay for importing torch
(only ``result_of``, for a person at a terminal, imports the result types and with them
torch). The server checks the question and the options, so their errors read as local
ones; this side checks only that the file can be read, with the library's own checks.
Connections go straight to the server, never through an HTTP proxy, and wait for an
answer at most ``TPDOC_SERVER_TIMEOUT`` seconds (default 600).
"""

from __future__ import annotations

import base64
import json
import math
import mimetypes
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tpdoc.errors import DocumentError, ServerError, UsageError
from tpdoc.serve import SERVER_ENV

if TYPE_CHECKING:
    from tpdoc.answering.results import AnswerResult

CHAT_PATH = "/v1/chat/completions"
USAGE_STATUS = 400  # the server's status for what the command line calls bad usage
TIMEOUT_ENV = "TPDOC_SERVER_TIMEOUT"
# Seconds to wait for an answer: a long PDF asked page by page on a CPU takes minutes.
DEFAULT_TIMEOUT = 600.0


def ask_server(
    url: str,
    path: Path,
    question: str,
    options: dict[str, Any],
    *,
    result: bool = False,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Ask ``question`` about ``path`` at the server ``url``; its JSON response.

    ``options``: ``AskOptions`` fields (``None`` values are left out); ``result`` asks for
    the whole ``AnswerResult`` too (``tpdoc_result``); ``timeout``: seconds to wait for
    the answer (None: ``server_timeout()``).
    """
    base = server_base(url)
    return post_chat(base, chat_request(path, question, options, result=result), timeout)


def chat_request(
    path: Path, question: str, options: dict[str, Any], *, result: bool = False
) -> dict[str, Any]:
    """The chat-completions body asking ``question`` about ``path``: the document as a
    base64 data URL in a ``file`` part, ``options`` in the ``tpdoc`` object."""
    data = read_document(path)
    media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    document = {
        "filename": str(path),
        "file_data": f"data:{media};base64," + base64.b64encode(data).decode("ascii"),
    }
    tpdoc = {k: v for k, v in options.items() if v is not None}
    content = [{"type": "text", "text": question}, {"type": "file", "file": document}]
    return {
        "model": "tpdoc",
        "messages": [{"role": "user", "content": content}],
        "tpdoc": {**tpdoc, "result": result} if result else tpdoc,
    }


def server_base(url: str) -> str:
    """``http://host:port`` from what the user gave (with or without ``/v1``)."""
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"--server: {url!r} is not an http:// URL like http://127.0.0.1:8765")
    path = parts.path.rstrip("/").removesuffix("/v1")
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def server_timeout() -> float:
    """Seconds to wait for a server's answer: ``TPDOC_SERVER_TIMEOUT``, else 600."""
    text = os.environ.get(TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (seconds > 0 and math.isfinite(seconds)):
        raise UsageError(f"{TIMEOUT_ENV}: {text!r} is not a number of seconds above 0")
    return seconds


def read_document(path: Path) -> bytes:
    """The file's bytes; a missing, unreadable or empty file fails as it does locally."""
    from tpdoc.documents.pages import (
        check_readable,  # tpdoc.documents.pages' checks and messages, no PDF library
    )

    check_readable(path)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DocumentError(path, f"cannot read: {exc.strerror or exc}") from None


def record_of(response: dict[str, Any]) -> dict[str, Any]:
    """The ``ask --json`` record of a server's response."""
    return _field(response, "tpdoc")


def result_of(response: dict[str, Any]) -> AnswerResult:
    """The whole ``AnswerResult`` of a response asked with ``result=True``."""
    from tpdoc.serve.wire import result_from_wire

    try:
        return result_from_wire(_field(response, "tpdoc_result"))
    except ValueError as exc:
        raise ServerError(f"the server's answer cannot be read ({exc}); is it the same tpdoc "
                          "version?") from None  # fmt: skip


def _field(response: dict[str, Any], name: str) -> Any:
    if not isinstance(response, dict) or not isinstance(response.get(name), dict):
        raise ServerError(f"the server's answer has no {name!r} field: is it a tpdoc server?")
    return response[name]


def post_chat(base: str, body: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
    """POST ``body`` to the server at ``base`` (``http://host:port``); its JSON response.
    ``ServerError`` with the server's own message if it refuses, or if it cannot be
    reached or does not answer within ``timeout`` seconds (None: ``server_timeout()``)."""
    seconds = server_timeout() if timeout is None else timeout
    request = urllib.request.Request(
        base + CHAT_PATH,
        data=json.dumps(body).encode("utf-8"),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        method="POST",
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    late = ServerError(
        f"the tpdoc server at {base} did not answer within {seconds:g} s; set {TIMEOUT_ENV} "
        "to wait longer"
    )
    try:
        with opener.open(request, timeout=seconds) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        raise _refusal(exc) from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):  # while sending
            raise late from None
        reason = getattr(exc.reason, "strerror", None) or exc.reason
        raise ServerError(
            f"cannot reach the tpdoc server at {base}: {reason}; start one with `tpdoc serve`, "
            f"or unset {SERVER_ENV} to answer here"
        ) from None
    except TimeoutError:  # while waiting for the answer
        raise late from None
    except (OSError, json.JSONDecodeError) as exc:  # a connection cut while sending, ...
        raise ServerError(f"the tpdoc server at {base} did not answer: {exc}") from None


def _refusal(exc: urllib.error.HTTPError) -> ServerError:
    """The server's error message, with the exit code the command line gives it."""
    try:
        message = json.load(exc)["error"]["message"]
    except (OSError, ValueError, KeyError, TypeError):
        message = f"the server answered HTTP {exc.code} {exc.reason}"
    return ServerError(message, 2 if exc.code == USAGE_STATUS else 1)
