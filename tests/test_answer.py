"""The asking library: every page asked, the most confident answer wins, pages of several
documents share the model's batches, token use and timings are reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.conftest import make_pdf, tiny_model_config
from tpdoc.answering.budget import inspect_document
from tpdoc.answering.preflight import check_document
from tpdoc.answering.qa import DocumentQA, ask
from tpdoc.answering.results import AnswerResult, AskOptions, FailedRequest, Request
from tpdoc.answering.streaming import STAGES
from tpdoc.errors import EncryptedDocumentError, PageSpecError, UsageError
from tpdoc.model.document_model import DocumentModel

QUESTION = "What is the total?"
A4, SQUARE, LANDSCAPE = (595.0, 842.0), (300.0, 300.0), (842.0, 595.0)


@pytest.fixture(scope="module")
def model(tiny_tokenizer) -> DocumentModel:
    torch.manual_seed(0)
    return DocumentModel.from_config(tiny_model_config(tiny_tokenizer), tiny_tokenizer).eval()


@pytest.fixture(scope="module")
def docs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("docs")
    make_pdf(folder / "three.pdf", [A4, SQUARE, LANDSCAPE])
    make_pdf(folder / "one.pdf", [SQUARE])
    return folder


def count_calls(module: torch.nn.Module) -> list[int]:
    """Batch sizes of every forward of ``module`` (removed by the caller's teardown)."""
    calls: list[int] = []
    module.register_forward_hook(lambda _m, args, _out: calls.append(args[0].shape[0]))
    return calls


def by_visual_tokens(big: tuple[str, float], small: tuple[str, float], threshold: int):
    """A script: pages with more than ``threshold`` visual positions get ``big``."""
    return lambda _text, visual: big if visual > threshold else small


def test_every_page_is_asked_and_tokens_match_inspect(model, docs):
    result = DocumentQA(model, cache=False).ask(
        docs / "three.pdf", QUESTION, all_pages=True, max_new_tokens=3
    )
    budget = inspect_document(docs / "three.pdf", model.config.geometry)
    assert [p.page for p in result.pages] == [1, 2, 3]
    assert [p.plan.visual_tokens for p in result.pages] == [b.visual_tokens for b in budget.pages]
    prompt = model.prompt_ids(QUESTION)
    assert result.tokens.visual == budget.total_visual_tokens
    assert result.tokens.visual_uncompressed == budget.total_visual_tokens_uncompressed
    assert result.tokens.text == len(prompt)
    assert result.tokens.context == max(b.visual_tokens for b in budget.pages) + len(prompt) + 3
    assert result.tokens.context_limit == model.config.geometry.context_limit
    assert result.page in (1, 2, 3) and result.answer == result.best.answer
    assert set(result.timings) == set(STAGES) and all(t >= 0 for t in result.timings.values())


def test_json_contract(model, docs):
    result = DocumentQA(model, cache=False).ask(docs / "one.pdf", QUESTION, max_new_tokens=2)
    data = json.loads(json.dumps(result.to_json()))
    assert {
        "file",
        "question",
        "answer",
        "page",
        "confidence",
        "pages",
        "tokens",
        "timings",
    } <= set(data)
    assert data["file"] == str(docs / "one.pdf") and data["question"] == QUESTION
    assert data["pages"] is None  # only with all_pages
    assert set(data["tokens"]) >= {"visual", "visual_uncompressed", "text", "context_limit"}
    assert set(data["timings"]) >= {"render", "vision", "packer", "prefill", "decode"}
    assert data["model"] == "tiny-test" and data["confidence"] <= 0


def test_most_confident_page_wins_and_ties_go_to_the_earlier_page(scripted_model, docs):
    # three.pdf: the A4 and landscape pages have 7 views of 4 tokens, the square one 10.
    model = scripted_model(by_visual_tokens(("square", -0.1), ("oblong", -2.0), 7 * 4))
    result = DocumentQA(model, cache=False).ask(docs / "three.pdf", QUESTION, all_pages=True)
    assert (result.answer, result.page, result.confidence) == ("square", 2, pytest.approx(-0.1))
    assert [p.answer for p in result.pages] == ["oblong", "square", "oblong"]
    tie = scripted_model(lambda _text, _visual: ("same", -1.0))
    assert DocumentQA(tie, cache=False).ask(docs / "three.pdf", QUESTION, pages="3,1").page == 3


def test_pages_of_several_documents_share_one_vision_and_one_llm_batch(scripted_model, docs):
    model = scripted_model(lambda text, visual: ("x", -1.0))
    qa = DocumentQA(model, cache=False)
    vision = count_calls(model.vision)
    requests = [Request(str(docs / "three.pdf"), QUESTION), Request(str(docs / "one.pdf"), "Who?")]
    outcomes = list(qa.ask_many(requests))
    views = sum(p.plan.plan.num_views for o in outcomes for p in o.pages)
    assert vision == [views]  # one forward for the 4 pages of both files
    assert len(model.language_model.prompts) == 4
    assert [o.file for o in outcomes] == [r.file for r in requests]


def test_a_failed_request_does_not_stop_the_others(model, docs, tmp_path):
    (tmp_path / "notes.txt").write_text("not a document")
    requests = [
        Request(str(docs / "one.pdf"), QUESTION, id="a", options=AskOptions(max_new_tokens=2)),
        Request(str(tmp_path / "notes.txt"), QUESTION, id="b"),
        Request(str(docs / "one.pdf"), "   ", id="c"),
        Request(str(docs / "one.pdf"), QUESTION, id="d", options=AskOptions(pages="9")),
        Request(str(docs / "three.pdf"), QUESTION, id="e", options=AskOptions(max_new_tokens=2)),
    ]
    outcomes = list(DocumentQA(model, cache=False).ask_many(requests))
    assert [o.id for o in outcomes] == ["a", "b", "c", "d", "e"]
    assert [type(o) for o in outcomes] == [
        AnswerResult, FailedRequest, FailedRequest, FailedRequest, AnswerResult,
    ]  # fmt: skip
    assert "notes.txt" in outcomes[1].error and "question is empty" in outcomes[2].error
    assert outcomes[3].exit_code == 2 and "9" in outcomes[3].error
    assert outcomes[1].to_json() == {
        "file": str(tmp_path / "notes.txt"), "question": QUESTION, "id": "b",
        "error": outcomes[1].error,
    }  # fmt: skip


def test_answers_stream_token_by_token(scripted_model, docs):
    model = scripted_model(lambda text, visual: ("Total 1,234.56", -0.5))
    seen: list[tuple[int, str]] = []
    result = ask(
        docs / "one.pdf",
        QUESTION,
        model=model,
        cache=False,
        on_text=lambda p, t: seen.append((p, t)),
    )
    assert len(seen) > 2 and all(page == 1 for page, _ in seen)
    texts = [text for _, text in seen]
    assert all(b.startswith(a.rstrip()) for a, b in zip(texts, texts[1:], strict=False))
    assert texts[-1] == result.answer == "Total 1,234.56"


def test_real_generation_streams_the_same_text_it_returns(model, docs):
    seen: list[str] = []
    result = DocumentQA(model, cache=False).ask(
        docs / "one.pdf", QUESTION, max_new_tokens=5, on_text=lambda _p, t: seen.append(t)
    )
    assert seen and seen[-1] == result.answer


def test_errors_raise_typed_exceptions(model, docs, tmp_path):
    qa = DocumentQA(model, cache=False)
    with pytest.raises(UsageError, match="question is empty"):
        qa.ask(docs / "one.pdf", " \n")
    with pytest.raises(PageSpecError):
        qa.ask(docs / "one.pdf", QUESTION, pages="2")
    with pytest.raises(UsageError, match="--scale 4: model tiny-test works at scale 2 only"):
        qa.ask(docs / "one.pdf", QUESTION, scale=4)
    with pytest.raises(UsageError, match="--max-tiles must be one of 9, 16, 25, got 10"):
        AskOptions(max_tiles=10)
    with pytest.raises(UsageError, match="--budget"):
        AskOptions(budget=0)


def test_check_document_fails_fast_without_a_model(tmp_path):
    import pymupdf

    path = tmp_path / "secret.pdf"
    doc = pymupdf.open()
    doc.new_page(width=100, height=100)
    doc.save(path, encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="pw", owner_pw="owner")
    doc.close()
    with pytest.raises(EncryptedDocumentError, match="--password"):
        check_document(path, AskOptions())
    assert check_document(path, AskOptions(password="pw")) == 1


def test_check_document_checks_scale_and_budget_against_the_model(model, docs, tiny_model_dir):
    from tpdoc.answering.planning import BudgetError

    one = docs / "one.pdf"
    assert check_document(one, AskOptions(scale=2, budget=50), tiny_model_dir) == 1
    for spec in (tiny_model_dir, model):  # from config.json alone, or a loaded model
        with pytest.raises(UsageError, match="--scale 4: model .* works at scale 2 only"):
            check_document(one, AskOptions(scale=4), spec)
        with pytest.raises(BudgetError, match="--budget 3: page 1 does not fit in 3 visual"):
            check_document(one, AskOptions(budget=3), spec)
    # The page spec still comes first: a bad one is named before the model is read.
    with pytest.raises(PageSpecError):
        check_document(one, AskOptions(pages="2", budget=3), "no-such-model")


def test_more_tiles_than_the_loaded_cap_are_refused_before_any_work(model, docs, tiny_model_dir):
    cap = model.config.max_tiles
    above = min(n for n in (9, 16, 25) if n > cap)
    message = f"--max-tiles {above}: model .* at most {cap} tiles; ask with --max-tiles {cap}"
    with pytest.raises(UsageError, match=message):
        DocumentQA(model, cache=False).ask(docs / "one.pdf", QUESTION, max_tiles=above)
    with pytest.raises(UsageError, match=f"--max-tiles {above}: model .* at most {cap} tiles"):
        check_document(docs / "one.pdf", AskOptions(max_tiles=above), tiny_model_dir)
    assert check_document(docs / "one.pdf", AskOptions(max_tiles=cap), tiny_model_dir) == 1


def test_a_question_holding_the_image_placeholder_is_a_usage_error(model, docs):
    qa = DocumentQA(model, cache=False)
    with pytest.raises(UsageError, match="the question contains <image>"):
        qa.ask(docs / "one.pdf", "Is there an <image> on the page?")
    (refused,) = qa.ask_many([Request(str(docs / "one.pdf"), "<image>")])
    assert isinstance(refused, FailedRequest) and refused.exit_code == 2


def test_pages_are_read_as_the_pipeline_prepares_them(model, docs):
    """``ask`` and ``tpdoc.documents.prepare.prepare_pages`` give the vision tower the same
    views."""
    from tpdoc.documents.prepare import prepare_pages

    seen: list[torch.Tensor] = []
    model.vision.register_forward_hook(lambda _m, args, _out: seen.append(args[0]))
    try:
        DocumentQA(model, cache=False).ask(docs / "three.pdf", QUESTION, max_new_tokens=1)
    finally:
        model.vision._forward_hooks.clear()
    prepared = torch.cat([p.views for p in prepare_pages(docs / "three.pdf", model.config.tiling)])
    assert torch.equal(torch.cat(seen), prepared)
