"""`tpdoc batch` and its library: inputs, JSON-line records, failures as records, exit
codes, --resume, and runs interrupted by Ctrl-C or a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import interruptible, make_pdf
from tpdoc.answering.batch import expand_paths, read_questions, requests_for
from tpdoc.answering.records import RecordWriter, read_records
from tpdoc.answering.results import AskOptions
from tpdoc.cli import app
from tpdoc.errors import UsageError

QUESTION = "What is the total?"
ASK_FIELDS = {"file", "question", "answer", "page", "confidence", "pages", "tokens", "timings"}


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Three small PDFs (one in a subfolder), a PNG, and a text file to be ignored."""
    from PIL import Image

    root = tmp_path_factory.mktemp("batch")
    make_pdf(root / "a.pdf", [(300.0, 300.0)])
    make_pdf(root / "b.pdf", [(300.0, 300.0), (200.0, 400.0)])
    (root / "sub").mkdir()
    make_pdf(root / "sub" / "c.pdf", [(300.0, 200.0)])
    Image.new("RGB", (120, 80), "white").save(root / "sub" / "d.png")
    (root / "notes.txt").write_text("not a document")
    return root


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def batch_args(model_dir: Path, *args: str) -> list[str]:
    return ["batch", *args, "--model", str(model_dir), "--max-new-tokens", "2"]


def lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def test_paths_expand_folders_recursively_and_read_stdin(folder):
    import io

    found = expand_paths([str(folder)])
    assert [Path(p).relative_to(folder).as_posix() for p in found] == [
        "a.pdf", "b.pdf", "sub/c.pdf", "sub/d.png",
    ]  # fmt: skip
    assert expand_paths([str(folder)], glob="*.png") == [str(folder / "sub" / "d.png")]
    listed = io.StringIO(f"{folder / 'a.pdf'}\n\n{folder / 'sub'}\n")
    assert expand_paths(["-"], stdin=listed) == [
        str(folder / "a.pdf"), str(folder / "sub" / "c.pdf"), str(folder / "sub" / "d.png"),
    ]  # fmt: skip
    assert expand_paths(["missing.pdf"]) == ["missing.pdf"]  # a failed record later
    requests = requests_for(["x.pdf", "y.pdf"], ["q1", " q2 "], AskOptions())
    assert [(r.file, r.question) for r in requests] == [
        ("x.pdf", "q1"), ("x.pdf", "q2"), ("y.pdf", "q1"), ("y.pdf", "q2"),
    ]  # fmt: skip


def test_questions_jsonl_is_read_with_ids_pages_and_relative_files(tmp_path):
    path = tmp_path / "qs" / "questions.jsonl"
    path.parent.mkdir()
    path.write_text(
        '{"id": "q1", "file": "doc.pdf", "question": "Total?", "pages": 2, "answers": ["x"]}\n'
        "\n"
        '{"file": "/abs/doc.pdf", "question": " Who? ", "pages": "1-2"}\n'
    )
    first, second = read_questions(path, AskOptions(max_new_tokens=5))
    assert (first.id, first.file, first.options.pages) == ("q1", str(path.parent / "doc.pdf"), "2")
    assert first.options.max_new_tokens == 5
    assert (second.id, second.file, second.question, second.options.pages) == (
        None, "/abs/doc.pdf", "Who?", "1-2",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{not json", "line 2: not JSON"),
        ("[1, 2]", "line 2: expected a JSON object, got list"),
        ('{"file": "a.pdf"}', "line 2: 'question' must be a non-empty string"),
        ('{"file": "a.pdf", "question": "  "}', "line 2: 'question' must be a non-empty string"),
        ('{"question": "Q?"}', "line 2: 'file' must be a non-empty string"),
        ('{"file": "a.pdf", "question": "Q?", "pages": [1]}', "line 2: 'pages' must be a page"),
    ],
)
def test_a_malformed_questions_line_is_named_by_its_number(tmp_path, line, problem):
    path = tmp_path / "q.jsonl"
    path.write_text('{"file": "a.pdf", "question": "Fine?"}\n' + line + "\n")
    with pytest.raises(UsageError, match=problem) as exc:
        read_questions(path, AskOptions())
    assert str(path) in str(exc.value)


def test_records_are_whole_lines_and_a_half_line_is_cut(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_bytes(b'{"file": "a", "question": "q", "id": 1}\n{"file": "b", "quest')
    assert [r["file"] for r in read_records(out)] == ["a"]
    with RecordWriter(out) as writer:
        writer.write({"file": "c", "question": "é", "id": None})
    assert out.read_text(encoding="utf-8").splitlines() == [
        '{"file": "a", "question": "q", "id": 1}',
        '{"file": "c", "question": "é", "id": null}',
    ]


def test_batch_over_a_folder_prints_json_lines_and_a_summary(runner, tiny_model_dir, folder):
    result = runner.invoke(app, batch_args(tiny_model_dir, str(folder), "-q", QUESTION))
    assert result.exit_code == 0, result.stderr
    records = lines(result.stdout)
    assert len(records) == 4
    assert all(ASK_FIELDS | {"id"} <= set(r) and r["id"] is None for r in records)
    assert records[1]["file"] == str(folder / "b.pdf") and records[1]["tokens"]["visual"] > 0
    assert "4 answered, 0 failed" in result.stderr and "TokenPacker saved" in result.stderr


def test_bad_files_become_error_records_and_exit_1(runner, tiny_model_dir, folder, tmp_path):
    out = tmp_path / "out.jsonl"
    paths = [str(folder / "a.pdf"), str(folder / "notes.txt"), str(tmp_path / "gone.pdf")]
    result = runner.invoke(
        app, batch_args(tiny_model_dir, *paths, "-q", QUESTION, "-q", "Who?", "--out", str(out))
    )
    assert result.exit_code == 1, result.stderr
    assert result.stdout == ""  # records went to --out only
    records = lines(out.read_text())
    assert len(records) == 6
    failed = [r for r in records if "error" in r]
    assert len(failed) == 4 and all(set(r) == {"file", "question", "id", "error"} for r in failed)
    assert "gone.pdf" in failed[-1]["error"] and "no such file" in failed[-1]["error"]
    assert "2 answered, 4 failed" in result.stderr


def test_questions_file_echoes_ids_and_stdin_paths_work(runner, tiny_model_dir, folder, tmp_path):
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        json.dumps({"id": 7, "file": str(folder / "b.pdf"), "question": QUESTION, "pages": "2"})
        + "\n"
        + json.dumps({"id": "x", "file": str(folder / "a.pdf"), "question": "Who?"})
        + "\n"
    )
    result = runner.invoke(app, batch_args(tiny_model_dir, "--questions", str(questions)))
    assert result.exit_code == 0, result.stderr
    first, second = lines(result.stdout)
    assert (first["id"], first["page"], second["id"]) == (7, 2, "x")
    listed = f"{folder / 'a.pdf'}\n{folder / 'sub' / 'c.pdf'}\n"
    piped = runner.invoke(app, batch_args(tiny_model_dir, "-", "-q", QUESTION), input=listed)
    assert piped.exit_code == 0, piped.stderr
    assert [r["file"] for r in lines(piped.stdout)] == listed.split()


def test_resume_skips_pairs_already_answered(runner, tiny_model_dir, folder, tmp_path):
    out = tmp_path / "out.jsonl"
    base = batch_args(tiny_model_dir, str(folder), "-q", QUESTION, "--out", str(out))
    first = runner.invoke(app, [base[0], str(folder / "a.pdf"), *base[2:]])
    assert first.exit_code == 0, first.stderr
    with out.open("ab") as handle:
        handle.write(b'{"file": "half a rec')  # a writer killed mid-line
    again = runner.invoke(app, [*base, "--resume", "--json"])
    assert again.exit_code == 0, again.stderr
    assert len(lines(again.stdout)) == 3 and "1 skipped" in again.stderr
    records = lines(out.read_text())
    assert sorted(r["file"] for r in records) == sorted(expand_paths([str(folder)]))
    # Nothing left to do: no model is even loaded (this one does not exist).
    done = [*base, "--resume", "--model", str(tmp_path / "no-model")]
    finished = runner.invoke(app, done)
    assert finished.exit_code == 0, finished.stderr
    assert "0 answered, 0 failed, 4 skipped" in finished.stderr


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["-q", QUESTION], "at least one PATH"),
        (["doc.pdf"], "-q QUESTION"),
        (["doc.pdf", "-q", "  "], "question is empty"),
        (["doc.pdf", "-q", QUESTION, "--resume"], "--resume needs --out"),
        (["--questions", "q.jsonl", "doc.pdf"], "give no PATH"),
        (["doc.pdf", "-q", QUESTION, "--out", "missing-dir/out.jsonl"], "--out"),
        (["doc.pdf", "-q", QUESTION, "--out", "."], "is a directory"),
        (["doc.pdf", "-q", QUESTION, "--max-tiles", "7"], "--max-tiles"),
        (["doc.pdf", "-q", QUESTION, "--batch-size", "0"], "--batch-size"),
    ],
)
def test_usage_errors_exit_2_with_one_line(args, problem, tmp_path, monkeypatch):
    from tpdoc.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "q.jsonl").write_text('{"file": "doc.pdf", "question": "Q?"}\n')
    code = main(["batch", *args, "--model", str(tmp_path)])
    assert code == 2


def test_usage_error_output_is_one_line_on_stderr(capsys, tmp_path):
    from tpdoc.cli import main

    bad = tmp_path / "q.jsonl"
    bad.write_text('{"file": "a.pdf", "question": "Q?"}\n{"file": 3}\n')
    code = main(["batch", "--questions", str(bad), "-m", str(tmp_path)])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    (line,) = captured.err.strip().splitlines()
    assert f"--questions {bad}, line 2" in line


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (a full disk)")
def test_a_record_that_cannot_be_written_is_one_error_line(runner, tiny_model_dir, folder):
    from tpdoc.answering.records import RecordWriteError
    from tpdoc.errors import TpdocError

    with RecordWriter("/dev/full") as writer, pytest.raises(RecordWriteError) as exc:
        writer.write({"file": "a", "question": "q"})
    assert isinstance(exc.value, TpdocError)
    assert str(exc.value) == "--out /dev/full: cannot write a record: No space left on device"
    args = batch_args(tiny_model_dir, str(folder / "a.pdf"), "-q", QUESTION, "--out", "/dev/full")
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert line == "error: --out /dev/full: cannot write a record: No space left on device"


def test_the_record_file_is_closed_when_the_run_ends(runner, tiny_model_dir, folder, tmp_path):
    closed: list[Path] = []
    real_close = RecordWriter.close

    def close(self: RecordWriter) -> None:
        closed.append(self.path)
        real_close(self)

    out = tmp_path / "out.jsonl"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(RecordWriter, "close", close)
        result = runner.invoke(
            app, batch_args(tiny_model_dir, str(folder / "a.pdf"), "-q", QUESTION, "-o", str(out))
        )
    assert result.exit_code == 0, result.stderr
    assert closed == [out]


def test_a_question_holding_the_image_placeholder_is_refused(
    runner, tiny_model_dir, folder, tmp_path
):
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        json.dumps({"id": 1, "file": str(folder / "a.pdf"), "question": "What is <image>?"})
        + "\n"
        + json.dumps({"id": 2, "file": str(folder / "a.pdf"), "question": QUESTION})
        + "\n"
    )
    result = runner.invoke(app, batch_args(tiny_model_dir, "--questions", str(questions)))
    assert result.exit_code == 1, result.stderr
    refused, answered = lines(result.stdout)
    assert set(refused) == {"file", "question", "id", "error"}
    assert "the question contains <image>" in refused["error"]
    assert answered["id"] == 2 and "error" not in answered
    # A -q question is asked of every file: refused before anything runs.
    asked = runner.invoke(app, batch_args(tiny_model_dir, str(folder), "-q", "<image> total?"))
    assert asked.exit_code == 2 and asked.stdout == ""
    assert "the question contains <image>" in asked.stderr


def test_batch_size_default_in_help_is_the_library_default(runner):
    from tpdoc.answering.qa import PAGES_PER_STEP

    assert f"(default {PAGES_PER_STEP})" in runner.invoke(app, ["batch", "--help"]).stdout


# ------------------------------------------------------------------- interrupted runs


# The real command, except that after its first record it waits (for the signal), so the
# signal always arrives mid-run however fast or loaded the machine is.
PAUSING_BATCH = """
import sys, time
from tpdoc.answering.records import RecordWriter
write = RecordWriter.write

def write_then_wait(self, record):
    write(self, record)
    time.sleep(PAUSE_SECONDS)

RecordWriter.write = write_then_wait
from tpdoc.cli import main
sys.exit(main(sys.argv[1:]))
"""
PAUSE_SECONDS = 120  # far longer than the test waits; the signal ends the pause


def start_batch(model_dir: Path, folder: Path, out: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    code = PAUSING_BATCH.replace("PAUSE_SECONDS", str(PAUSE_SECONDS))
    args = [
        sys.executable, "-c", code, "batch", str(folder), "-q", QUESTION, "-q", "Who?",
        "--model", str(model_dir), "--out", str(out), "--batch-size", "1",
        "--max-new-tokens", "4",
    ]  # fmt: skip
    return subprocess.Popen(
        args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=interruptible
    )


def signal_after_first_record(runs: dict[str, tuple[subprocess.Popen, Path, int]]) -> None:
    """Send each run its signal as soon as its first record is in its output file; the
    run must still be going then."""
    waiting = dict(runs)
    deadline = time.monotonic() + 90
    while waiting and time.monotonic() < deadline:
        for name, (process, out, sig) in list(waiting.items()):
            if out.exists() and b"\n" in out.read_bytes():
                assert process.poll() is None, f"{name}: batch ended before its signal"
                process.send_signal(sig)
                del waiting[name]
            elif process.poll() is not None:
                pytest.fail(f"{name}: batch ended early: {process.stderr.read().decode()}")
        time.sleep(0.01)
    for process, _, _ in waiting.values():
        process.kill()
    assert not waiting, f"no record within the timeout: {sorted(waiting)}"


def test_interrupted_runs_keep_whole_records_and_resume_completes_them(
    tiny_model_dir, folder, tmp_path, runner
):
    """Ctrl-C and a kill, each after the first record (both runs at once, for time)."""
    signals = {"ctrl-c": signal.SIGINT, "kill": signal.SIGKILL}
    outs = {name: tmp_path / f"{name}.jsonl" for name in signals}
    processes = {name: start_batch(tiny_model_dir, folder, outs[name]) for name in signals}
    signal_after_first_record({n: (processes[n], outs[n], signals[n]) for n in signals})
    assert processes["ctrl-c"].wait(timeout=60) == 130
    assert processes["kill"].wait(timeout=60) == -signal.SIGKILL
    # Ctrl-C says what was kept and the exact command that goes on from there.
    said = processes["ctrl-c"].stderr.read().decode()
    go_on = f"1 of 8 records written to {outs['ctrl-c']}; go on with: tpdoc batch {folder}"
    assert go_on in said and said.rstrip().endswith("--resume\ninterrupted"), said
    for out in outs.values():
        data = out.read_bytes()
        assert data.endswith(b"\n")
        kept = lines(data.decode())
        assert len(kept) == 1  # of 4 documents x 2 questions: signalled after the first
        pairs = {(r["file"], r["question"]) for r in kept}
        resumed = runner.invoke(
            app,
            batch_args(
                tiny_model_dir,
                str(folder),
                "-q",
                QUESTION,
                "-q",
                "Who?",
                "--out",
                str(out),
                "--resume",
            ),  # fmt: skip
        )
        assert resumed.exit_code == 0, resumed.stderr
        keys = [(r["file"], r["question"]) for r in lines(out.read_text())]
        assert len(keys) == len(set(keys)) == 8
        assert pairs <= set(keys)
        assert f"{len(kept)} skipped" in resumed.stderr


def test_the_bar_moves_page_by_page_and_a_ranked_document_counts_its_overviews_as_half():
    from tpdoc.cli.live import BatchProgress

    bar = BatchProgress(2, "answering")
    task = bar.progress.tasks[0]
    bar.page("a", "ranking", 3, 6)
    assert task.completed == pytest.approx(0.25)
    bar.page("a", "reading", 1, 3)
    assert task.completed == pytest.approx(0.5 + 0.5 / 3)
    bar.page("b", "reading", 1, 2)
    assert task.completed == pytest.approx(0.5 + 0.5 / 3 + 0.5)
    bar.advance(3, "a")  # its record: the pair is done, its pages already counted
    assert task.completed == pytest.approx(1.5) and bar.pages == 3
    bar.advance(4)  # a record the pages were not reported for (the Ray engine)
    assert task.completed == pytest.approx(2.5) and bar.pages == 7
