"""Chat sessions: pages encoded once, the KV cache of the document reused so a follow-up
runs the language model over its own tokens only, with the same answers as `ask`."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from tests.conftest import forward_lengths, make_pdf, tiny_model_config
from tpdoc.answering.chat import ChatSession
from tpdoc.answering.qa import DocumentQA
from tpdoc.answering.results import AskOptions
from tpdoc.cli import app
from tpdoc.errors import UsageError
from tpdoc.model.document_model import DocumentModel

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
