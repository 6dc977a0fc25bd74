"""`tpdoc ask`: output for pipes, terminals and --json; the question from stdin; and every
error a user can cause as one line on stderr with nothing on stdout."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import make_pdf
from tests.test_pages import png_header_only
from tpdoc.cli import app, main
from tpdoc.weights.checkpoint import WEIGHTS_FILE
from tpdoc.weights.registry import DEFAULT_MODEL, EMBEDDED_DIR

QUESTION = "What is the total?"


@pytest.fixture(scope="module")
def pdf(tmp_path_factory) -> Path:
    return make_pdf(tmp_path_factory.mktemp("ask") / "doc.pdf", [(300.0, 300.0), (200.0, 400.0)])


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def scripted_cli(scripted_model, monkeypatch):
    """``--model scripted`` loads a scripted model: answers depend on the question."""

    def script(text: str, visual: int) -> tuple[str, float]:
        # doc.pdf: page 1 is 10 views of 4 tokens, page 2 is 9; one tile is 1 view.
        if "total" not in text:
            return ("ACME Corp", -0.7)
        if visual > 38:
            return ("1,234.56", -0.2)
        return ("12.00", -1.5) if visual > 30 else ("small", -3.0)

    model = scripted_model(script)
    import tpdoc.weights.loading
    import tpdoc.weights.registry

    real = tpdoc.weights.loading.load_document_model
    monkeypatch.setattr(
        tpdoc.weights.loading,
        "load_document_model",
        lambda spec, **kw: model if spec == "scripted" else real(spec, **kw),
    )
    # Its config.json, as the checks made before loading read it.
    real_config = tpdoc.weights.registry.load_config
    monkeypatch.setattr(
        tpdoc.weights.registry,
        "load_config",
        lambda spec=None, **kw: model.config if spec == "scripted" else real_config(spec, **kw),
    )
    return model


def ask(runner: CliRunner, *args: str, stdin: str | None = None):
    return runner.invoke(app, ["ask", *args], input=stdin)


def test_piped_output_is_the_answer_and_a_newline(runner, pdf, scripted_cli):
    result = ask(runner, str(pdf), QUESTION, "--model", "scripted")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "1,234.56\n" and result.stderr == ""
    both = ask(runner, str(pdf), QUESTION, "-m", "scripted", "--all-pages", "--plain")
    assert both.stdout == "1\t1,234.56\n2\t12.00\n"


def test_question_from_stdin(runner, pdf, scripted_cli):
    result = ask(runner, str(pdf), "-", "--model", "scripted", stdin="Who issued it?\n")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "ACME Corp\n"


def test_question_from_a_pipe_is_read_without_a_note(runner, pdf, scripted_cli):
    result = ask(runner, str(pdf), "-", "--model", "scripted", stdin="   \n")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == "error: the question is empty\n"  # no "reading the question"


def test_question_from_a_terminal_says_it_reads_stdin(pdf):
    """On a terminal, ``ask FILE -`` says on stderr what it waits for before it waits."""
    import pty
    import select

    controller, terminal = pty.openpty()
    command = [sys.executable, "-m", "tpdoc.cli", "ask", str(pdf), "-"]
    with subprocess.Popen(command, stdin=terminal, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) as process:  # fmt: skip
        os.close(terminal)
        try:
            ready, _, _ = select.select([process.stderr], [], [], 60)
            assert ready, "nothing on stderr while waiting for the question"
            first = process.stderr.readline().decode()
            assert first == "reading the question from stdin; end it with Ctrl-D\n"
            os.write(controller, b"\x04")  # Ctrl-D at once: an empty question
            out, err = process.communicate(timeout=60)
        finally:
            os.close(controller)
            process.kill()
    assert process.returncode == 2 and out == b""
    assert err.decode() == "error: the question is empty\n"


@pytest.mark.parametrize("command", ["ask", "batch"])
def test_more_tiles_than_the_model_takes_is_refused(runner, pdf, monkeypatch, command):
    """The embedded model is made for at most 16 tiles: 25 is refused from its config.json,
    before the weights are read (asking went on past the cap, silently, for 44 s)."""
    import tpdoc.weights.checkpoint

    def no_weights(*args, **kwargs):
        raise AssertionError("the weights were read")

    monkeypatch.setattr(tpdoc.weights.checkpoint, "read_safetensors", no_weights)
    question = [QUESTION] if command == "ask" else ["-q", QUESTION]
    result = runner.invoke(app, [command, str(pdf), *question, "--max-tiles", "25"])
    assert result.exit_code == 2 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line == (
        f"error: --max-tiles 25: model {DEFAULT_MODEL} takes at most 16 tiles (max_tiles in "
        "its config.json); ask with --max-tiles 16 or fewer"
    )


def test_json_is_one_object_with_the_documented_fields(runner, pdf, scripted_cli):
    result = ask(runner, str(pdf), QUESTION, "-m", "scripted", "--json", "--all-pages")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert result.stdout.count("\n") == 1 and result.stderr == ""
    assert (data["file"], data["question"], data["answer"], data["page"]) == (
        str(pdf), QUESTION, "1,234.56", 1,
    )  # fmt: skip
    assert data["confidence"] == pytest.approx(-0.2)
    assert [(p["page"], p["answer"]) for p in data["pages"]] == [(1, "1,234.56"), (2, "12.00")]
    assert set(data["tokens"]) == {
        "visual", "visual_uncompressed", "text", "context", "context_limit",
    }  # fmt: skip
    assert set(data["timings"]) >= {"render", "vision", "packer", "prefill", "decode"}
    assert data["model"] == "scripted"  # as --model named it


def test_terminal_gets_a_panel_and_one_summary_line(runner, pdf, scripted_cli, monkeypatch):
    """Quiet by default: the panel on stdout, one line on stderr (no per-page table)."""
    monkeypatch.setattr("tpdoc.cli.live.stdout_is_terminal", lambda: True)
    result = ask(runner, str(pdf), QUESTION, "-m", "scripted")
    assert result.exit_code == 0, result.stderr
    assert "1,234.56" in result.stdout and "page 1" in result.stdout
    data = json.loads(ask(runner, str(pdf), QUESTION, "-m", "scripted", "--json").stdout)
    tokens = data["tokens"]
    (line,) = result.stderr.splitlines()
    share = f"{tokens['visual'] / tokens['visual_uncompressed']:.0%}"
    assert line.startswith(
        f"2 pages · {tokens['visual']:,} visual tokens with TokenPacker, "
        f"{tokens['visual_uncompressed']:,} uncompressed ({share}) · "
        f"context {tokens['context']:,} / 2,048 · "
    )
    assert re.search(r" · \d+\.\d\ds$", line), line
    assert "token budget" not in result.stderr and "prefill" not in result.stderr
    down = ask(runner, str(pdf), QUESTION, "-m", "scripted", "--budget", "46")
    assert down.stderr.rstrip().endswith(" · ↓ planned down to fit --budget 46")


@pytest.mark.parametrize("mode", ["--plain", "--json"])
def test_report_goes_to_stderr_and_leaves_stdout_alone(runner, pdf, scripted_cli, mode):
    """``--report`` (``-v``) adds the table on stderr; stdout is what it was without it."""
    args = [str(pdf), QUESTION, "-m", "scripted", mode]
    quiet, loud = ask(runner, *args), ask(runner, *args, "-v")
    assert quiet.exit_code == loud.exit_code == 0, loud.stderr
    assert quiet.stderr == "" and "token budget" in loud.stderr and "prefill" in loud.stderr
    if mode == "--plain":
        assert loud.stdout == quiet.stdout == "1,234.56\n"
    else:  # the same record (the seconds aside)
        before, after = json.loads(quiet.stdout), json.loads(loud.stdout)
        assert {**before, "timings": None} == {**after, "timings": None}
        assert set(before["timings"]) == set(after["timings"])


def test_report_on_a_terminal_is_the_per_page_table(runner, pdf, scripted_cli, monkeypatch):
    monkeypatch.setattr("tpdoc.cli.live.stdout_is_terminal", lambda: True)
    args = [str(pdf), QUESTION, "-m", "scripted", "--budget", "46", "--all-pages", "--report"]
    result = ask(runner, *args)
    assert result.exit_code == 0, result.stderr
    # Page 1 (50 positions) is planned down to one tile; page 2 (45) now answers best.
    assert "12.00" in result.stdout and "page 2" in result.stdout and "small" in result.stdout
    assert "confidence" in result.stdout and "answers per page" in result.stdout
    report = result.stderr
    for text in ("token budget", "grid", "uncompressed", "prompt", "context / limit", "2,048"):
        assert text in report
    for stage in ("render", "vision", "packer", "prefill", "decode"):
        assert stage in report
    assert "planned down to fit --budget 46" in report


def test_real_tiny_model_answers_through_the_cli(runner, pdf, tiny_model_dir):
    args = [str(pdf), QUESTION, "--model", str(tiny_model_dir), "--max-new-tokens", "3"]
    plain = ask(runner, *args)
    data = json.loads(ask(runner, *args, "--json").stdout)
    assert plain.exit_code == 0, plain.stderr
    assert plain.stdout == data["answer"] + "\n"
    assert data["model"] == str(tiny_model_dir) and data["tokens"]["context_limit"] == 2048


def test_default_model_without_weights_fails_clearly(runner, pdf, tmp_path, monkeypatch):
    import shutil

    # An install whose embedded folder lost its weights (the config is still there).
    bare = tmp_path / "embedded" / DEFAULT_MODEL
    bare.mkdir(parents=True)
    shutil.copy(EMBEDDED_DIR / DEFAULT_MODEL / "config.json", bare)
    monkeypatch.setattr("tpdoc.weights.registry.EMBEDDED_DIR", tmp_path / "embedded")
    result = ask(runner, str(pdf), QUESTION)
    assert result.exit_code == 1 and result.stdout == ""
    assert "tpdoc-tiny" in result.stderr and "model.safetensors" in result.stderr


# ------------------------------------------------------------------------------ errors


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _truncated(d: Path) -> Path:
    full = make_pdf(d / "full.pdf", [(300.0, 300.0)] * 3)
    return _write(d / "cut.pdf", full.read_bytes()[: full.stat().st_size // 2])


def _encrypted(d: Path) -> Path:
    import pymupdf

    doc = pymupdf.open()
    doc.new_page(width=100, height=100).insert_text((10, 50), "secret")
    doc.save(d / "secret.pdf", encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="pw", owner_pw="o")
    doc.close()
    return d / "secret.pdf"


DOCUMENT_ERRORS = {
    "missing": (lambda d: d / "missing.pdf", "no such file"),
    "directory": (lambda d: d, "is a directory"),
    "unsupported": (lambda d: _write(d / "notes.txt", b"plain text"), "not a PDF or an image"),
    "not-a-pdf": (lambda d: _write(d / "fake.pdf", b"hello, not a pdf"), "not a PDF"),
    "truncated": (_truncated, "truncated PDF"),
    "empty": (lambda d: _write(d / "empty.pdf", b""), "file is empty"),
    "encrypted": (_encrypted, "encrypted PDF and no password given; pass the password"),
    "corrupt-image": (
        lambda d: _write(d / "broken.png", png_header_only(50, 50) + b"garbage"),
        "damaged PNG",
    ),
    "huge-image": (lambda d: _write(d / "huge.png", png_header_only(20000, 10000)), "exceeds"),
}


@pytest.mark.parametrize("case", list(DOCUMENT_ERRORS))
def test_bad_documents_are_one_line_exit_1(runner, tmp_path, case, scripted_cli):
    make, message = DOCUMENT_ERRORS[case]
    path = make(tmp_path)
    result = ask(runner, str(path), QUESTION, "--model", "scripted")
    assert result.exit_code == 1
    assert result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and str(path) in line and message in line


def test_document_errors_come_before_loading_the_model(runner, tmp_path):
    no_model = str(tmp_path / "no-model")
    missing = ask(runner, str(tmp_path / "missing.pdf"), QUESTION, "-m", no_model)
    assert missing.exit_code == 1 and "missing.pdf: no such file" in missing.stderr


def test_encrypted_pdf_opens_with_the_password_or_its_variable(runner, tmp_path, monkeypatch):
    path = _encrypted(tmp_path)
    wrong = ask(runner, str(path), QUESTION, "--password", "nope", "-m", str(tmp_path / "x"))
    assert wrong.exit_code == 1 and "wrong password" in wrong.stderr
    monkeypatch.setenv("TPDOC_PDF_PASSWORD", "pw")
    # The document opens; the next failure is the missing model.
    right = ask(runner, str(path), QUESTION, "-m", str(tmp_path / "x"))
    assert right.exit_code == 1 and "no such model folder" in right.stderr


USAGE_ERRORS = {
    "empty question": (["  "], "question is empty"),
    "image placeholder": (["What is <image>?"], "the question contains <image>"),
    "page out of range": ([QUESTION, "--pages", "5"], "'5' is out of range"),
    "malformed page spec": ([QUESTION, "--pages", "1,,x"], "item 2 is empty"),
    "max-tiles": ([QUESTION, "--max-tiles", "10"], "--max-tiles"),
    "scale": ([QUESTION, "--scale", "5"], "--scale"),
    "budget": ([QUESTION, "--budget", "0"], "--budget"),
    "json and plain": ([QUESTION, "--json", "--plain"], "--json and --plain"),
}


@pytest.mark.parametrize("case", list(USAGE_ERRORS))
def test_usage_errors_are_one_line_exit_2(capsys, pdf, tmp_path, case):
    args, message = USAGE_ERRORS[case]
    code = main(["ask", str(pdf), *args, "--model", str(tmp_path / "no-model")])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    (line,) = captured.err.strip().splitlines()
    assert message in line


def test_scale_the_model_was_not_trained_for(runner, pdf, scripted_cli):
    result = ask(runner, str(pdf), QUESTION, "-m", "scripted", "--scale", "4")
    assert result.exit_code == 2 and result.stdout == ""
    assert "--scale 4: model scripted works at scale 2 only" in result.stderr


def test_budget_below_one_tile(runner, pdf, scripted_cli):
    result = ask(runner, str(pdf), QUESTION, "-m", "scripted", "--budget", "3")
    assert result.exit_code == 2
    assert "--budget 3: page 1 does not fit in 3 visual tokens, not even as one tile" in (
        result.stderr
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scale", "4"], "--scale 4: model {model} works at scale 2 only"),
        (["--budget", "3"], "--budget 3: page 1 does not fit in 3 visual tokens, not even as one"),
    ],
)
@pytest.mark.parametrize("command", ["ask", "chat"])
def test_scale_and_budget_fail_before_the_weights_load(
    runner, pdf, tiny_model_dir, monkeypatch, command, args, message
):
    import tpdoc.weights.loading

    loaded: list[str] = []
    monkeypatch.setattr(
        tpdoc.weights.loading, "load_document_model", lambda spec, **_: loaded.append(spec)
    )
    question = [QUESTION] if command == "ask" else []
    result = runner.invoke(app, [command, str(pdf), *question, "-m", str(tiny_model_dir), *args])
    assert result.exit_code == 2 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert message.format(model=tiny_model_dir) in line
    assert loaded == []  # refused from config.json alone


def test_model_folder_errors(runner, pdf, tmp_path):
    missing = ask(runner, str(pdf), QUESTION, "--model", str(tmp_path / "nope"))
    assert missing.exit_code == 1 and "nope" in missing.stderr and missing.stdout == ""
    (tmp_path / "empty-model").mkdir()
    not_model = ask(runner, str(pdf), QUESTION, "--model", str(tmp_path / "empty-model"))
    assert not_model.exit_code == 1 and "not a model folder" in not_model.stderr
    assert len(not_model.stderr.strip().splitlines()) == 1


def test_debug_variable_shows_the_traceback(runner, pdf, tmp_path, monkeypatch):
    monkeypatch.setenv("TPDOC_DEBUG", "1")
    result = ask(runner, str(tmp_path / "missing.pdf"), QUESTION)
    from tpdoc.errors import DocumentNotFoundError

    assert isinstance(result.exception, DocumentNotFoundError)


def test_debug_variable_puts_the_traceback_on_stderr_of_the_command(tmp_path):
    missing = str(tmp_path / "missing.pdf")
    command = [sys.executable, "-m", "tpdoc.cli", "ask", missing, QUESTION]
    runs = {}
    for debug in ("", "1"):
        env = {**os.environ, "TPDOC_DEBUG": debug}
        runs[debug] = subprocess.run(command, env=env, capture_output=True, text=True)
    quiet, loud = runs[""], runs["1"]
    assert quiet.returncode == 1 and quiet.stdout == "" and "Traceback" not in quiet.stderr
    (line,) = quiet.stderr.strip().splitlines()
    assert line == f"error: {missing}: no such file"
    assert loud.returncode != 0 and loud.stdout == ""
    assert "Traceback (most recent call last)" in loud.stderr
    assert f"DocumentNotFoundError: {missing}: no such file" in loud.stderr


def test_help_is_fast_and_imports_nothing_heavy():
    code = (
        "import sys; from tpdoc.cli import main\n"
        "for args in (['--help'], ['ask', '--help'], ['batch', '--help'], ['--version']):\n"
        "    main(args)\n"
        "heavy = {'torch', 'transformers', 'pymupdf'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "Answer a question about a document" in out.stdout
    # Fast: against a bare interpreter's start on the same (possibly busy) machine, best
    # of three each, so a slowdown that hits both does not fail it (--help takes about 30
    # bare starts; importing torch alone well over a second more).
    help_seconds = min(_wall_seconds([sys.executable, "-c", code]) for _ in range(3))
    bare_seconds = min(_wall_seconds([sys.executable, "-c", "pass"]) for _ in range(3))
    assert help_seconds < 1.0 + 30 * bare_seconds, (help_seconds, bare_seconds)


def _wall_seconds(command: list[str]) -> float:
    import time

    start = time.perf_counter()
    subprocess.run(command, capture_output=True, check=True)
    return time.perf_counter() - start


@pytest.mark.skipif(
    not (EMBEDDED_DIR / DEFAULT_MODEL / WEIGHTS_FILE).is_file(),
    reason="embedded weights not shipped yet",
)
@pytest.mark.xfail(
    strict=True,  # a model that passes must say so: remove this mark then
    reason="issue 4's target, not reached yet: the shipped tpdoc-tiny reads lines but does not "
    "answer questions (see its model card for the measured figures)",
)
def test_embedded_model_answers_the_sample_questions(runner):
    """End to end with the real embedded model on samples/: every question answered."""
    from tpdoc.answering.anls import anls

    samples = Path(__file__).parent.parent / "samples"
    result = runner.invoke(
        app, ["batch", "--questions", str(samples / "questions.jsonl"), "--no-cache", "--json"]
    )
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    expected = {
        json.loads(line)["id"]: json.loads(line)
        for line in (samples / "questions.jsonl").read_text().splitlines()
    }
    assert sorted(r["id"] for r in records) == sorted(expected)
    scores = [anls(r["answer"], expected[r["id"]]["answers"]) for r in records]
    answers = [r["answer"] for r in records]
    assert sum(scores) / len(scores) > 0.5, list(zip(answers, scores, strict=True))


def test_answers_are_shown_literally_not_as_markup(runner, pdf, scripted_model, monkeypatch):
    model = scripted_model(lambda _text, _visual: ("[red]42[/red]", -0.1))
    monkeypatch.setattr("tpdoc.weights.loading.load_document_model", lambda spec, **kw: model)
    monkeypatch.setattr("tpdoc.cli.live.stdout_is_terminal", lambda: True)
    result = ask(runner, str(pdf), QUESTION, "--all-pages")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("[red]42[/red]") == 3  # the panel and both table rows


def test_an_unwritable_cache_is_a_warning(runner, pdf, scripted_cli, tmp_path, monkeypatch):
    blocker = tmp_path / "cache-is-a-file"
    blocker.write_text("")
    monkeypatch.setenv("TPDOC_CACHE", str(blocker))
    result = ask(runner, str(pdf), QUESTION, "-m", "scripted")
    assert result.exit_code == 0 and result.stdout == "1,234.56\n"
    assert result.stderr.startswith("warning: visual-token cache not written")


def test_the_streaming_panel_never_grows_taller_than_the_screen():
    """A live display taller than the screen cannot be redrawn: the panel shows the last
    lines that fit while the answer streams; the final panel is printed whole."""
    import io

    from rich.console import Console

    from tpdoc.cli.live import LiveAnswer

    console = Console(file=io.StringIO(), width=40, height=12, force_terminal=True)
    live = LiveAnswer(console, "a question\nover two lines")
    words = " ".join(f"word{i}" for i in range(200))
    live.update(1, words)
    shown = [
        "".join(segment.text for segment in line)
        for line in console.render_lines(live._render(), console.options)
    ]
    assert len(shown) < console.height  # one line spare for the cursor
    assert "word199" in shown[-3] and "word0 " not in "".join(shown)
    assert "lines above" in shown[1] and "a question over two lines" in shown[0]
    assert "reading the document" in shown[-2]  # the work going on, under the answer
    live.update(2, "second page")  # several pages: still within the screen
    live.progress("ranking", 2, 36)
    shown = [
        "".join(segment.text for segment in line)
        for line in console.render_lines(live._render(), console.options)
    ]
    assert len(shown) < console.height
    assert "ranking pages by overview: 2 of 36" in shown[-2]


@pytest.fixture(scope="module")
def long_pdf(tmp_path_factory) -> Path:
    return make_pdf(tmp_path_factory.mktemp("long") / "long.pdf", [(300.0, 300.0)] * 8)


def test_a_long_document_says_what_it_will_cost_and_shows_progress_when_asked(
    runner, long_pdf, scripted_cli
):
    quiet = ask(runner, str(long_pdf), QUESTION, "-m", "scripted")
    assert quiet.exit_code == 0 and quiet.stdout == "1,234.56\n" and quiet.stderr == ""
    shown = ask(runner, str(long_pdf), QUESTION, "-m", "scripted", "--progress")
    assert shown.exit_code == 0 and shown.stdout == "1,234.56\n"
    note, *bars = shown.stderr.splitlines()
    assert note == (
        "8 pages: ranking them by a one-tile overview each, then reading the best 3 in full "
        "(--shortlist N to change, --all-pages to read every page)"
    )
    assert any("ranking pages" in b and "8/8" in b for b in bars)
    assert any("reading pages" in b and "3/3" in b for b in bars)
    every = ask(runner, str(long_pdf), QUESTION, "-m", "scripted", "--shortlist", "0", "--progress")
    assert every.stderr.splitlines()[0] == "asking 8 pages at full resolution; narrow with --pages"
    record = json.loads(ask(runner, str(long_pdf), QUESTION, "-m", "scripted", "--json").stdout)
    assert record["shortlist"]["ranked"] == 8 and len(record["shortlist"]["read"]) == 3


def test_the_command_line_default_shortlist_is_the_library_default():
    from tpdoc.answering.results import DEFAULT_SHORTLIST
    from tpdoc.cli.ask import DEFAULT_SHORTLIST as CLI_DEFAULT

    assert CLI_DEFAULT == DEFAULT_SHORTLIST
