"""Long documents: every page ranked by its overview, only the best few read in full."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.conftest import make_pdf, tiny_model_config
from tpdoc.answering.planning import overview_tokens
from tpdoc.answering.qa import DocumentQA
from tpdoc.answering.results import NOT_FOUND, AskOptions, Request
from tpdoc.errors import UsageError
from tpdoc.model.document_model import DocumentModel

QUESTION = "What is the total?"
A4 = (595.0, 842.0)


@pytest.fixture(scope="module")
def qa(tiny_tokenizer) -> DocumentQA:
    torch.manual_seed(0)
    model = DocumentModel.from_config(tiny_model_config(tiny_tokenizer), tiny_tokenizer).eval()
    return DocumentQA(model, cache=False)


@pytest.fixture(scope="module")
def docs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("long")
    for n in (3, 6):
        make_pdf(folder / f"{n}.pdf", [A4] * n, text="Total 42.00")
    return folder


def test_a_long_document_is_ranked_by_overviews_and_read_on_the_best_pages(qa, docs):
    doc = docs / "6.pdf"
    result = qa.ask(doc, QUESTION, max_new_tokens=3)
    assert result.shortlist is not None and result.shortlist.ranked == 6
    # The pages read are the three best overviews, ranked as answers are.
    cheap = overview_tokens(qa.geometry(AskOptions()))
    overview = qa.ask(doc, QUESTION, max_new_tokens=3, budget=cheap, all_pages=True)
    assert all(p.plan.plan.num_views == 1 for p in overview.pages)
    ranked = sorted(
        overview.pages, key=lambda p: (p.answer != NOT_FOUND, p.confidence), reverse=True
    )
    assert result.shortlist.read == tuple(sorted(p.page for p in ranked[:3]))
    # ... at full resolution, with the answer they give when asked alone.
    alone = qa.ask(doc, QUESTION, max_new_tokens=3, pages=",".join(map(str, result.shortlist.read)))
    assert [p.page for p in result.pages] == list(result.shortlist.read)
    assert result.answer == alone.answer and result.page == alone.page
    assert all(p.plan.plan.num_views > 1 for p in result.pages)
    # Both passes are paid for.
    assert result.shortlist.overview_tokens == overview.tokens.visual
    assert result.tokens.visual == overview.tokens.visual + alone.tokens.visual
    assert result.to_json()["shortlist"] == {
        "ranked": 6,
        "read": list(result.shortlist.read),
        "overview_tokens": overview.tokens.visual,
    }
    assert result.tokens.visual < qa.ask(doc, QUESTION, max_new_tokens=3, shortlist=0).tokens.visual


@pytest.mark.parametrize(
    "options",
    [{"shortlist": 0}, {"all_pages": True}, {"pages": "1-6"}, {"shortlist": 6}],
    ids=["off", "all-pages", "pages", "no-longer-than-the-shortlist"],
)
def test_every_page_is_read_in_full_when_asked_for_or_when_the_document_is_short(qa, docs, options):
    result = qa.ask(docs / "6.pdf", QUESTION, max_new_tokens=2, **options)
    assert result.shortlist is None and len(result.pages) == 6
    assert result.to_json()["shortlist"] is None


def test_short_documents_and_bad_files_in_a_batch_keep_their_order(qa, docs, tmp_path):
    missing = tmp_path / "missing.pdf"
    requests = [
        Request(str(docs / "3.pdf"), QUESTION, id=1, options=AskOptions(max_new_tokens=2)),
        Request(str(docs / "6.pdf"), QUESTION, id=2, options=AskOptions(max_new_tokens=2)),
        Request(str(missing), QUESTION, id=3, options=AskOptions(max_new_tokens=2)),
        Request(str(docs / "3.pdf"), QUESTION, id=4, options=AskOptions(max_new_tokens=2)),
    ]
    outcomes = list(qa.ask_many(requests))
    assert [o.id for o in outcomes] == [1, 2, 3, 4]
    assert outcomes[0].shortlist is None and len(outcomes[0].pages) == 3
    assert outcomes[1].shortlist is not None and len(outcomes[1].pages) == 3
    assert "missing.pdf" in outcomes[2].error


def test_a_negative_shortlist_is_a_usage_error():
    with pytest.raises(UsageError, match="--shortlist must be 0 or more pages, got -1"):
        AskOptions(shortlist=-1)


def test_progress_is_reported_page_by_page_for_each_pass(qa, docs):
    seen: list[tuple[str, int, int]] = []
    qa.ask(docs / "6.pdf", QUESTION, max_new_tokens=2, on_progress=lambda *e: seen.append(e))
    assert seen == [("ranking", i, 6) for i in range(1, 7)] + [("reading", i, 3) for i in (1, 2, 3)]
    seen.clear()
    qa.ask(
        docs / "6.pdf",
        QUESTION,
        max_new_tokens=2,
        shortlist=0,
        on_progress=lambda *e: seen.append(e),
    )
    assert seen == [("reading", i, 6) for i in range(1, 7)]


def test_many_requests_report_progress_as_the_request_asked(qa, docs):
    requests = [
        Request(str(docs / "3.pdf"), QUESTION, id=1, options=AskOptions(max_new_tokens=2)),
        Request(str(docs / "6.pdf"), QUESTION, id=2, options=AskOptions(max_new_tokens=2)),
    ]
    seen: list[tuple] = []
    list(qa.ask_many(requests, on_progress=lambda r, *e: seen.append((r.id, *e))))
    assert [e for e in seen if e[0] == 1] == [(1, "reading", i, 3) for i in (1, 2, 3)]
    assert [e for e in seen if e[0] == 2] == [(2, "ranking", i, 6) for i in range(1, 7)] + [
        (2, "reading", i, 3) for i in (1, 2, 3)
    ]
