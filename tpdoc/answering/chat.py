"""Many questions about one document, each paying only for its own tokens.

In: a ``DocumentQA``, a document and ``AskOptions``. Out: a ``ChatSession`` that encodes
the selected pages once (through the visual-token cache), keeps, per page, the language
model's KV cache of the prompt up to the end of the page's visual tokens, and answers
each question on its own against the document, reusing that cache: a follow-up question
runs the model over its question tokens only. Not a conversation: no question sees
another's answer. The first question about a page pays for the page's prefill; every
``ChatTurn`` records its time to first token so the saving can be seen.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tpdoc.answering.results import AskOptions, PageAnswer, best_page, check_question
from tpdoc.answering.streaming import Stopwatch, TokenStream
from tpdoc.errors import UsageError

if TYPE_CHECKING:
    from tpdoc.answering.jobs import EncodedPage, PageCallback
    from tpdoc.answering.qa import DocumentQA

# Prompt tokens kept free for questions when pages are planned (the template, the
# question, and what the model's context must keep for the answer come on top).
QUESTION_RESERVE = 64


@dataclass(frozen=True)
class ChatTurn:
    """One answered question."""

    question: str
    answer: str
    page: int
    confidence: float
    pages: tuple[PageAnswer, ...]
    first_token_seconds: float  # from the question to its first answer token
    reused_prefix: bool  # every asked page's prefix was already in the KV cache
    timings: dict[str, float] = field(default_factory=dict)


class ChatSession:
    """A document encoded once; ``ask`` answers against the selected page or pages."""

    def __init__(
        self,
        qa: DocumentQA,
        path: str | Path,
        options: AskOptions | None = None,
        *,
        reserve: int = QUESTION_RESERVE,
    ) -> None:
        self.qa = qa
        self.path = str(path)
        self.options = options = options or AskOptions()
        base = len(qa.model.prompt_ids(""))  # the template alone
        self.text_budget = base + reserve
        pages, watch = qa.encode_document(path, text_tokens=self.text_budget, options=options)
        self.pages: dict[int, EncodedPage] = {p.plan.page: p for p in pages}
        self.open_timings = dict(watch.seconds)
        self.selected: list[int] = list(self.pages)
        self.turns: list[ChatTurn] = []
        self._prefixes: dict[int, Any] = {}  # page -> tpdoc.model.document_model.Prefix

    def select(self, page: int | None) -> None:
        """Ask only ``page`` from now on; ``None``: every encoded page again."""
        if page is None:
            self.selected = list(self.pages)
            return
        if page not in self.pages:
            raise UsageError(
                f"/page {page}: not an encoded page (pages: {', '.join(map(str, self.pages))})"
            )
        self.selected = [page]

    def ask(self, question: str, *, on_text: PageCallback | None = None) -> ChatTurn:
        """Answer ``question`` against the selected pages; the best page's answer wins."""
        question = check_question(question)
        model = self.qa.model
        prompt = model.prompt_ids(question)
        self._check_room(len(prompt))
        start = time.perf_counter()
        first: float | None = None
        reused = all(page in self._prefixes for page in self.selected)
        watch = Stopwatch()
        answers = []
        for number in self.selected:
            page = self.pages[number]
            prefix = self._prefix(number, prompt, watch)
            batch = model.build_batch([prompt], [page.embeddings])

            def relay(_row: int, text: str, number: int = number) -> None:
                if on_text is not None:
                    on_text(number, text)

            stream = TokenStream(model.tokenizer, 1, relay)
            (generation,) = model.generate(
                batch,
                max_new_tokens=self.options.max_new_tokens,
                prefix=prefix,
                streamer=stream,
            )
            watch.add("prefill", stream.prefill_seconds)
            watch.add("decode", stream.decode_seconds)
            if first is None and stream.first_token is not None:
                first = stream.first_token
            answers.append(
                PageAnswer(number, generation.text, generation.confidence, page.plan, page.cached)
            )
        pages = tuple(answers)
        best = best_page(pages)
        turn = ChatTurn(
            question=question,
            answer=best.answer,
            page=best.page,
            confidence=best.confidence,
            pages=pages,
            first_token_seconds=(first or time.perf_counter()) - start,
            reused_prefix=reused,
            timings=dict(watch.seconds),
        )
        self.turns.append(turn)
        return turn

    def _prefix(self, number: int, prompt: Any, watch: Stopwatch) -> Any:
        """The page's prefilled prefix, computed on first use (and again if a template
        put question-dependent text before the image)."""
        prefix = self._prefixes.get(number)
        if prefix is None or prefix.before != prompt.before:
            with watch.stage("prefill"):
                prefix = self.qa.model.prefill(prompt, self.pages[number].embeddings)
            self._prefixes[number] = prefix
        return prefix

    def _check_room(self, text_tokens: int) -> None:
        """The longest selected page, the prompt and the answer must fit the context."""
        limit = self.qa.model.config.geometry.context_limit
        if limit is None:
            return
        longest = max(self.pages[n].plan.visual_tokens for n in self.selected)
        need = longest + text_tokens + self.options.max_new_tokens
        if need > limit:
            raise UsageError(
                f"the question is too long: {text_tokens} prompt tokens + {longest:,} visual "
                f"tokens + {self.options.max_new_tokens} for the answer exceed the model's "
                f"context of {limit:,} positions"
            )
