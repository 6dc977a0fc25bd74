"""Prefilled pages kept between questions: a page asked again costs only the question's
tokens and gives the answer the whole prompt gives; memory stays within its budget."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from tests.conftest import forward_lengths, make_pdf, tiny_model_config
from tpdoc.answering.cache import VisualTokenCache
from tpdoc.answering.prefixes import PrefixCache
from tpdoc.answering.qa import DocumentQA
from tpdoc.model.document_model import DocumentModel


@dataclass
class FakePrefix:
    nbytes: int


def test_a_page_is_kept_from_its_second_question_on():
    cache = PrefixCache(max_bytes=100)
    assert cache.wanted("page") is False  # first time: answered the batched way
    assert cache.wanted("page") is True
    cache.put("page", FakePrefix(10))
    assert cache.get("page") == FakePrefix(10) and cache.hits == 1
    off = PrefixCache(max_bytes=0)
    off.wanted("x")
    assert off.wanted("x") is False  # a zero budget keeps nothing


def test_least_recently_used_prefixes_go_first_and_oversized_ones_are_not_kept():
    cache = PrefixCache(max_bytes=100)
    for key in "abc":
        cache.put(key, FakePrefix(40))  # the third pushes the total past 100
    assert cache.get("a") is None and len(cache) == 2 and cache.nbytes == 80
    cache.get("b")  # now the most recently used
    cache.put("d", FakePrefix(40))
    assert cache.get("c") is None and cache.get("b") is not None
    cache.put("huge", FakePrefix(101))
    assert cache.get("huge") is None and cache.nbytes <= 100


@pytest.fixture(scope="module")
def model(tiny_tokenizer) -> DocumentModel:
    torch.manual_seed(0)
    return DocumentModel.from_config(tiny_model_config(tiny_tokenizer), tiny_tokenizer).eval()


def test_a_page_asked_again_runs_only_the_question_and_answers_the_same(model, tmp_path):
    pdf: Path = make_pdf(tmp_path / "doc.pdf", [(595.0, 842.0)])
    qa = DocumentQA(model, cache=VisualTokenCache(tmp_path / "cache", max_bytes=10**8))
    fresh = DocumentQA(model, cache=False)
    question, other = "What is the total?", "Who is the issuer?"
    first = qa.ask(pdf, question, max_new_tokens=4)
    assert len(qa.prefixes) == 0  # a page asked once keeps no prefix
    second = qa.ask(pdf, question, max_new_tokens=4)  # prefilled now and kept
    assert len(qa.prefixes) == 1
    with forward_lengths(model.language_model) as calls:
        third = qa.ask(pdf, question, max_new_tokens=4)
        fourth = qa.ask(pdf, other, max_new_tokens=4)
    assert qa.prefixes.hits == 2
    # With the page's prefix kept, each question runs only the prompt after the page, then
    # one token at a time: the page's positions are never run again.
    after = [len(model.prompt_ids(q).after) for q in (question, other)]
    assert [n for n in calls if n > 1] == after
    for result in (second, third):
        assert result.answer == first.answer
        assert result.confidence == pytest.approx(first.confidence, abs=1e-4)
    expected = fresh.ask(pdf, other, max_new_tokens=4)
    assert fourth.answer == expected.answer
    assert fourth.confidence == pytest.approx(expected.confidence, abs=1e-4)


def test_without_the_visual_token_cache_no_prefix_is_kept(model, tmp_path):
    pdf = make_pdf(tmp_path / "doc.pdf", [(595.0, 842.0)])
    qa = DocumentQA(model, cache=False)
    for _ in range(3):
        qa.ask(pdf, "What is the total?", max_new_tokens=2)
    assert len(qa.prefixes) == 0 and qa.prefixes.hits == 0
