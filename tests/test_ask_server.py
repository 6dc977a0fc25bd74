"""`tpdoc ask --server`: what it prints equals what a local `ask` prints (the terminal
panel and report, piped answers, `--json`), its errors equal local ones, it refuses what
only a local model can do, gives up on a server that does not answer, and imports
nothing heavy when piped. The server is a real one on loopback (tests/serving_fixtures.py)."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from tests.conftest import make_pdf
from tests.serving import comparable
from tests.test_cli_ask import DOCUMENT_ERRORS, QUESTION, USAGE_ERRORS
from tpdoc.cli import app as cli_app
from tpdoc.errors import CorruptDocumentError, DocumentNotFoundError
from tpdoc.serve.client import read_document

pytest_plugins = ["tests.serving_fixtures"]  # the fixtures real, scripted and docs


def _ask(runner: CliRunner, *args: str, env: dict[str, str] | None = None):
    return runner.invoke(cli_app, ["ask", *args], env=env)


def _timeless(text: str) -> str:
    return re.sub(r"\d+\.\d{3}s", "#s", text)


@pytest.mark.parametrize("flags", [[], ["--json"], ["--all-pages"], ["--json", "--all-pages"]])
def test_ask_server_prints_what_a_local_ask_prints(real, tiny_model_dir, tmp_path, flags):
    path = make_pdf(tmp_path / "asked.pdf", [(300.0, 300.0), (200.0, 400.0)], text=str(flags))
    runner = CliRunner()
    args = [str(path), QUESTION, "--max-new-tokens", "3", *flags]
    local = _ask(runner, *args, "--model", str(tiny_model_dir))
    served = _ask(runner, *args, "--server", real.url)
    assert local.exit_code == served.exit_code == 0, served.stderr
    assert served.stderr == local.stderr == ""
    if "--json" in flags:
        assert comparable(json.loads(served.stdout)) == comparable(json.loads(local.stdout))
    else:
        assert served.stdout == local.stdout


def test_ask_server_on_a_terminal_shows_the_same_panel_and_report(
    real, tiny_model_dir, tmp_path, monkeypatch
):
    monkeypatch.setattr("tpdoc.cli.live.stdout_is_terminal", lambda: True)
    path = make_pdf(tmp_path / "shown.pdf", [(300.0, 300.0), (200.0, 400.0)], text="terminal")
    runner = CliRunner()
    # --report: the per-page table and timings, as a local ask shows them
    args = [str(path), QUESTION, "--max-new-tokens", "3", "--all-pages", "--budget", "46", "-v"]
    local = _ask(runner, *args, "--model", str(tiny_model_dir))
    served = _ask(runner, *args, env={"TPDOC_SERVER": f"{real.url}/v1/"})
    assert local.exit_code == served.exit_code == 0, served.stderr
    assert "token budget" in served.stderr and "answers per page" in served.stdout
    assert served.stdout == local.stdout
    assert _timeless(served.stderr) == _timeless(local.stderr)


@pytest.mark.parametrize("case", list(DOCUMENT_ERRORS))
def test_ask_server_reports_bad_documents_as_a_local_ask_does(
    scripted, tiny_model_dir, tmp_path, case
):
    served, _ = scripted
    path = DOCUMENT_ERRORS[case][0](tmp_path)
    runner = CliRunner()
    local = _ask(runner, str(path), QUESTION, "--model", str(tiny_model_dir))
    remote = _ask(runner, str(path), QUESTION, "--server", served.url)
    assert local.exit_code == 1, local.stderr
    assert (remote.exit_code, remote.stdout, remote.stderr) == (1, "", local.stderr)


@pytest.mark.parametrize("case", list(USAGE_ERRORS))
def test_ask_server_reports_usage_errors_as_a_local_ask_does(scripted, docs, case):
    served, _ = scripted
    args, _ = USAGE_ERRORS[case]
    runner = CliRunner()
    local = _ask(runner, str(docs[0]), *args, "--model", "no-such-model-folder")
    remote = _ask(runner, str(docs[0]), *args, "--server", served.url)
    assert local.exit_code == 2, local.stderr
    assert (remote.exit_code, remote.stdout, remote.stderr) == (2, "", local.stderr)


def test_ask_server_refuses_what_only_a_local_model_can_do(scripted, docs):
    served, _ = scripted
    runner = CliRunner()
    result = _ask(runner, str(docs[0]), QUESTION, "--server", served.url, "-m", "x", "--no-cache")
    assert result.exit_code == 2 and "--model, --no-cache: not with --server" in result.stderr


def test_ask_server_without_a_server_is_one_line(docs):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: connections are refused
        result = _ask(CliRunner(), str(docs[0]), QUESTION, "--server", f"http://127.0.0.1:{port}")
    assert result.exit_code == 1 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert f"cannot reach the tpdoc server at http://127.0.0.1:{port}" in line
    bad = _ask(CliRunner(), str(docs[0]), QUESTION, "--server", "127.0.0.1:8765")
    assert bad.exit_code == 2 and "is not an http:// URL" in bad.stderr


def test_ask_server_imports_neither_torch_nor_the_server(real, docs):
    code = (
        "import sys; from tpdoc.cli import main\n"
        f"code = main(['ask', {str(docs[2])!r}, 'What?', '--server', {real.url!r}, "
        "'--max-new-tokens', '2'])\n"
        "heavy = {'torch', 'transformers', 'pymupdf', 'fastapi'} & set(sys.modules)\n"
        "assert code == 0 and not heavy, (code, heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 1  # the answer, piped


def test_ask_server_gives_up_on_a_server_that_does_not_answer(docs):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # connections are taken (by the system), never answered
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        runner = CliRunner()
        args = [str(docs[0]), QUESTION, "--server", url]
        late = _ask(runner, *args, env={"TPDOC_SERVER_TIMEOUT": "0.5"})
        bad = _ask(runner, *args, env={"TPDOC_SERVER_TIMEOUT": "soon"})
    assert late.exit_code == 1 and late.stdout == ""
    (line,) = late.stderr.strip().splitlines()
    assert f"the tpdoc server at {url} did not answer within 0.5 s" in line
    assert "set TPDOC_SERVER_TIMEOUT to wait longer" in line
    assert bad.exit_code == 2
    assert "TPDOC_SERVER_TIMEOUT: 'soon' is not a number of seconds" in bad.stderr


def test_the_client_checks_files_with_the_librarys_typed_errors(tmp_path):
    with pytest.raises(DocumentNotFoundError, match="missing.pdf: no such file"):
        read_document(tmp_path / "missing.pdf")
    (tmp_path / "empty.pdf").touch()
    with pytest.raises(CorruptDocumentError, match="empty.pdf: file is empty"):
        read_document(tmp_path / "empty.pdf")
