"""`tpdoc serve`: a warm server against a cold command, and concurrent clients against one
at a time.

In: a model (default: the embedded one; ``--model`` for any tpdoc model), the samples'
first question about ``samples/report.pdf`` page 1, and ``--clients`` sample questions
(spread over the samples' pages). Out: one table of
(1) the cold command: ``tpdoc ask --no-cache --plain`` in a fresh process, process start
    to answer (median of ``--repeat``);
(2) the same command with ``--server`` pointed at a running ``tpdoc serve --no-cache``: a
    fresh client process each time, the server doing the whole pipeline for it (no cache,
    so exactly the cold command's work minus starting Python and loading the model);
(3) the same question again at a server with its caches on (visual tokens on disk, the
    page's prefix in memory): what a second question about a document costs;
(4) throughput of ``--clients`` questions sent one at a time against all at once by as
    many concurrent HTTP clients (threads of this process) to a ``--no-cache`` server
    started with ``--max-batch 16``, whose model thread answers the requests waiting
    together in one batch; whether both gave the same answers; and the same against a
    server started with ``--max-batch 1`` (one request through the model at a time, the
    default on CPU). Both concurrent rates are divided by one baseline, the first
    server's one-at-a-time rate; the second server's, the same work, is shown beside it
    as a measure of the run-to-run noise.

    python -m benchmarks.serve [--model DIR] [--repeat 5] [--clients 8] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.common import SAMPLES, emit
from tpdoc.serve.client import chat_request, post_chat

TPDOC = Path(sys.executable).with_name("tpdoc")  # the installed command, as users run it
START_SECONDS = 300  # the longest a server may take to load its model
WARM_UP = 2  # questions asked before timing, so kernels, fonts and caches are warm


def sample_questions() -> list[dict[str, Any]]:
    lines = (SAMPLES / "questions.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@contextmanager
def server(model: str | None, env: dict[str, str], *options: str) -> Iterator[str]:
    """A ``tpdoc serve`` process on a free loopback port; its base URL."""
    cmd = [str(TPDOC), "serve", "--port", "0", *(["--model", model] if model else []), *options]
    process = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            if match := re.search(r" on (http://\S+)/v1 ", line):
                # Keep reading its stderr, so that a chatty server never blocks on the pipe.
                threading.Thread(target=process.stderr.read, daemon=True).start()
                yield match.group(1)
                break
            if not line:
                raise SystemExit(f"tpdoc serve did not start (exit {process.wait()})")
        else:
            raise SystemExit("tpdoc serve did not start in time")
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(START_SECONDS)


def command_seconds(cmd: list[str], repeat: int, env: dict[str, str]) -> tuple[float, str]:
    """Median wall seconds of ``cmd`` in a fresh process, and its output."""
    walls, out = [], ""
    for _ in range(repeat):
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        walls.append(time.perf_counter() - t0)
        if done.returncode:
            raise SystemExit(f"{' '.join(cmd[:3])} failed: {done.stderr.strip()[-400:]}")
        out = done.stdout
    return statistics.median(walls), out


def chat_body(path: Path, question: str, page: int) -> dict[str, Any]:
    """The request `tpdoc ask PATH QUESTION --pages PAGE --server URL` sends."""
    return chat_request(path, question, {"pages": str(page)})


def post(url: str, body: dict[str, Any]) -> str:
    return post_chat(url, body)["choices"][0]["message"]["content"]


def throughput(url: str, bodies: list[dict[str, Any]], concurrent: bool) -> tuple[float, list]:
    """Questions per second, sent one at a time or all at once, and the answers."""
    t0 = time.perf_counter()
    if concurrent:
        with ThreadPoolExecutor(len(bodies)) as pool:
            answers = list(pool.map(lambda body: post(url, body), bodies))
    else:
        answers = [post(url, body) for body in bodies]
    return len(bodies) / (time.perf_counter() - t0), answers


def rates(url: str, bodies: list[dict[str, Any]], repeat: int) -> dict[str, Any]:
    """Median questions per second one at a time and all at once over ``repeat`` rounds
    (alternating), and whether the answers were the same."""
    runs: dict[bool, list[float]] = {False: [], True: []}
    answers: dict[bool, list] = {}
    for _ in range(repeat):
        for concurrent in (False, True):
            rate, answers[concurrent] = throughput(url, bodies, concurrent)
            runs[concurrent].append(rate)
    return {
        "sequential": statistics.median(runs[False]),
        "concurrent": statistics.median(runs[True]),
        "same_answers": answers[False] == answers[True],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serve", description=__doc__)
    parser.add_argument("--model", help="model folder or name (default: the embedded model)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    questions = sample_questions()
    first = questions[0]
    path, question = SAMPLES / first["file"], first["question"]
    model = ["--model", args.model] if args.model else []
    ask = [str(TPDOC), "ask", str(path), question, "--pages", str(first["page"]), "--plain"]
    spread = questions[:: max(1, len(questions) // args.clients)][: args.clients]
    bodies = [chat_body(SAMPLES / q["file"], q["question"], q["page"]) for q in spread]
    with tempfile.TemporaryDirectory() as cache_root:
        env = {**os.environ, "TPDOC_CACHE": cache_root, "TOKENIZERS_PARALLELISM": "false"}
        env.pop("TPDOC_SERVER", None)
        cold, local_answer = command_seconds([*ask, "--no-cache", *model], args.repeat, env)
        with server(args.model, env, "--no-cache", "--max-batch", "16") as url:
            command_seconds([*ask, "--server", url], WARM_UP, env)
            warm, served_answer = command_seconds([*ask, "--server", url], args.repeat, env)
            batched = rates(url, bodies, args.repeat)
        with server(args.model, env, "--no-cache", "--max-batch", "1") as url:
            post(url, bodies[0])
            alone = rates(url, bodies, args.repeat)
        with server(args.model, env) as url:
            command_seconds([*ask, "--server", url], WARM_UP, env)  # cached, prefix kept
            again, _ = command_seconds([*ask, "--server", url], args.repeat, env)
    n = len(bodies)
    baseline = batched["sequential"]  # the one denominator of both throughput ratios
    rows = [
        ["cold `tpdoc ask`, process start to answer (s)", round(cold, 3)],
        ["`tpdoc ask --server`, server without cache (s)", round(warm, 3)],
        ["speed-up of the warm server", round(cold / warm, 2)],
        ["`tpdoc ask --server`, same question again, server caches on (s)", round(again, 3)],
        ["speed-up, same question again", round(cold / again, 2)],
        ["same answer locally and from the server", _yes(local_answer == served_answer)],
        [f"{n} questions one at a time: the baseline (questions/s)", round(baseline, 3)],
        [f"{n} concurrent clients, --max-batch 16 (questions/s)", round(batched["concurrent"], 3)],
        ["throughput ratio, --max-batch 16 / baseline", _ratio(batched["concurrent"], baseline)],
        ["same answers batched and one at a time", _yes(batched["same_answers"])],
        [f"{n} one at a time again, --max-batch 1 (questions/s)", round(alone["sequential"], 3)],
        [f"{n} concurrent clients, --max-batch 1 (questions/s)", round(alone["concurrent"], 3)],
        ["throughput ratio, --max-batch 1 / baseline", _ratio(alone["concurrent"], baseline)],
    ]
    notes = [
        f"model: {args.model or 'embedded default'}; question: {question!r} on {path.name} "
        f"page {first['page']}; medians of {args.repeat}",
        f"throughput: {n} sample questions (one page each), HTTP clients in threads, "
        "server without cache so every round does the same work",
    ]
    emit("tpdoc serve", ["measurement", "value"], rows, as_json=args.json, notes=notes)
    return 0


def _ratio(rate: float, baseline: float) -> float:
    return round(rate / baseline, 2)


def _yes(value: bool) -> str:
    return "yes" if value else "no"


if __name__ == "__main__":
    raise SystemExit(main())
