"""`tpdoc serve`: a real uvicorn server on a free loopback port, asked with the `openai`
client, with a few lines of urllib and with raw sockets; streaming, batching of
concurrent requests, every refusal, the body and queue limits, what a queued request
keeps in memory, temporary files, clients that leave, a model thread that dies, and
shutdown (Ctrl-C, twice, and SIGTERM) with requests in flight. `tpdoc ask --server` is
tested in test_ask_server.py."""

from __future__ import annotations

import http.client
import json
import logging
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from tests.conftest import interruptible, make_pdf
from tests.serving import (
    MAX_BODY,
    WAIT_SECONDS,
    Gate,
    Served,
    chat_body,
    comparable,
    get,
    no_uploads_left,
    post,
    post_stream,
    running,
    scripted_qa,
    wait_for,
)
from tests.test_cli_ask import DOCUMENT_ERRORS, QUESTION, _encrypted
from tpdoc.answering.cache import VisualTokenCache
from tpdoc.answering.qa import DocumentQA
from tpdoc.answering.results import AnswerResult, Request, Shortlist
from tpdoc.cli import app as cli_app
from tpdoc.cli import main
from tpdoc.errors import DocumentError, UsageError
from tpdoc.serve.app import is_loopback, listen
from tpdoc.serve.batching import Batcher, default_max_batch
from tpdoc.serve.wire import result_from_wire, result_to_wire

pytest_plugins = ["tests.serving_fixtures"]  # the fixtures real, scripted, gate and docs


# --------------------------------------------------------------------- the API


def test_health_and_the_model_list(real, tiny_model_dir):
    assert get(real.url, "/health") == (200, {"status": "ok", "model": str(tiny_model_dir)})
    status, models = get(real.url, "/v1/models")
    assert status == 200 and models["object"] == "list"
    assert [(m["id"], m["object"]) for m in models["data"]] == [(str(tiny_model_dir), "model")]


def test_the_openai_client_gets_the_librarys_answers(real, docs, tiny_model_dir):
    from openai import OpenAI

    client = OpenAI(base_url=f"{real.url}/v1", api_key="unused", max_retries=0)
    local = DocumentQA(str(tiny_model_dir), cache=False)
    for path in (docs[0], docs[2]):  # a PDF as a file part, a PNG as an image_url part
        body = chat_body(path, QUESTION, max_tokens=4)
        response = client.chat.completions.create(
            model="tpdoc", messages=body["messages"], max_tokens=4
        )
        expected = local.ask(path, QUESTION, max_new_tokens=4)
        assert response.choices[0].message.content == expected.answer
        assert response.choices[0].message.role == "assistant"
        assert response.model == str(tiny_model_dir)
        record = response.model_extra["tpdoc"]  # what `ask --json` reports
        assert record["file"] == "document"  # the parts carry no file name
        assert comparable(record) == comparable(replace(expected, file="document").to_json())

        stream = client.chat.completions.create(
            model="tpdoc", messages=body["messages"], max_tokens=4, stream=True
        )
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks)
        assert text == expected.answer
        assert chunks[0].choices[0].delta.role == "assistant"
        assert chunks[-1].choices[0].finish_reason == "stop"
        assert comparable(chunks[-1].model_extra["tpdoc"]) == comparable(record)


def test_a_urllib_client_with_and_without_streaming(scripted, docs):
    served, _ = scripted
    body = chat_body(docs[1], "Who issued it?", filename="b.pdf", tpdoc={"all_pages": True})
    status, response = post(served.url, body)
    assert status == 200 and response["object"] == "chat.completion"
    answer = response["choices"][0]["message"]["content"]
    assert answer.startswith("issuer ") and response["tpdoc"]["answer"] == answer
    assert response["tpdoc"]["file"] == "b.pdf" and response["tpdoc"]["pages"][0]["page"] == 1
    assert "tpdoc_result" not in response  # only when asked for

    events = post_stream(served.url, body)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == answer
    assert [c["choices"][0]["finish_reason"] for c in chunks][-1] == "stop"
    assert comparable(chunks[-1]["tpdoc"]) == comparable(response["tpdoc"])


def test_concurrent_requests_are_batched_and_answered_as_one_at_a_time(scripted, docs, gate):
    served, sizes = scripted
    bodies = [chat_body(p, q) for p in docs for q in (QUESTION, "Who issued it?")]
    alone = [post(served.url, b)[1]["tpdoc"] for b in bodies]
    visual = {r["tokens"]["visual"] for r in alone}
    assert len(visual) == len(docs), "the documents must differ to tell answers apart"

    # Hold the model thread in one question, so that all eight arrive while it is busy.
    with ThreadPoolExecutor(len(bodies) + 1) as pool:
        held = pool.submit(post, served.url, chat_body(docs[0], "Please wait: the total?"))
        assert gate.entered.wait(WAIT_SECONDS)
        sizes.clear()
        futures = [pool.submit(post, served.url, b) for b in bodies]
        wait_for(lambda: served.state.batcher.waiting == len(bodies))
        assert served.state.batcher.waiting == len(bodies)
        gate.opened.set()
        together = [f.result()[1]["tpdoc"] for f in futures]
        assert held.result()[0] == 200
    assert served.state.batcher.batch_sizes[-1] == len(bodies)  # one ask_many for all eight
    assert sizes == [len(bodies)]  # and their eight pages in one language-model batch
    assert [comparable(r) for r in together] == [comparable(r) for r in alone]
    assert [r["answer"].split()[0] for r in together] == ["total", "issuer"] * len(docs)
    assert len({r["answer"] for r in together}) == len(bodies)  # each its own document's
    assert no_uploads_left(served)


def test_a_second_question_about_a_document_reuses_both_caches(real, tmp_path):
    path = make_pdf(tmp_path / "repeat.pdf", [(300.0, 300.0)], text="asked three times")
    qa = real.state.qa
    body = chat_body(path, QUESTION, tpdoc={"all_pages": True, "max_new_tokens": 3})
    hits = qa.prefixes.hits
    first, second, third = (post(real.url, body)[1]["tpdoc"] for _ in range(3))
    assert [r["pages"][0]["cached"] for r in (first, second, third)] == [False, True, True]
    assert qa.prefixes.hits == hits + 1  # kept on the second question, reused on the third
    assert first["answer"] == second["answer"] == third["answer"]


# ------------------------------------------------------------------------ refusals


def _with_content(content: Any) -> dict:
    return {"model": "tpdoc", "messages": [{"role": "user", "content": content}]}


def _text(question: str = QUESTION) -> dict:
    return {"type": "text", "text": question}


def _png() -> dict:
    return {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}


BAD_REQUESTS = {
    "not json": (b"{not json", "invalid_json", "not JSON"),
    "too deep": (b"[" * 100_000 + b"]" * 100_000, "invalid_json", "not JSON"),
    "huge number": (b'{"n": ' + b"9" * 5_000 + b"}", "invalid_json", "not JSON"),
    "not an object": (b"[1, 2]", "invalid_request", "body"),
    "no messages": ({"model": "tpdoc"}, "invalid_request", "messages"),
    "no user message": (
        {"messages": [{"role": "system", "content": "be brief"}]},
        "missing_question",
        "no user message",
    ),
    "no document": (_with_content(QUESTION), "missing_document", "no document"),
    "two documents": (_with_content([_text(), _png(), _png()]), "invalid_request", "2 documents"),
    "unknown part": (
        _with_content([_text(), {"type": "input_audio", "input_audio": {}}]),
        "invalid_request",
        "messages.0.content",
    ),
    "web address": (
        _with_content([_text(), {"type": "image_url", "image_url": {"url": "https://x/a.png"}}]),
        "invalid_data_url",
        "fetches nothing",
    ),
    "not base64": (
        _with_content([_text(), {"type": "image_url", "image_url": {"url": "data:image/png,%89"}}]),
        "invalid_data_url",
        "not base64",
    ),
    "bad base64": (
        _with_content([_text(), {"type": "image_url", "image_url": {"url": "data:;base64,@@"}}]),
        "invalid_data_url",
        "invalid base64",
    ),
    "file id": (
        _with_content([_text(), {"type": "file", "file": {"file_id": "file-1"}}]),
        "invalid_request",
        "file_id",
    ),
    "n": ({**_with_content([_text(), _png()]), "n": 2}, "unsupported_parameter", "n must be 1"),
    "unknown option": (
        {**_with_content([_text(), _png()]), "tpdoc": {"tiles": 9}},
        "invalid_request",
        "tpdoc.tiles",
    ),
    "option type": (
        {**_with_content([_text(), _png()]), "tpdoc": {"max_tiles": "9"}},
        "invalid_request",
        "tpdoc.max_tiles",
    ),
    "option value": (
        {**_with_content([_text(), _png()]), "tpdoc": {"max_tiles": 10}},
        "usage",
        "--max-tiles must be one of 9, 16, 25, got 10",
    ),
    "answer length": (
        {**_with_content([_text(), _png()]), "max_tokens": 0},
        "usage",
        "--max-new-tokens must be at least 1, got 0",
    ),
    "empty question": (_with_content([_text("  "), _png()]), "usage", "the question is empty"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_malformed_requests_are_400_in_openais_error_shape(scripted, case):
    served, _ = scripted
    body, code, message = BAD_REQUESTS[case]
    status, response = post(served.url, body)
    assert status == 400, response
    error = response["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["code"] == code
    assert message in error["message"]
    assert no_uploads_left(served)


DOCUMENT_CODES = {
    "unsupported": "unsupported_format",
    "not-a-pdf": "corrupt_document",
    "truncated": "corrupt_document",
    "empty": "corrupt_document",
    "encrypted": "encrypted_document",
    "corrupt-image": "corrupt_document",
    "huge-image": "image_too_large",  # a decompression bomb, refused from its header
}


@pytest.mark.parametrize("case", list(DOCUMENT_CODES))
def test_documents_that_cannot_be_used_are_422_with_the_librarys_message(
    scripted, scripted_model, docs, tmp_path, case
):
    served, _ = scripted
    path = DOCUMENT_ERRORS[case][0](tmp_path)
    here = DocumentQA(scripted_model(lambda text, visual: ("x", -1.0)), cache=False)
    with pytest.raises(DocumentError) as local:  # what `tpdoc ask` reports for this file
        here.ask(path, QUESTION)
    for name in (str(path), "upload" + path.suffix):
        status, response = post(served.url, chat_body(path, QUESTION, filename=name))
        assert status == 422, response
        assert response["error"]["message"] == str(local.value).replace(str(path), name)
        assert response["error"]["code"] == DOCUMENT_CODES[case]
    assert no_uploads_left(served)
    assert post(served.url, chat_body(docs[0], QUESTION))[0] == 200  # it goes on serving


def test_options_the_document_does_not_fit_are_400(scripted, docs, tmp_path):
    served, _ = scripted
    status, response = post(served.url, chat_body(docs[0], QUESTION, tpdoc={"pages": "2"}))
    assert status == 400 and response["error"]["code"] == "page_spec"
    assert response["error"]["message"] == (
        "document: page spec '2': '2' is out of range (the document has 1 page)"
    )
    status, response = post(
        served.url, chat_body(docs[0], QUESTION, filename="a.pdf", tpdoc={"budget": 3})
    )
    assert status == 400 and response["error"]["code"] == "budget"
    assert "--budget 3: page 1 does not fit in 3 visual tokens" in response["error"]["message"]
    secret = _encrypted(tmp_path)
    status, response = post(
        served.url, chat_body(secret, QUESTION, filename="s.pdf", tpdoc={"password": "pw"})
    )
    assert status == 200, response


def test_unknown_routes_and_methods_answer_in_openais_error_shape(scripted):
    served, _ = scripted
    status, response = get(served.url, "/v1/embeddings")
    assert status == 404 and response["error"]["code"] == "not_found"
    status, response = get(served.url, "/v1/chat/completions")
    assert status == 405 and response["error"]["type"] == "invalid_request_error"


def _raw_exchange(url: str, head: bytes, body: Iterator[bytes]) -> tuple[int, bytes]:
    """Send a request's head and body parts over a socket without ending the body, and
    read the answer: it must come while the body is still unfinished."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=WAIT_SECONDS) as sock:
        sock.sendall(head)
        for part in body:
            sock.sendall(part)
        answer = http.client.HTTPResponse(sock)
        answer.begin()
        return answer.status, answer.read()


def test_a_body_over_the_limit_is_413_without_being_read_whole(scripted):
    served, _ = scripted
    start = b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
    status, declared = _raw_exchange(
        served.url, start + b"Content-Length: 1000000000000\r\n\r\n", iter([b'{"model": '])
    )
    error = json.loads(declared)["error"]
    assert status == 413 and error["code"] == "body_too_large"
    assert "limit of 1,048,576 bytes" in error["message"]
    part = b"x" * 2**16
    status, chunked = _raw_exchange(
        served.url,
        start + b"Transfer-Encoding: chunked\r\n\r\n",
        (b"%x\r\n%s\r\n" % (len(part), part) for _ in range(MAX_BODY // len(part) + 2)),
    )  # counted while it streams in: no Content-Length, no final chunk
    assert status == 413 and json.loads(chunked)["error"]["code"] == "body_too_large"
    assert get(served.url, "/health")[0] == 200


# --------------------------------------------------------------- the server's life


def test_requests_in_flight_are_answered_before_the_server_stops(scripted_model, docs):
    gate = Gate()
    qa, _ = scripted_qa(scripted_model, gate)
    with running(qa) as served, ThreadPoolExecutor(1) as pool:
        held = pool.submit(post, served.url, chat_body(docs[0], "wait, what is the total?"))
        assert gate.entered.wait(WAIT_SECONDS)
        served.server.should_exit = True  # what Ctrl-C and SIGTERM do
        gate.opened.set()
        status, response = held.result(WAIT_SECONDS)
        served.thread.join(WAIT_SECONDS)
    assert status == 200 and response["choices"][0]["message"]["content"].startswith("total")
    assert not served.thread.is_alive()
    assert not served.state.uploads.root.exists()  # the private folder went with it


def test_a_batch_that_breaks_unexpectedly_fails_only_the_request_that_breaks_it():
    class Flaky:
        def ask_many(self, requests):
            for request in requests:
                if request.question == "boom":
                    raise RuntimeError("boom")
                yield f"answer to {request.question}"

    batcher = Batcher(Flaky())
    removed: list[str] = []
    futures = [batcher.submit(Request(f, q), lambda q=q: removed.append(q))
               for f, q in (("a", "one"), ("b", "boom"), ("c", "two"))]  # fmt: skip
    batcher.start()  # all three are waiting: one batch
    batcher.close()
    assert batcher.batch_sizes == [3, 1, 1]  # the batch, then the two unanswered alone
    assert futures[0].result() == "answer to one" and futures[2].result() == "answer to two"
    with pytest.raises(RuntimeError, match="boom"):
        futures[1].result()
    assert sorted(removed) == ["boom", "one", "two"]  # every document removed


def test_a_request_whose_client_left_before_its_turn_is_skipped():
    class Recording:
        asked: list[str] = []

        def ask_many(self, requests):
            for request in requests:
                self.asked.append(request.question)
                yield request.question

    qa = Recording()
    batcher = Batcher(qa)
    removed: list[str] = []
    left = batcher.submit(Request("a", "left"), lambda: removed.append("left"))
    kept = batcher.submit(Request("b", "kept"), lambda: removed.append("kept"))
    assert left.cancel()
    batcher.start()
    batcher.close()
    assert qa.asked == ["kept"] and kept.result() == "kept" and removed == ["left", "kept"]


def test_results_travel_whole_and_compare_equal(scripted_model, docs):
    qa = DocumentQA(scripted_model(lambda text, visual: ("", float("-inf"))), cache=False)
    result = qa.ask(docs[1], QUESTION, all_pages=True)
    assert result.confidence == float("-inf")  # JSON has no infinity
    boxed = replace(result, pages=tuple(replace(p, box=(0.1, 0.2, 0.3, 0.4)) for p in result.pages))
    ranked = replace(result, shortlist=Shortlist(ranked=9, read=(2, 5), overview_tokens=90))
    for sent in (result, boxed, ranked):  # tuples come back tuples, as they went
        wire = json.loads(json.dumps(result_to_wire(sent), allow_nan=False))
        assert isinstance(result_from_wire(wire), AnswerResult) and result_from_wire(wire) == sent
    with pytest.raises(ValueError, match="not a tpdoc answer"):
        result_from_wire({**wire, "pages": [{"page": 1}]})


def _raw_post(url: str, body: bytes) -> socket.socket:
    """A connection that has sent a whole chat request and reads nothing back yet."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=WAIT_SECONDS)
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    sock.sendall(head.encode() + body)
    return sock


def _uploads(served: Served) -> int:
    return len(list(served.state.uploads.root.iterdir()))


def test_a_client_that_leaves_before_its_turn_is_dropped_with_its_document(scripted_model, docs):
    gate = Gate()
    qa, _ = scripted_qa(scripted_model, gate)
    with running(qa, max_batch=16) as served, ThreadPoolExecutor(1) as pool:
        held = pool.submit(post, served.url, chat_body(docs[0], "wait, what is the total?"))
        assert gate.entered.wait(WAIT_SECONDS)
        with _raw_post(served.url, json.dumps(chat_body(docs[1], QUESTION)).encode()):
            wait_for(lambda: served.state.batcher.waiting == 1)
            assert _uploads(served) == 2  # the held question's document and the waiting one's
        wait_for(lambda: _uploads(served) == 1, seconds=10)  # the client went, and its file
        assert _uploads(served) == 1, "a request whose client left is still waiting"
        gate.opened.set()
        assert held.result(WAIT_SECONDS)[0] == 200
    assert served.state.batcher.batch_sizes == [1]  # the model was never asked the other


def test_queued_requests_keep_neither_their_body_nor_their_document(scripted_model, docs, tmp_path):
    size = 3 * 2**20  # each document; its request's body is 4/3 of it in base64
    bodies = []
    for i in range(4):
        path = tmp_path / f"noise{i}.bin"
        path.write_bytes(os.urandom(size))
        bodies.append(json.dumps(chat_body(path, QUESTION, filename=path.name)).encode())
    gate = Gate()
    qa, _ = scripted_qa(scripted_model, gate)
    with running(qa, max_body=8 * size) as served, ThreadPoolExecutor(len(bodies) + 1) as pool:
        held = pool.submit(post, served.url, chat_body(docs[0], "wait, what is the total?"))
        assert gate.entered.wait(WAIT_SECONDS)
        tracemalloc.start()
        try:
            waiting = [pool.submit(_status_of, served.url, body) for body in bodies]
            wait_for(lambda: served.state.batcher.waiting == len(bodies))
            assert served.state.batcher.waiting == len(bodies)
            # A request just queued lets go of its body as soon as its handler resumes.
            wait_for(lambda: tracemalloc.get_traced_memory()[0] < size, seconds=10)
            kept, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        gate.opened.set()
        assert held.result(WAIT_SECONDS)[0] == 200
        assert [f.result(WAIT_SECONDS) for f in waiting] == [422] * len(bodies)  # noise
    # Each would keep about 8 MB (its body and its data URL) if they stayed in memory.
    assert kept < size, f"{len(bodies)} queued requests hold {kept:,} bytes"


def _status_of(url: str, body: bytes) -> int:
    """POST an encoded body without copying it (what tracemalloc would count)."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=WAIT_SECONDS)
    try:
        headers = {"Content-Type": "application/json"}
        connection.request("POST", "/v1/chat/completions", body, headers)
        return connection.getresponse().status
    finally:
        connection.close()


def test_requests_beyond_max_pending_are_503_and_the_rest_are_answered(scripted_model, docs):
    gate = Gate()
    qa, _ = scripted_qa(scripted_model, gate)
    with running(qa, max_batch=16, max_pending=2) as served, ThreadPoolExecutor(3) as pool:
        held = pool.submit(post, served.url, chat_body(docs[0], "wait, what is the total?"))
        assert gate.entered.wait(WAIT_SECONDS)
        queued = [pool.submit(post, served.url, chat_body(docs[1], QUESTION)) for _ in range(2)]
        wait_for(lambda: served.state.batcher.waiting == 2)
        status, response = post(served.url, chat_body(docs[2], QUESTION))
        gate.opened.set()
        assert [f.result(WAIT_SECONDS)[0] for f in (held, *queued)] == [200] * 3
        assert post(served.url, chat_body(docs[2], QUESTION))[0] == 200  # room again
        assert no_uploads_left(served)
    assert status == 503, response
    error = response["error"]
    assert (error["type"], error["code"]) == ("server_error", "server_busy")
    busy = "2 requests are waiting for the model already (tpdoc serve --max-pending 2)"
    assert busy in error["message"]


def test_a_model_thread_that_dies_fails_its_requests_and_health_says_so(docs):
    class Dying:
        name = "dying"

        def ask_many(self, requests):
            raise SystemExit("told to stop")  # not an Exception: it ends the model thread
            yield

    with running(Dying(), max_batch=16) as served:
        status, response = post(served.url, chat_body(docs[0], QUESTION))
        assert status == 503 and response["error"]["code"] == "model_stopped", response
        stopped = "the model thread stopped (SystemExit('told to stop'))"
        assert stopped in response["error"]["message"]
        wait_for(lambda: not served.state.batcher.alive)
        status, health = get(served.url, "/health")
        assert status == 503 and health["status"] == "error" and health["model"] == "dying"
        status, again = post(served.url, chat_body(docs[1], QUESTION))  # at once, not a hang
        assert status == 503 and again["error"]["code"] == "model_stopped"
        assert no_uploads_left(served)


def test_a_failing_clean_up_neither_loses_the_answer_nor_stops_the_thread(caplog):
    class Echo:
        def ask_many(self, requests):
            for request in requests:
                yield request.question

    def broken() -> None:
        raise OSError("the disk went away")

    batcher = Batcher(Echo())
    first = batcher.submit(Request("a", "one"), broken)
    second = batcher.submit(Request("b", "two"))
    with caplog.at_level(logging.ERROR, logger="tpdoc.serve"):
        batcher.start()
        batcher.close()
    assert (first.result(), second.result()) == ("one", "two")
    assert batcher.batch_sizes == [2]  # no retry: the batch did not fail
    assert "cleaning up after a request failed" in caplog.text


def test_batch_and_queue_limits():
    on = {kind: SimpleNamespace(model=SimpleNamespace(device=torch.device(kind)))
          for kind in ("cpu", "cuda")}  # fmt: skip
    assert default_max_batch(on["cuda"]) == 16 and default_max_batch(on["cpu"]) == 1
    for limits in ({"max_batch": 0}, {"max_pending": 0}):
        with pytest.raises(UsageError, match="must be at least 1, got 0"):
            Batcher(on["cpu"], **limits)


def test_a_server_remembers_the_hashes_of_a_bounded_number_of_files(
    scripted_model, docs, tmp_path, monkeypatch
):
    monkeypatch.setattr("tpdoc.answering.qa.FILE_HASHES_KEPT", 2)
    cache = VisualTokenCache(tmp_path / "cache", max_bytes=10**8)
    qa = DocumentQA(scripted_model(lambda text, visual: ("x", -1.0)), cache=cache)
    for path in docs[:3]:  # a server sees every upload as a new file
        qa.ask(path, QUESTION)
    assert [memo[0] for memo in qa._hashes] == [str(p.resolve()) for p in docs[1:3]]


def test_loopback_addresses():
    assert all(map(is_loopback, ("127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1")))
    assert not any(map(is_loopback, ("0.0.0.0", "::", "192.168.1.2", "localhost", "x.org")))
    with closing(listen("localhost", 0)) as sock:  # a name: the address bound decides
        assert is_loopback(sock.getsockname()[0])


def test_serve_warns_off_loopback_and_hands_the_model_to_the_server(tiny_model_dir, monkeypatch):
    import tpdoc.serve.app as serving

    seen: dict[str, Any] = {}
    sockets: list[socket.socket] = []

    def bound(host: str, port: int) -> socket.socket:  # bound where asked, never listening
        seen["at"] = (host, port)
        sockets.append(socket.socket())
        sockets[-1].bind((host, 0))
        return sockets[-1]

    monkeypatch.setattr(serving, "listen", bound)
    monkeypatch.setattr(serving, "base_url", lambda sock: "http://here:1")
    monkeypatch.setattr(serving, "serve", lambda app, sock: seen.update(app=app))
    runner = CliRunner()
    args = ["serve", "--model", str(tiny_model_dir), "--max-body", "2M"]
    try:
        result = runner.invoke(cli_app, [*args, "--host", "0.0.0.0", "--port", "9"])
        assert result.exit_code == 0, result.stderr
        assert "warning" in result.stderr and "other machines" in result.stderr
        assert f"serving {tiny_model_dir} on http://here:1/v1" in result.stderr
        assert result.stdout == "" and seen["at"] == ("0.0.0.0", 9)
        server = seen["app"].state.server
        assert server.max_body == 2 * 2**20 and server.qa.name == str(tiny_model_dir)
        assert server.batcher.max_batch == 1  # the default on CPU
        assert server.batcher.max_pending == 64
        quiet = runner.invoke(cli_app, [*args, "--max-batch", "4", "--max-pending", "3"])
        assert quiet.exit_code == 0 and "warning" not in quiet.stderr
        batcher = seen["app"].state.server.batcher
        assert (batcher.max_batch, batcher.max_pending) == (4, 3)
    finally:
        for sock in sockets:
            sock.close()
    bad = runner.invoke(cli_app, ["serve", "--max-body", "lots"])
    assert bad.exit_code == 2 and "--max-body: 'lots' is not a size" in bad.stderr


def test_a_port_in_use_is_one_line_before_the_model_loads(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["serve", "--port", str(port), "--model", "no-such-model-folder"])
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and f"cannot listen on 127.0.0.1:{port}" in line


class ServeProcess:
    """`tpdoc serve` in a process of its own; its stderr is read on a thread, so that
    waiting for the line that says where it serves has a deadline."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tpdoc.cli", "serve", "--port", "0", *args],
            stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
            preexec_fn=interruptible,
        )  # fmt: skip
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.put(line)
        self.lines.put(None)

    def url(self) -> str:
        """The server's base URL, once it says it serves (a failure at the deadline)."""
        deadline = time.monotonic() + WAIT_SECONDS
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.stderr.append(line)
            if match := re.search(r" on (http://127\.0\.0\.1:\d+)/v1 ", line):
                return match.group(1)
        raise AssertionError(f"tpdoc serve did not say where it serves: {self.stderr}")

    def finish(self) -> tuple[int, str, str]:
        """Its exit code, stdout and stderr, once it has ended (killed at the deadline)."""
        try:
            self.process.wait(WAIT_SECONDS)
        finally:
            self.process.kill()
            self.reader.join(WAIT_SECONDS)
        while (line := self.lines.get_nowait()) is not None:
            self.stderr.append(line)
        return self.process.returncode, self.process.stdout.read(), "".join(self.stderr)


@pytest.mark.parametrize("stop", ["ctrl-c", "sigterm", "ctrl-c twice"])
def test_tpdoc_serve_runs_until_stopped_and_leaves_no_files(tiny_model_dir, docs, tmp_path, stop):
    temp = tmp_path / "temp"  # where the upload folder goes
    temp.mkdir()
    server = ServeProcess(["--model", str(tiny_model_dir)], {**os.environ, "TMPDIR": str(temp)})
    stopped = False
    try:
        url = server.url()
        assert get(url, "/health")[1]["model"] == str(tiny_model_dir)
        status, response = post(url, chat_body(docs[2], QUESTION, max_tokens=2))
        assert status == 200 and response["tpdoc"]["file"] == "document"
        assert [p.name[:12] for p in temp.iterdir()] == ["tpdoc-serve-"]
        # A request still arriving: a graceful stop waits for it; a second Ctrl-C does not.
        with _half_sent(url):
            stopped = True
            server.process.send_signal(signal.SIGTERM if stop == "sigterm" else signal.SIGINT)
            if stop == "ctrl-c twice":
                time.sleep(0.5)
                assert server.process.poll() is None, "it did not wait for the request"
                server.process.send_signal(signal.SIGINT)
    finally:
        if not stopped:  # (a second Ctrl-C here would force the quit under test)
            server.process.send_signal(signal.SIGINT)
        code, out, err = server.finish()
    expected = -signal.SIGTERM if stop == "sigterm" else 130
    assert code == expected and out == "", err
    assert "Traceback" not in err, err  # a forced quit too: uvicorn's log stays quiet
    assert list(temp.iterdir()) == []  # the upload folder went with it


@contextmanager
def _half_sent(url: str) -> Iterator[socket.socket]:
    """A connection in the middle of sending a request's body."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=WAIT_SECONDS) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{"
        )
        yield sock


def test_the_serve_benchmark_compares_the_answers_it_times(scripted):
    from benchmarks import serve as bench
    from benchmarks.common import SAMPLES

    served, _ = scripted
    questions = bench.sample_questions()[:3]
    bodies = [bench.chat_body(SAMPLES / q["file"], q["question"], q["page"]) for q in questions]
    rates = bench.rates(served.url, bodies, repeat=1)
    assert rates["same_answers"] and rates["sequential"] > 0 and rates["concurrent"] > 0
    rate, answers = bench.throughput(served.url, bodies, concurrent=True)
    assert [a.split()[0] for a in answers] == ["issuer", "issuer", "issuer"]


def test_the_readmes_openai_example_runs(scripted, monkeypatch, capsys):
    from benchmarks.common import ROOT, SAMPLES

    served, _ = scripted
    section = (ROOT / "README.md").read_text().split("## `tpdoc serve`", 1)[1]
    example = section.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(SAMPLES)  # it reads report.pdf
    exec(example.replace("http://127.0.0.1:8765", served.url), {})
    answer, page = capsys.readouterr().out.split()[-2:]
    assert answer.isdigit() and page == "1"  # the scripted "total N" answer, from page 1
