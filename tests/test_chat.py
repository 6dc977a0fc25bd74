"""Chat sessions: pages encoded once, the KV cache of the document reused so a follow-up
runs the language model over its own tokens only, with the same answers as `ask`."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from tests.conftest import forward_lengths, interruptible, make_pdf, tiny_model_config
from tpdoc.answering.chat import ChatSession
from tpdoc.answering.qa import DocumentQA
from tpdoc.answering.results import AskOptions
from tpdoc.cli import app
from tpdoc.cli.chat import STOPPED
from tpdoc.errors import UsageError
from tpdoc.model.document_model import DocumentModel

# The chat prompt at the start of a line (questions in a /report table end in "? " too)
PROMPT = r"(?:^|\n)\? "

FIRST, FOLLOW_UP = "What is the total?", "Who issued the invoice number?"


@pytest.fixture(scope="module")
def model(tiny_tokenizer) -> DocumentModel:
    torch.manual_seed(0)
    return DocumentModel.from_config(tiny_model_config(tiny_tokenizer), tiny_tokenizer).eval()


@pytest.fixture(scope="module")
def pdf(tmp_path_factory) -> Path:
    return make_pdf(tmp_path_factory.mktemp("chat") / "doc.pdf", [(300.0, 300.0), (200.0, 400.0)])


def test_follow_ups_cost_only_their_own_tokens_and_match_ask(model, pdf):
    qa = DocumentQA(model, cache=False)
    options = AskOptions(pages="2", max_new_tokens=4)
    vision = []
    model.vision.register_forward_hook(lambda *_: vision.append(1))
    session = ChatSession(qa, pdf, options)
    try:
        with forward_lengths(model.language_model) as lengths:
            first = session.ask(FIRST)
            first_lengths, lengths[:] = list(lengths), []
            follow = session.ask(FOLLOW_UP)
            follow_lengths = list(lengths)
    finally:
        model.vision._forward_hooks.clear()
    assert vision == [1]  # the pages were encoded once, at the start
    page = session.pages[2]
    prompt = model.prompt_ids(FOLLOW_UP)
    prefix = len(prompt.before) + page.plan.visual_tokens
    # First question: the prefix, then its own tokens; the follow-up: its own tokens only.
    assert first_lengths[:2] == [prefix, len(model.prompt_ids(FIRST).after)]
    assert follow_lengths[0] == len(prompt.after) and max(follow_lengths) == len(prompt.after)
    assert [t.reused_prefix for t in session.turns] == [False, True]
    assert all(t.first_token_seconds > 0 for t in session.turns)
    for turn, question in ((first, FIRST), (follow, FOLLOW_UP)):
        alone = qa.ask(pdf, question, pages="2", max_new_tokens=4)
        assert turn.answer == alone.answer
        assert turn.confidence == pytest.approx(alone.confidence, abs=1e-4)


def test_page_selection_and_question_limits(model, pdf):
    session = ChatSession(DocumentQA(model, cache=False), pdf, AskOptions(max_new_tokens=2))
    assert list(session.pages) == [1, 2]
    both = session.ask(FIRST)
    assert [p.page for p in both.pages] == [1, 2]
    session.select(2)
    assert [p.page for p in session.ask(FIRST).pages] == [2]
    with pytest.raises(UsageError, match=r"/page 3: not an encoded page \(pages: 1, 2\)"):
        session.select(3)
    session.select(None)
    assert session.selected == [1, 2]
    with pytest.raises(UsageError, match="question is empty"):
        session.ask("  ")
    with pytest.raises(UsageError, match="the question is too long"):
        session.ask("word " * 3000)


def test_chat_command_answers_lines_and_reports(tiny_model_dir, pdf):
    lines = "\n".join(
        [FIRST, "/page 2", FOLLOW_UP, "/page 9", "/page x", "/nope", "/page all", "/report"]
        + ["/quit", "after"]
    )
    args = ["chat", str(pdf), "--model", str(tiny_model_dir), "--max-new-tokens", "2"]
    result = CliRunner().invoke(app, args, input=lines + "\n")
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.splitlines()) == 2  # two answers; nothing after /quit
    err = result.stderr
    assert "2 page(s) ready" in err and "asking page(s) 2\n" in err
    assert "asking page(s) 1, 2" in err
    assert "/page 9: not an encoded page" in err and "/page needs a page number" in err
    assert "unknown command /nope" in err
    assert "questions so far" in err and "computed" in err and "first token" in err


def test_chat_ends_at_end_of_input(tiny_model_dir, pdf):
    args = ["chat", str(pdf), "--model", str(tiny_model_dir), "--max-new-tokens", "2"]
    result = CliRunner().invoke(app, args, input=f"{FIRST}\n")
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 1


def test_chat_document_errors_exit_before_the_session(tmp_path):
    result = CliRunner().invoke(app, ["chat", str(tmp_path / "missing.pdf")])
    assert result.exit_code == 1 and "no such file" in result.stderr and result.stdout == ""


def test_an_unwritable_cache_is_a_warning_in_chat(tiny_model_dir, pdf, tmp_path, monkeypatch):
    blocker = tmp_path / "cache-is-a-file"
    blocker.write_text("")
    monkeypatch.setenv("TPDOC_CACHE", str(blocker))
    args = ["chat", str(pdf), "--model", str(tiny_model_dir), "--max-new-tokens", "2"]
    result = CliRunner().invoke(app, args, input=f"{FIRST}\n")
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 1
    assert result.stderr.startswith("warning: visual-token cache not written")


# --------------------------------------------------------- a person at a terminal


def chat_args(pdf: Path, model_dir: Path) -> list[str]:
    return ["chat", str(pdf), "--model", str(model_dir), "--max-new-tokens", "2"]


def interrupt_first_answer(monkeypatch) -> None:
    """Ctrl-C (a ``KeyboardInterrupt``) once the first answer has begun to stream."""
    real = DocumentModel.generate
    pending = [True]

    class Interrupting:
        def __init__(self, inner) -> None:
            self.inner, self.puts = inner, 0

        def put(self, value) -> None:
            self.inner.put(value)
            self.puts += 1
            if self.puts == 2:  # the prompt, then the first answer token
                raise KeyboardInterrupt

        def end(self) -> None:
            self.inner.end()

    def generate(self, *args, streamer=None, **kwargs):
        if pending and streamer is not None:
            pending.clear()
            streamer = Interrupting(streamer)
        return real(self, *args, streamer=streamer, **kwargs)

    monkeypatch.setattr(DocumentModel, "generate", generate)


def test_ctrl_c_at_a_terminal_stops_the_answer_and_asks_again(tiny_model_dir, pdf, monkeypatch):
    runner, lines = CliRunner(), f"{FIRST}\n{FIRST}\n/report\n"
    uninterrupted = runner.invoke(app, chat_args(pdf, tiny_model_dir), input=f"{FIRST}\n")
    monkeypatch.setattr("tpdoc.cli.lineinput.stdin_is_terminal", lambda: True)
    interrupt_first_answer(monkeypatch)
    result = runner.invoke(app, chat_args(pdf, tiny_model_dir), input=lines)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == uninterrupted.stdout  # one answer, the same as without Ctrl-C
    assert result.stderr.count(f"{STOPPED}\n") == 1
    # stdout is not a terminal, so the prompts go to stderr
    assert f"\n? {STOPPED}\n? " in result.stderr
    report = result.stderr.split("questions so far", 1)[1]
    assert report.count(FIRST) == 1  # the stopped question is not a turn


def test_ctrl_c_from_a_pipe_stops_the_session(tiny_model_dir, pdf, monkeypatch):
    interrupt_first_answer(monkeypatch)
    result = CliRunner().invoke(app, chat_args(pdf, tiny_model_dir), input=f"{FIRST}\n{FIRST}\n")
    assert result.exit_code == 130 and result.stdout == ""
    assert result.stderr.rstrip().endswith("interrupted") and "? " not in result.stderr


def test_line_reader_at_a_terminal(monkeypatch, tmp_path):
    """Ctrl-C at the prompt asks again, Ctrl-D ends; a history that cannot be written is
    not an error."""
    import builtins

    from tpdoc.cli.lineinput import LineReader

    typed = iter(["  first  ", KeyboardInterrupt, "", "second", EOFError])

    def fake_input(prompt: str) -> str:
        assert prompt == "? "
        item = next(typed)
        if isinstance(item, type):
            raise item
        return item

    monkeypatch.setattr(builtins, "input", fake_input)
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    reader = LineReader(interactive=True, editing=True, history=blocked / "history")
    if reader.readline is None:
        pytest.skip("no readline on this platform")
    with reader:
        assert list(reader) == ["first", "second"]


class PseudoTerminal:
    """``command`` run with a pseudo-terminal as its controlling terminal (stdin, stdout
    and stderr), so line editing, Ctrl-C and Ctrl-D behave as they do for a person."""

    def __init__(self, command: list[str], env: dict[str, str], rows: int = 40, cols: int = 120):
        import fcntl
        import os
        import pty
        import struct
        import subprocess
        import termios

        self.controller, terminal = pty.openpty()
        fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.process = subprocess.Popen(
            command, stdin=terminal, stdout=terminal, stderr=terminal, env=env,
            start_new_session=True,  # then take the terminal as the controlling one:
            preexec_fn=lambda: (interruptible(), fcntl.ioctl(0, termios.TIOCSCTTY, 0)),
        )  # fmt: skip
        os.close(terminal)
        self.output, self.position = "", 0

    def __enter__(self) -> PseudoTerminal:
        return self

    def __exit__(self, *exc: object) -> None:
        import os

        self.process.kill()
        self.process.wait()
        os.close(self.controller)

    def send(self, text: str) -> None:
        import os

        os.write(self.controller, text.encode())

    def expect(self, pattern: str, timeout: float = 180) -> int:
        """Wait for ``pattern`` after the last match; returns where it starts."""
        import os
        import re
        import select
        import time

        deadline = time.monotonic() + timeout
        while (found := re.compile(pattern).search(self.output, self.position)) is None:
            left = deadline - time.monotonic()
            assert left > 0, f"no {pattern!r} after {self.output[self.position :][-2000:]!r}"
            if select.select([self.controller], [], [], left)[0]:
                try:
                    chunk = os.read(self.controller, 65536)
                except OSError:  # EIO: the process closed the terminal
                    chunk = b""
                assert chunk, f"ended before {pattern!r}: {self.output[-2000:]!r}"
                self.output += chunk.decode(errors="replace")
        self.position = found.end()
        return found.start()

    def wait(self, timeout: float = 60) -> int:
        import os
        import select

        while select.select([self.controller], [], [], 1)[0]:  # drain what is left
            try:
                if not (chunk := os.read(self.controller, 65536)):
                    break
            except OSError:
                break
            self.output += chunk.decode(errors="replace")
        return self.process.wait(timeout)


def test_chat_at_a_terminal_edits_lines_and_keeps_a_history(tiny_model_dir, pdf, tmp_path):
    """In a pseudo-terminal: the up arrow brings back the last question (not ``^[[A``),
    Ctrl-C at the prompt asks again, Ctrl-D quits with exit code 0, and the history is
    saved under ``XDG_STATE_HOME``."""
    import os
    import sys

    state = tmp_path / "state"
    env = {**os.environ, "XDG_STATE_HOME": str(state), "TERM": "xterm"}
    command = [sys.executable, "-m", "tpdoc.cli", *chat_args(pdf, tiny_model_dir)]
    with PseudoTerminal(command, env=env) as term:
        term.expect(r"page\(s\) ready")
        term.expect(PROMPT)
        term.send(f"{FIRST}\r")
        term.expect("first token")
        term.expect(PROMPT)
        term.send("\x1b[A\r")  # up arrow: the same question again
        term.expect("first token")
        term.expect(PROMPT)
        term.send("/report\r")
        report = term.expect("questions so far")
        term.expect(PROMPT)
        report = term.output[report:]
        time.sleep(0.5)  # readline is reading (a Ctrl-C as the prompt is drawn can be lost)
        term.send("\x03")  # Ctrl-C at the prompt
        term.expect(r"Ctrl-D or /quit ends the session")
        term.expect(PROMPT)
        term.send("\x04")  # Ctrl-D
        code = term.wait()
    assert code == 0, term.output[-2000:]
    assert report.count(FIRST) == 2 and "reused" in report
    assert "^[[A" not in term.output and "unknown command" not in term.output
    history = (state / "tpdoc" / "chat_history").read_text()
    assert history.splitlines() == [FIRST, "/report"]  # a repeated line is kept once
