"""`tpdoc batch --engine ray` and `tpdoc.answering.distributed`: the local engine's records from a
pool of Ray actors, URIs, resume after a killed or interrupted driver, a worker that dies
mid-batch, and a local engine that never imports Ray.

One local Ray cluster (2 CPUs) serves the module; the tiny random model answers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import interruptible, make_pdf
from tests.test_batch import PAUSE_SECONDS, PAUSING_BATCH, QUESTION, batch_args, lines
from tests.test_batch import signal_after_first_record as signal_after_first_records
from tpdoc.cli import app

WORKER_ENV = ("HOME", "HF_HOME", "TPDOC_CACHE")  # the actors' own, isolated like the tests'


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """A local cluster for the module; its workers get a home and caches of their own."""
    import ray

    home = tmp_path_factory.mktemp("ray-home")
    env = {"HOME": str(home), "HF_HOME": str(home / "hf"), "TPDOC_CACHE": str(home / "cache"),
           "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}  # fmt: skip
    # Drivers started by the tests connect without the token file of this process's home.
    patch = pytest.MonkeyPatch()
    patch.setenv("RAY_AUTH_MODE", "disabled")
    ray.init(
        num_cpus=2, include_dashboard=False, log_to_driver=False,
        runtime_env={"env_vars": env},
    )  # fmt: skip
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()
    patch.undo()


@pytest.fixture(scope="module")
def documents(tmp_path_factory) -> Path:
    """Four good documents (one of two pages, one an image) and two bad ones."""
    from PIL import Image

    root = tmp_path_factory.mktemp("distributed")
    make_pdf(root / "a.pdf", [(300.0, 300.0)])
    make_pdf(root / "b.pdf", [(300.0, 300.0), (200.0, 400.0)])
    (root / "sub").mkdir()
    make_pdf(root / "sub" / "c.pdf", [(300.0, 200.0)])
    Image.new("RGB", (120, 80), "white").save(root / "sub" / "d.png")
    (root / "broken.pdf").write_bytes(b"%PDF-1.7\nnot really")
    (root / "empty.png").write_bytes(b"")
    return root


GOOD, BAD = 4, 2  # documents in the folder above


def ray_args(model_dir: Path, *args: str) -> list[str]:
    return [*batch_args(model_dir, *args), "--engine", "ray"]


def comparable(records: list[dict]) -> dict[tuple, dict]:
    """Records by pair, without their timings (nothing else may differ between engines)."""
    return {(r["file"], r["question"]): {k: v for k, v in r.items() if k != "timings"}
            for r in records}  # fmt: skip


# ------------------------------------------------------------------------ without Ray


def test_the_local_engine_never_imports_ray(tiny_model_dir, documents):
    code = (
        "import sys, tpdoc, tpdoc.answering.batch, tpdoc.cli\n"
        "from tpdoc.cli import main\n"
        f"code = main(['batch', {str(documents / 'a.pdf')!r}, '-q', 'Q?', '--json',\n"
        f"             '--model', {str(tiny_model_dir)!r}, '--max-new-tokens', '1'])\n"
        "assert code == 0, code\n"
        "assert not [m for m in sys.modules if m == 'ray' or m.startswith('ray.')]\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr


def test_a_missing_ray_is_one_usage_line(capsys, monkeypatch, documents):
    from tpdoc.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if not installed
    code = main(["batch", str(documents / "a.pdf"), "-q", QUESTION, "--engine", "ray"])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    (line,) = captured.err.strip().splitlines()
    assert 'pip install "tpdoc[ray]"' in line


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["a.pdf", "--workers", "2"], "--workers: only with --engine ray"),
        (["a.pdf", "--gpus-per-worker", "1"], "--gpus-per-worker: only with --engine ray"),
        (["nosuch://bucket/docs", "--engine", "ray"], "neither pyarrow"),
    ],
)
def test_usage_errors_of_the_ray_options_exit_2(args, problem, capsys, monkeypatch, documents):
    from tpdoc.cli import main

    monkeypatch.chdir(documents)
    assert main(["batch", *args, "-q", QUESTION]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert problem in line


def test_uris_are_listed_like_folders_and_read_from_stdin(documents):
    import io

    from tpdoc.answering.batch import expand_paths
    from tpdoc.answering.distributed import expand_inputs

    uri = f"file://{documents}"
    assert expand_inputs([uri]) == [f"file://{p}" for p in expand_paths([str(documents)])]
    assert expand_inputs([uri + "/"], glob="*.png") == [
        f"{uri}/empty.png", f"{uri}/sub/d.png",
    ]  # fmt: skip
    listed = io.StringIO(f"{uri}/a.pdf\n{documents / 'sub'}\n{uri}/gone.pdf\n")
    assert expand_inputs(["-"], stdin=listed) == [
        f"{uri}/a.pdf", str(documents / "sub" / "c.pdf"), str(documents / "sub" / "d.png"),
        f"{uri}/gone.pdf",  # kept: a failed record later
    ]  # fmt: skip


def test_the_pool_fits_the_cluster():
    from tpdoc.answering.distributed import RayEngine
    from tpdoc.errors import UsageError

    two = {"CPU": 2.0}
    assert RayEngine().pool_size(two, fixed=True) == 2
    assert RayEngine(cpus_per_worker=2).pool_size(two, fixed=True) == 1
    assert RayEngine(gpus_per_worker=0.5).pool_size({"CPU": 16.0, "GPU": 2.0}, fixed=True) == 4
    assert RayEngine(workers=8).pool_size(two, fixed=False) == 8  # a cluster may grow
    with pytest.raises(UsageError, match=r"3 workers of 1 CPU each do not fit .* \(2 CPU\)"):
        RayEngine(workers=3).pool_size(two, fixed=True)
    with pytest.raises(UsageError, match="0 GPU"):
        RayEngine(gpus_per_worker=1).pool_size(two, fixed=True)


# --------------------------------------------------------------------------- with Ray


def test_ray_gives_the_local_records_for_good_and_bad_files(
    ray_cluster, tiny_model_dir, documents, tmp_path
):
    runner = CliRunner()
    gone = tmp_path / "gone.pdf"
    asked = ["-q", QUESTION, "-q", "Who?", "--no-cache", "--json"]
    local = runner.invoke(app, batch_args(tiny_model_dir, str(documents), str(gone), *asked))
    assert local.exit_code == 1, local.stderr
    # The same files as URIs: the actors fetch them through pyarrow.
    uris = [f"file://{documents}", f"file://{gone}"]
    ray = runner.invoke(app, ray_args(tiny_model_dir, *uris, *asked, "--workers", "2"))
    assert ray.exit_code == 1, ray.stderr
    assert ray.stdout.strip() and all(line.startswith("{") for line in ray.stdout.splitlines())
    files = GOOD + BAD + 1  # and the missing one
    records = lines(ray.stdout)
    assert len(records) == 2 * files and sum("error" in r for r in records) == 2 * (BAD + 1)
    assert all(r["file"].startswith("file://") for r in records)
    unprefixed = lines(ray.stdout.replace("file://", ""))  # in "file" and in "error"
    assert comparable(unprefixed) == comparable(lines(local.stdout))
    assert f"{2 * GOOD} answered, {2 * (BAD + 1)} failed" in ray.stderr


def test_a_killed_or_interrupted_driver_resumes_without_loss_or_duplicates(
    ray_cluster, tiny_model_dir, documents, tmp_path
):
    """Drivers (connected through RAY_ADDRESS) get Ctrl-C and a kill after their first
    record; --resume then completes each output file, every pair exactly once."""
    signals = {"ctrl-c": signal.SIGINT, "kill": signal.SIGKILL}
    outs = {name: tmp_path / f"{name}.jsonl" for name in signals}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
           "RAY_ADDRESS": ray_cluster}  # fmt: skip
    code = PAUSING_BATCH.replace("PAUSE_SECONDS", str(PAUSE_SECONDS))
    asked = [str(documents), "-q", QUESTION, "-q", "Who?", "--workers", "1", "--no-cache"]

    def start(out: Path) -> subprocess.Popen:
        args = [sys.executable, "-c", code, *ray_args(tiny_model_dir, *asked, "--out", str(out))]
        return subprocess.Popen(
            args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            preexec_fn=interruptible,
        )  # fmt: skip

    processes = {name: start(outs[name]) for name in signals}
    signal_after_first_records({n: (processes[n], outs[n], signals[n]) for n in signals})
    assert processes["ctrl-c"].wait(timeout=60) == 130
    assert processes["kill"].wait(timeout=60) == -signal.SIGKILL
    runner = CliRunner()
    for out in outs.values():
        kept = lines(out.read_text())
        assert len(kept) == 1  # of 6 files x 2 questions
        args = ray_args(tiny_model_dir, str(documents), "-q", QUESTION, "-q", "Who?",
                        "--out", str(out), "--resume", "--workers", "2")  # fmt: skip
        resumed = runner.invoke(app, args)
        assert resumed.exit_code == 1, resumed.stderr  # the bad files' records
        keys = [(r["file"], r["question"]) for r in lines(out.read_text())]
        assert len(keys) == len(set(keys)) == 2 * (GOOD + BAD)
        assert "1 skipped" in resumed.stderr


def dies_once(flag: Path) -> type:
    """An ``Answerer`` whose process exits on its second call, once across all actors (the
    flag file remembers it), after the first call's records have gone back."""
    from tpdoc.answering.distributed import Answerer

    class DiesOnce(Answerer):
        calls = 0

        def __call__(self, batch):
            self.calls += 1
            if self.calls == 2:
                try:
                    os.close(os.open(flag, os.O_CREAT | os.O_EXCL))
                except FileExistsError:
                    pass
                else:
                    os._exit(1)
            return super().__call__(batch)

    return DiesOnce


def test_a_worker_that_dies_mid_batch_is_retried_without_loss_or_duplicates(
    ray_cluster, tiny_model_dir, documents, tmp_path
):
    from tpdoc.answering.batch import expand_paths, requests_for
    from tpdoc.answering.distributed import ModelSpec, RayEngine, run_batch
    from tpdoc.answering.records import RecordWriter
    from tpdoc.answering.results import AskOptions

    files = expand_paths([str(documents)])
    requests = requests_for(files, [QUESTION, "Who?", "Where?"], AskOptions(max_new_tokens=2))
    flag = tmp_path / "died"
    engine = RayEngine(workers=2, requests_per_call=2, answerer=dies_once(flag))
    out = tmp_path / "out.jsonl"
    with RecordWriter(out) as writer:
        summary = run_batch(
            requests, model=ModelSpec(str(tiny_model_dir), cache=False), engine=engine,
            writer=writer,
        )  # fmt: skip
    assert flag.exists()  # a worker did die
    keys = [(r["file"], r["question"]) for r in lines(out.read_text())]
    assert len(keys) == len(set(keys)) == len(requests) == 3 * (GOOD + BAD)
    assert (summary.answered, summary.failed) == (3 * GOOD, 3 * BAD)


def test_answer_dataset_answers_a_dataset_of_files(ray_cluster, tiny_model_dir, documents):
    import ray.data

    from tpdoc.answering.distributed import RayEngine, answer_dataset

    rows = [{"file": str(documents / "b.pdf"), "id": 1, "pages": "2"},
            {"file": str(documents / "a.pdf"), "id": 2, "pages": None}]  # fmt: skip
    ds = ray.data.from_items(rows)
    answered = answer_dataset(ds, [QUESTION], model=tiny_model_dir, engine=RayEngine(workers=1))
    records = sorted((json.loads(r["record"]) for r in answered.take_all()), key=lambda r: r["id"])
    assert [(r["id"], r["page"], r["question"]) for r in records] == [
        (1, 2, QUESTION), (2, 1, QUESTION),
    ]  # fmt: skip


def test_a_model_the_workers_cannot_load_is_one_error_line(ray_cluster, documents, tmp_path):
    result = CliRunner().invoke(
        app, ["batch", str(documents / "a.pdf"), "-q", QUESTION, "--engine", "ray",
              "--workers", "1", "--model", str(tmp_path / "no-model")],
    )  # fmt: skip
    assert result.exit_code == 1 and result.stdout == ""
    last = result.stderr.strip().splitlines()[-1]  # after whatever Ray itself logged
    assert last.startswith("error: ") and "no-model: no such model folder" in last
