"""`tpdoc batch --engine ray` on this machine: the local engine against Ray Data with one
model actor and with two, side by side in one run, and what a local Ray cluster costs to
start.

In: a model (default: the embedded one; ``--model DIR`` for any tpdoc model folder) and
``--docs`` synthetic documents generated into a temporary folder (held-out, seeded; page
1 each, one question each), visual-token cache off so every engine does the same work.
Every engine answers ``PASS_PAGES`` pages per pass of the model: the local engine's
default, and each actor's calls hold that many pairs. The three engines run in
``--rounds`` rounds, in turn and in reverse order every other round (A B C, C B A, ...),
so that a load that drifts (the machine is shared) weighs on each alike.

Out: one table, a row per engine, means over the rounds: the cores as the engine uses
them; seconds from the start of a run to its first record (the local engine: loading the
model and its first pass; Ray: starting the actors, which import torch and load the
model themselves, and their first call); the run's wall time; pages per second over the
whole run, start-up included; that rate against the local engine's; whether the records
(all but timings) equal the local engine's. Below it: ``ray.init()`` of a new local
cluster until a first task has run, and ``ray.shutdown()``, medians of ``--repeat`` fresh
clusters.

    python -m benchmarks.ray_batch [--model DIR] [--docs 40] [--rounds 2] [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import emit
from benchmarks.pipeline import SEED, generated_documents
from tpdoc.answering.qa import PAGES_PER_STEP
from tpdoc.answering.results import AskOptions, Request

PASS_PAGES = PAGES_PER_STEP  # pages per pass of the model, in every engine


class Clock:
    """When each record of one run came back, from the start of the run."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.seen: list[tuple[float, int]] = []  # (seconds, pages)
        self.records: list[dict[str, Any]] = []

    def record(self, line: dict[str, Any], pages: int) -> None:
        self.seen.append((time.perf_counter() - self.start, pages))
        self.records.append(line)

    def measures(self) -> dict[str, float]:
        pages = sum(p for _, p in self.seen)
        wall = self.seen[-1][0]
        return {"first": self.seen[0][0], "wall": wall, "rate": pages / wall}


def _comparable(records: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps({k: v for k, v in r.items() if k != "timings"}) for r in records)


def run_local(model: str | None, requests: list[Request]) -> Clock:
    from tpdoc.answering.batch import run_batch
    from tpdoc.answering.qa import DocumentQA

    clock = Clock()  # loading the model counts: Ray's actors load it in their run
    qa = DocumentQA(model, cache=False, pages_per_step=PASS_PAGES)
    run_batch(qa, requests, on_record=lambda line, o: clock.record(line, len(o.pages)))
    return clock


def ray_runner(workers: int, cpus: float) -> Callable[[str | None, list[Request]], Clock]:
    def run(model: str | None, requests: list[Request]) -> Clock:
        from tpdoc.answering.distributed import ModelSpec, RayEngine, run_batch

        clock = Clock()
        engine = RayEngine(workers=workers, cpus_per_worker=cpus, requests_per_call=PASS_PAGES)
        run_batch(requests, model=ModelSpec(model, cache=False, batch_size=PASS_PAGES),
                  engine=engine, on_record=clock.record)  # fmt: skip
        return clock

    return run


def cluster_overhead(repeat: int) -> dict[str, float]:
    """Median seconds of ``ray.init()`` (a new local cluster) until a first task returns,
    and of ``ray.shutdown()``."""
    import ray

    starts, stops = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        ray.init(include_dashboard=False, log_to_driver=False)
        ray.get(ray.remote(_nothing).remote())
        t1 = time.perf_counter()
        ray.shutdown()
        starts.append(t1 - t0)
        stops.append(time.perf_counter() - t1)
    return {"start": statistics.median(starts), "shutdown": statistics.median(stops)}


def _nothing() -> None:
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ray_batch", description=__doc__)
    parser.add_argument("--model", help="model folder or name (default: the embedded model)")
    parser.add_argument("--docs", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2, help="runs of each engine")
    parser.add_argument("--repeat", type=int, default=3, help="fresh clusters started")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.pop("RAY_ADDRESS", None)  # this machine's own cluster, nobody else's
    import ray
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False
    cores = len(os.sched_getaffinity(0))
    engines = {
        "local (one process)": (f"{cores} torch threads", run_local),
        "ray, 1 worker": (f"1 actor x {cores} CPUs", ray_runner(1, cores)),
        "ray, 2 workers": (f"2 actors x {cores / 2:g} CPU", ray_runner(2, cores / 2)),
    }
    load_before = os.getloadavg()[0]
    overhead = cluster_overhead(args.repeat)
    runs: dict[str, list[Clock]] = {name: [] for name in engines}
    with tempfile.TemporaryDirectory() as folder:
        docs = generated_documents(Path(folder), args.docs)
        requests = [Request(str(p), q, options=AskOptions(pages="1"))
                    for p, items in docs for q, _ in items]  # fmt: skip
        ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)
        try:
            for round_ in range(args.rounds):
                order = list(engines) if round_ % 2 == 0 else list(engines)[::-1]
                for name in order:
                    runs[name].append(engines[name][1](args.model, requests))
        finally:
            ray.shutdown()
    rows = _rows(engines, runs)
    columns = ["engine", "cores used", "to first record (s)", "wall (s)", "pages/s",
               "pages/s / local", "same records"]  # fmt: skip
    notes = [
        f"model: {args.model or 'embedded default'}; {len(requests)} questions on page 1 of "
        f"{args.docs} generated held-out documents (seed {SEED}); cache off; {PASS_PAGES} "
        f"pages per pass; means of {args.rounds} rounds (order reversed every other round)",
        f"a new local cluster: ray.init() to a first task done {overhead['start']:.2f} s, "
        f"ray.shutdown() {overhead['shutdown']:.2f} s (medians of {args.repeat}); "
        f"Ray {ray.__version__}",
        "to first record: the local engine loads the model; each Ray actor starts a Python "
        "process, imports torch and loads the model; then each answers its first pass",
        f"1-minute load average {load_before:.1f} before the run, {os.getloadavg()[0]:.1f} "
        f"after it (other jobs on the machine)",
    ]
    emit("tpdoc batch: local engine and Ray Data", columns, rows, as_json=args.json,
         notes=notes, extra={"cluster_seconds": overhead})  # fmt: skip
    return 0


def _rows(engines: dict[str, tuple], runs: dict[str, list[Clock]]) -> list[list[Any]]:
    local_runs = next(iter(runs.values()))
    local = statistics.mean(c.measures()["rate"] for c in local_runs)
    rows = []
    for name, (cores, _) in engines.items():
        measured = [c.measures() for c in runs[name]]
        mean = {k: statistics.mean(m[k] for m in measured) for k in measured[0]}
        same = all(_comparable(c.records) == _comparable(local_runs[0].records)
                   for c in runs[name])  # fmt: skip
        rows.append([name, cores, round(mean["first"], 2), round(mean["wall"], 2),
                     round(mean["rate"], 3), round(mean["rate"] / local, 2),
                     "yes" if same else "no"])  # fmt: skip
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
