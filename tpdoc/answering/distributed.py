"""Batch runs on Ray Data: the local engine's pairs and records, answered by a pool of
model actors on one machine or a cluster.

In: requests (``tpdoc.answering.batch``'s pairs of a path or URI and a question), or a
Ray Dataset with a ``file`` column (``answer_dataset``); a ``ModelSpec`` (the model and
how each actor runs it, from ``tpdoc.answering.batch``) and a ``RayEngine`` (how many
actors, what each reserves). Out: a Ray Dataset with one row per pair: ``key`` (the pair
as ``--resume`` knows it), ``record`` (its JSON line, exactly as the local engine writes
it), ``pages`` (pages read) and ``worker_error`` (empty unless the actor could not load
the model). ``run_batch`` streams those rows back to the driver, writes each record
through the local engine's ``RecordWriter`` and returns its ``BatchSummary``.

Each actor loads the model once and answers its rows with ``DocumentQA.ask_many``, the
local engine's code. It reads the documents itself (a path it can see, or a URI that
pyarrow or fsspec opens, fetched into a temporary file), so only paths pass through the
driver. Ray restarts an actor that dies and retries its rows (Ray Data's actor pools
default to ``max_restarts=-1`` and ``max_task_retries=-1``); a retried call may emit its
rows again, so the driver writes each pair only as many times as it was asked.

Ray is imported only here, and only ``--engine ray`` (or a caller) imports this module.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from tpdoc.answering.batch import (
    STDIN,
    BatchSummary,
    ModelSpec,
    expand_paths,
    is_uri,
    pair_key,
    record,
    wanted_file,
)
from tpdoc.answering.records import RecordWriter, error_reason
from tpdoc.answering.results import AskOptions, FailedRequest, Request, check_question
from tpdoc.errors import DocumentError, DocumentNotFoundError, TpdocError, UsageError

if TYPE_CHECKING:
    import ray.data

    from tpdoc.answering.qa import DocumentQA

INSTALL_HINT = 'pip install "tpdoc[ray]"'
REQUESTS_PER_CALL = 16  # rows per actor call: enough to fill the model's batches, little to redo
CALLS_PER_WORKER = 2  # at least, when there are few requests, so the pool shares them
COPY_CHUNK = 2**20  # bytes per read when fetching a URI
RecordCallback = Callable[[dict[str, Any], int], None]  # (record, pages read)


class WorkerError(TpdocError):
    """An actor could not start answering (say, the model cannot be loaded there); the
    message and exit code are those the same failure has locally."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def import_ray() -> Any:
    """``ray`` with Ray Data, or a ``UsageError`` saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401  (needs pyarrow and pandas, which the extra brings)
    except ImportError as exc:
        raise UsageError(
            f"--engine ray needs Ray Data, which is not installed ({exc.name or exc}): "
            f"{INSTALL_HINT}"
        ) from exc
    return ray


@dataclass(frozen=True)
class RayEngine:
    """How pairs are spread over Ray: model actors, what each reserves, rows per call."""

    workers: int | None = None  # None: as many actors as the cluster's CPUs (or GPUs) hold
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0
    requests_per_call: int = REQUESTS_PER_CALL
    answerer: type | None = field(default=None, compare=False)  # None: ``Answerer``

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise UsageError(f"--workers must be at least 1, got {self.workers}")
        if self.gpus_per_worker < 0:
            raise UsageError(f"--gpus-per-worker must be 0 or more, got {self.gpus_per_worker}")
        if not self.cpus_per_worker > 0:
            raise UsageError(f"--cpus-per-worker must be positive, got {self.cpus_per_worker}")
        if self.requests_per_call < 1:
            raise UsageError(f"requests_per_call must be at least 1, got {self.requests_per_call}")

    def pool_size(self, resources: dict[str, float], *, fixed: bool) -> int:
        """The actors to start on a cluster with ``resources`` (``ray.cluster_resources()``);
        ``fixed``: nothing will be added to it (a local cluster), so a pool that cannot
        fit is a ``UsageError`` instead of a wait for an autoscaler."""
        need = {"CPU": self.cpus_per_worker, "GPU": self.gpus_per_worker}
        fits = min(int(resources.get(r, 0) // n) for r, n in need.items() if n > 0)
        workers = self.workers if self.workers is not None else max(1, fits)
        if fixed and workers > fits:
            asked = ", ".join(f"{n:g} {r}" for r, n in need.items() if n > 0)
            have = ", ".join(f"{resources.get(r, 0):g} {r}" for r, n in need.items() if n > 0)
            raise UsageError(
                f"{workers} workers of {asked} each do not fit the local Ray cluster ({have}); "
                f"use fewer --workers or a smaller --cpus-per-worker / --gpus-per-worker, or "
                f"set RAY_ADDRESS to a larger cluster"
            )
        return workers


# ------------------------------------------------------------------------------ inputs


def expand_inputs(
    paths: Sequence[str], *, glob: str | None = None, stdin: IO[str] | None = None
) -> list[str]:
    """``tpdoc.answering.batch.expand_paths``, and URIs too: a URI of a folder (a prefix) becomes
    the URIs of its documents, sorted; any other URI is kept (a failed record if absent)."""
    found: list[str] = []
    for raw in paths:
        if raw == STDIN and stdin is not None:
            listed = [line.strip() for line in stdin]
            found += expand_inputs([p for p in listed if p and p != STDIN], glob=glob)
        elif is_uri(raw):
            found += _list_uri(raw, glob)
        else:
            found += expand_paths([raw], glob=glob, stdin=stdin)
    return found


def filesystem(uri: str) -> tuple[Any, str]:
    """The pyarrow file system of ``uri`` (fsspec's, wrapped, for schemes pyarrow lacks)
    and the path in it; a ``UsageError`` if neither knows the scheme."""
    import pyarrow
    import pyarrow.fs

    try:
        return pyarrow.fs.FileSystem.from_uri(uri)
    except pyarrow.ArrowInvalid as arrow_exc:  # a scheme pyarrow does not know
        try:
            import fsspec.core

            fs, path = fsspec.core.url_to_fs(uri)
        except (ImportError, ValueError) as exc:  # unknown to fsspec, or its driver missing
            raise UsageError(
                f"{uri}: neither pyarrow ({arrow_exc}) nor fsspec ({exc}) can open this URI"
            ) from exc
        return pyarrow.fs.PyFileSystem(pyarrow.fs.FSSpecHandler(fs)), path


def _list_uri(uri: str, glob: str | None) -> list[str]:
    import pyarrow.fs

    fs, root = filesystem(uri)
    try:
        if fs.get_file_info(root).type != pyarrow.fs.FileType.Directory:
            return [uri]
        infos = fs.get_file_info(pyarrow.fs.FileSelector(root, recursive=True))
    except OSError as exc:  # no access, no such bucket, no network
        raise UsageError(f"{uri}: cannot list: {error_reason(exc)}") from exc
    found = sorted(i.path for i in infos if i.type == pyarrow.fs.FileType.File)
    prefix = uri.rstrip("/")
    return [
        f"{prefix}/{path[len(root) :].lstrip('/')}"  # the user's own spelling of the prefix
        for path in found
        if wanted_file(Path(path), glob)
    ]


# -------------------------------------------------------------------------- the actors


def encode_request(request: Request) -> str:
    """A request as one JSON string: a column of one type, whatever its ``id``s are."""
    fields = {"file": request.file, "question": request.question, "id": request.id}
    return json.dumps({**fields, "options": asdict(request.options)}, ensure_ascii=False)


def decode_request(text: str) -> Request:
    data = json.loads(text)
    return Request(data["file"], data["question"], data["id"], AskOptions(**data["options"]))


class Answerer:
    """A Ray Data actor: loads the model once (``ModelSpec.load``) and answers each batch
    of rows (``key``, ``request``) with ``DocumentQA.ask_many``. An error loading the
    model is not raised (Ray would keep restarting the actor): each row reports it."""

    def __init__(self, spec: ModelSpec) -> None:
        self.qa: DocumentQA | None = None
        self.error: TpdocError | None = None
        try:
            self.qa = spec.load()
        except TpdocError as exc:
            self.error = exc

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        keys = [str(k) for k in batch["key"]]
        if self.error is not None:
            failure = json.dumps({"message": str(self.error), "exit_code": self.error.exit_code})
            return {"key": keys, "record": [""] * len(keys), "pages": [0] * len(keys),
                    "worker_error": [failure] * len(keys)}  # fmt: skip
        requests = [decode_request(str(text)) for text in batch["request"]]
        records, pages = answer_here(self.qa, requests)
        lines = [json.dumps(r, ensure_ascii=False) for r in records]
        return {"key": keys, "record": lines, "pages": pages, "worker_error": [""] * len(keys)}


def answer_here(qa: DocumentQA, requests: list[Request]) -> tuple[list[dict], list[int]]:
    """The records of ``requests`` and the pages each read, answered by ``qa`` in this
    process; documents named by URIs are fetched into a temporary folder first."""
    with tempfile.TemporaryDirectory(prefix="tpdoc-ray-") as folder:
        local, errors = _fetch({r.file for r in requests}, Path(folder))
        outcomes = iter(qa.ask_many(replace(r, file=local[r.file]) for r in requests
                                    if r.file not in errors))  # fmt: skip
        records, pages = [], []
        for request in requests:
            error = errors.get(request.file)
            if error is None:
                outcome = next(outcomes)
            else:
                outcome = FailedRequest(request.file, request.question, request.id, str(error),
                                        error.exit_code, cause=error)  # fmt: skip
            line = record(outcome)
            if line["file"] != request.file:  # a fetched URI: name it, not its copy
                line["file"] = request.file
                if "error" in line:
                    line["error"] = line["error"].replace(local[request.file], request.file)
            records.append(line)
            pages.append(len(getattr(outcome, "pages", ())))
    return records, pages


def _fetch(files: set[str], folder: Path) -> tuple[dict[str, str], dict[str, TpdocError]]:
    """The local path of each file (a URI's copy in ``folder``), and why each URI that
    could not be fetched could not."""
    local: dict[str, str] = {}
    errors: dict[str, TpdocError] = {}
    for number, name in enumerate(sorted(files)):
        if not is_uri(name):
            local[name] = name
            continue
        copy = folder / str(number) / Path(name.rstrip("/")).name  # its name, for messages
        copy.parent.mkdir()
        local[name] = str(copy)
        try:
            fs, path = filesystem(name)
            with fs.open_input_stream(path) as source, copy.open("wb") as target:
                while chunk := source.read(COPY_CHUNK):
                    target.write(chunk)
        except FileNotFoundError:
            errors[name] = DocumentNotFoundError(name, "no such file")
        except OSError as exc:
            errors[name] = DocumentError(name, f"cannot read: {error_reason(exc)}")
        except TpdocError as exc:
            errors[name] = exc
    return local, errors


# ----------------------------------------------------------------------------- datasets


def answer_requests(
    requests: Sequence[Request], *, model: ModelSpec, engine: RayEngine
) -> ray.data.Dataset:
    """A Ray Dataset of the records of ``requests`` (see the module docstring)."""
    ray = import_ray()
    rows = [{"key": pair_key(r.file, r.question, r.id), "request": encode_request(r)}
            for r in requests]  # fmt: skip
    # One call per block, and a short run still gives every worker a few calls.
    spread = math.ceil(len(rows) / (CALLS_PER_WORKER * (engine.workers or 1)))
    engine = replace(engine, requests_per_call=max(1, min(engine.requests_per_call, spread)))
    blocks = math.ceil(len(rows) / engine.requests_per_call)
    return _answered(ray.data.from_items(rows, override_num_blocks=blocks), model, engine)


def answer_dataset(
    ds: ray.data.Dataset,
    questions: Sequence[str] | None = None,
    *,
    model: ModelSpec | str | Path | None = None,
    options: AskOptions | None = None,
    engine: RayEngine | None = None,
) -> ray.data.Dataset:
    """Records for a Ray Dataset of documents: rows with ``file`` (a path the workers
    can read, or a URI), optionally ``id`` and ``pages``; each file is asked every one of
    ``questions``, or, without ``questions``, its row's ``question``. Returns a Dataset of
    ``key``, ``record``, ``pages`` and ``worker_error`` rows (``json.loads(row["record"])``
    is the record ``tpdoc batch`` writes), in the order they finish."""
    import_ray()
    spec = model if isinstance(model, ModelSpec) else ModelSpec(model and str(model))
    checked = None if questions is None else [check_question(q) for q in questions]
    base = options or AskOptions()
    pairs = ds.flat_map(_pairs, fn_kwargs={"questions": checked, "options": base})
    return _answered(pairs, spec, engine or RayEngine())


def _pairs(row: dict[str, Any], questions: list[str] | None, options: AskOptions) -> list[dict]:
    # Ray Data hands out integer columns as numpy scalars.
    pages, id_ = (v.item() if hasattr(v, "item") else v for v in (row.get("pages"), row.get("id")))
    row_options = options if pages is None else replace(options, pages=str(pages))
    if questions is None and not isinstance(row.get("question"), str):
        raise UsageError(f"answer_dataset: no questions given and no 'question' in {row}")
    asked = questions if questions is not None else [check_question(row["question"])]
    requests = [Request(str(row["file"]), q, id_, row_options) for q in asked]
    return [{"key": pair_key(r.file, r.question, r.id), "request": encode_request(r)}
            for r in requests]  # fmt: skip


def _answered(ds: ray.data.Dataset, spec: ModelSpec, engine: RayEngine) -> ray.data.Dataset:
    import ray.data

    size = engine.workers  # None: Ray Data's autoscaling pool
    return ds.map_batches(
        engine.answerer or Answerer, fn_constructor_args=(spec,),
        batch_size=engine.requests_per_call, batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=size) if size else None,
        num_cpus=engine.cpus_per_worker, num_gpus=engine.gpus_per_worker or None,
    )  # fmt: skip


# ------------------------------------------------------------------------------ driver


@contextmanager
def ray_session() -> Iterator[bool]:
    """Ray for one run: as the caller set it up, else ``ray.init()`` (``RAY_ADDRESS``'s
    cluster, or a new local one), shut down afterwards. Yields whether the cluster is a
    local one this run started, whose resources are fixed."""
    ray = import_ray()
    if ray.is_initialized():
        yield False
        return
    local = not os.environ.get("RAY_ADDRESS")
    ray.init(**({"include_dashboard": False} if local else {}))
    try:
        yield local
    finally:
        ray.shutdown()


def run_batch(
    requests: Sequence[Request],
    *,
    model: ModelSpec,
    engine: RayEngine | None = None,
    writer: RecordWriter | None = None,
    skip: set[str] | frozenset[str] = frozenset(),
    on_record: RecordCallback | None = None,
    report: Callable[[str], None] | None = None,
) -> BatchSummary:
    """``tpdoc.answering.batch.run_batch`` on Ray: every request not in ``skip`` answered by the
    actors; each record is written by this process as it streams back, once per pair
    asked (a retried call's repeats are dropped). ``report`` gets a line on the cluster.

    ``seconds`` covers starting the actors and loading the model in them too."""
    engine = engine or RayEngine()
    summary = BatchSummary()
    todo = [r for r in requests if pair_key(r.file, r.question, r.id) not in skip]
    summary.skipped = len(requests) - len(todo)
    if not todo:
        return summary
    owed = Counter(pair_key(r.file, r.question, r.id) for r in todo)
    start = time.perf_counter()
    try:
        with ray_session() as local:
            import ray

            engine = replace(engine, workers=engine.pool_size(ray.cluster_resources(), fixed=local))
            if report is not None:
                gpus = f", {engine.gpus_per_worker:g} GPU" if engine.gpus_per_worker else ""
                report(f"{'a local Ray cluster' if local else 'Ray'}: {engine.workers} workers "
                       f"of {engine.cpus_per_worker:g} CPU{gpus} each")  # fmt: skip
            for row in answer_requests(todo, model=model, engine=engine).iter_rows():
                if row["worker_error"]:
                    failure = json.loads(row["worker_error"])
                    raise WorkerError(failure["message"], failure["exit_code"])
                if owed[row["key"]] == 0:
                    continue  # already written: a retried call emitted it again
                owed[row["key"]] -= 1
                line = json.loads(row["record"])
                if writer is not None:
                    writer.write(line)
                summary.add_record(line, int(row["pages"]))
                if on_record is not None:
                    on_record(line, int(row["pages"]))
    finally:
        summary.seconds = time.perf_counter() - start
    if missing := sum(owed.values()):  # Ray finished without them: not expected
        raise TpdocError(f"the Ray run ended with {missing} pairs unanswered; --resume asks them")
    return summary
