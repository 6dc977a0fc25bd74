"""What the `tpdoc serve` tests share: servers on a free loopback port, the documents they
are asked about, and clients in a few lines of urllib.

Nothing here is a test; the fixtures built on it are in tests/serving_fixtures.py.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from tpdoc.answering.qa import DocumentQA
from tpdoc.serve.app import TpdocServer, base_url, create_app, listen, server_config

MAX_BODY = 2**20  # the test servers' --max-body
WAIT_SECONDS = 60  # how long a test waits for a server or a thread before failing


# ------------------------------------------------------------------------- servers


@dataclass
class Served:
    url: str
    state: TpdocServer
    server: uvicorn.Server
    thread: threading.Thread


@contextmanager
def running(qa: DocumentQA, **options: Any) -> Iterator[Served]:
    """``qa`` served by uvicorn on a free loopback port, on a thread of this process."""
    app = create_app(qa, **options)
    sock = listen("127.0.0.1", 0)
    server = uvicorn.Server(server_config(app))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_for(lambda: server.started or not thread.is_alive())
    assert server.started, "the server did not start"
    try:
        yield Served(base_url(sock), app.state.server, server, thread)
    finally:
        server.should_exit = True
        thread.join(WAIT_SECONDS)


def wait_for(condition: Callable[[], bool], seconds: float = WAIT_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


class Gate:
    """Holds the model thread inside a question holding 'wait' until opened."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()

    def hold(self) -> None:
        self.entered.set()
        assert self.opened.wait(WAIT_SECONDS), "the gate was never opened"


def scripted_qa(scripted_model, gate: Gate) -> tuple[DocumentQA, list[int]]:
    """A scripted model whose answer names the question and the page's visual positions
    (so an answer shows which document and question it came from); the batch sizes the
    language model is given are recorded."""

    def script(text: str, visual: int) -> tuple[str, float]:
        if "wait" in text:
            gate.hold()
        return (f"{'total' if 'total' in text else 'issuer'} {visual}", -0.5)

    model = scripted_model(script)
    sizes: list[int] = []
    generate = model.language_model.generate

    def recording(*args, **kwargs):
        sizes.append(len(kwargs["inputs_embeds"]))
        return generate(*args, **kwargs)

    model.language_model.generate = recording
    qa = DocumentQA(model, cache=False)
    qa.name = "scripted"
    return qa, sizes


# ------------------------------------------------------------------ documents, HTTP


def data_url(path: Path) -> str:
    media = {".pdf": "application/pdf", ".png": "image/png", ".jpg": "image/jpeg"}
    kind = media.get(path.suffix, "application/octet-stream")
    return f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode()}"


def document_part(path: Path, filename: str | None = None) -> dict[str, Any]:
    """A PDF as a ``file`` part, an image as an ``image_url`` part (as OpenAI sends them);
    any document as a ``file`` part when a ``filename`` is given."""
    if path.suffix == ".pdf" or filename is not None:
        return {"type": "file", "file": {"file_data": data_url(path), "filename": filename}}
    return {"type": "image_url", "image_url": {"url": data_url(path)}}


def chat_body(path: Path, question: str, filename: str | None = None, **body: Any) -> dict:
    content = [{"type": "text", "text": question}, document_part(path, filename)]
    return {"model": "tpdoc", "messages": [{"role": "user", "content": content}], **body}


def post(url: str, body: dict | bytes) -> tuple[int, dict[str, Any]]:
    """A client in a few lines of urllib: POST JSON, read JSON (errors too)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{url}/v1/chat/completions", data, {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=WAIT_SECONDS) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def post_stream(url: str, body: dict) -> list[str]:
    """The ``data:`` payloads of a streamed answer, in order."""
    request = urllib.request.Request(
        f"{url}/v1/chat/completions",
        json.dumps({**body, "stream": True}).encode(),
        {"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=WAIT_SECONDS) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        lines = response.read().decode().splitlines()
    assert all(line.startswith("data: ") for line in lines if line), lines
    return [line.removeprefix("data: ") for line in lines if line]


def get(url: str, path: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"{url}{path}", timeout=WAIT_SECONDS) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def comparable(record: dict[str, Any]) -> dict[str, Any]:
    """An ``ask --json`` record without its timings (the only part that differs run to
    run)."""
    return {k: v for k, v in record.items() if k != "timings"}


def no_uploads_left(served: Served) -> bool:
    return not any(served.state.uploads.root.iterdir())
