"""Asking documents: pages -> packed visual tokens (cached) -> one answer per page -> the
most confident answer.

In: a model (a loaded ``DocumentModel``, or a spec for ``tpdoc.weights.loading``) and requests
(a document path, a question, ``AskOptions``). Out: ``AnswerResult``s (or
``FailedRequest``s in ``ask_many``), with the token use and the time per stage.

Every selected page is asked on its own: its visual tokens and the question form one
sequence, all sequences go through the language model in batches, and the answer whose
generated tokens have the highest mean log-probability wins. Pages of several requests
share the vision tower's and the language model's batches (``ask_many``); each page is
planned to fit ``--budget`` and the model's context (``tpdoc.answering.planning``); packed tokens
come from, and go to, the visual-token cache (``tpdoc.answering.cache``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tpdoc.answering.cache import CacheKey, VisualTokenCache, file_sha256
from tpdoc.answering.jobs import (
    EncodedPage,
    Job,
    PageCallback,
    ProgressCallback,
    RequestProgress,
    RequestState,
    outcome,
    share,
    take_views,
    timed,
)
from tpdoc.answering.planning import BudgetError, PagePlan, TokenLimit, plan_within
from tpdoc.answering.preflight import asked_geometry, model_scales
from tpdoc.answering.results import (
    NOT_FOUND,
    AnswerResult,
    AskOptions,
    FailedRequest,
    PageAnswer,
    Request,
    check_question,
)
from tpdoc.answering.shortlist import answer_shortlisted
from tpdoc.answering.streaming import Stopwatch, TokenStream
from tpdoc.errors import TpdocError

if TYPE_CHECKING:
    import torch

    from tpdoc.model.config import Geometry
    from tpdoc.model.document_model import DocumentModel

PAGES_PER_STEP = 8  # pages gathered before the vision tower and the LLM run
VIEWS_PER_FORWARD = 64  # vision-tower batch
SEQUENCES_PER_BATCH = 8  # language-model batch
# Prefilled pages kept between questions about them (tpdoc.answering.prefixes); the embedded model's
# page takes about 15 MiB, a 7B model's about 0.5 GiB.
PREFIX_CACHE_BYTES = 512 * 2**20
FILE_HASHES_KEPT = 1024  # files whose content hash is remembered (by path, size, mtime)


class DocumentQA:
    """A loaded model and a visual-token cache, ready for any number of questions."""

    def __init__(
        self,
        model: DocumentModel | str | Path | None = None,
        *,
        device: str = "auto",
        dtype: str = "auto",
        cache: VisualTokenCache | bool = True,
        identity: str | None = None,
        pages_per_step: int | None = None,
        sequences_per_batch: int | None = None,
        max_tiles: int | None = None,
        prefix_bytes: int | None = None,
    ) -> None:
        from tpdoc.answering.prefixes import PrefixCache
        from tpdoc.weights.identity import model_identity, module_identity

        if model is None or isinstance(model, str | Path):
            from tpdoc.weights.loading import load_document_model
            from tpdoc.weights.registry import DEFAULT_MODEL

            # The tile cap reaches the loader so a published checkpoint reports (and
            # accepts) the cap actually used.
            self.model = load_document_model(model, device=device, dtype=dtype, max_tiles=max_tiles)
            self.name = str(model) if model is not None else DEFAULT_MODEL
            self._identity = identity or (lambda: model_identity(model, self.model))
        else:
            self.model = model
            self.name = model.config.name
            self._identity = identity or (lambda: module_identity(model))
        if cache is True:
            cache = VisualTokenCache()
        self.cache: VisualTokenCache | None = cache or None
        self.pages_per_step = pages_per_step or PAGES_PER_STEP
        self.sequences_per_batch = sequences_per_batch or SEQUENCES_PER_BATCH
        self._hashes: dict[tuple[str, int, int], str] = {}
        # Only pages with a cache key (the visual-token cache on) can be recognised again.
        self.prefixes = PrefixCache(PREFIX_CACHE_BYTES if prefix_bytes is None else prefix_bytes)

    @property
    def identity(self) -> str:
        if callable(self._identity):
            self._identity = self._identity()
        return self._identity

    @property
    def scales(self) -> tuple[int, ...]:
        """Packer scales the model was trained for."""
        return model_scales(self.model.config)

    def geometry(self, options: AskOptions) -> Geometry:
        return asked_geometry(self.model.config, options, self.name)

    # ------------------------------------------------------------------------- asking

    def ask(
        self,
        path: str | Path,
        question: str,
        *,
        options: AskOptions | None = None,
        on_text: PageCallback | None = None,
        on_progress: ProgressCallback | None = None,
        **fields: Any,
    ) -> AnswerResult:
        """Answer ``question`` about ``path``; raises ``TpdocError`` if it cannot.

        ``options`` (or ``AskOptions`` fields as keywords, which override it) say how;
        ``on_text(page, text)`` receives every page's answer as it grows, token by token;
        ``on_progress(phase, done, total)`` is called as each page is answered.
        """
        options = replace(options or AskOptions(), **fields)
        request = Request(str(path), question, options=options)
        progress = None if on_progress is None else (lambda _r, *event: on_progress(*event))
        (outcome,) = answer_shortlisted(
            [request], self._run, self.geometry, on_text=on_text, on_progress=progress
        )
        if isinstance(outcome, FailedRequest):
            raise outcome.cause
        return outcome

    def ask_many(
        self, requests: Iterable[Request], on_progress: RequestProgress | None = None
    ) -> Iterator[AnswerResult | FailedRequest]:
        """Answer requests in order; a request that fails becomes a ``FailedRequest`` and
        the rest go on. Pages of different requests share the model's batches.
        ``on_progress(request, phase, done, total)`` is called as each page is answered."""
        yield from answer_shortlisted(requests, self._run, self.geometry, on_progress=on_progress)

    def encode_document(
        self, path: str | Path, *, text_tokens: int, options: AskOptions
    ) -> tuple[list[EncodedPage], Stopwatch]:
        """Every selected page planned (leaving ``text_tokens`` for the prompt), packed and
        laid out for the language model; for sessions that ask many questions."""
        import torch

        state = RequestState(Request(str(path), "", options=options))
        pages: list[EncodedPage] = []
        jobs: list[Job] = []
        for job in chain(self._jobs(state, text_tokens), [None]):  # None: flush the rest
            if job is not None:
                jobs.append(job)
            if jobs and (job is None or len(jobs) >= self.pages_per_step):
                with torch.no_grad():
                    self._encode(jobs)
                    pages += [EncodedPage(j.plan, self._layout(j), j.cached) for j in jobs]
                jobs = []
        return pages, state.watch

    # ---------------------------------------------------------------------- the engine

    def _run(
        self,
        requests: Iterable[Request],
        on_text: PageCallback | None = None,
        on_progress: RequestProgress | None = None,
        phase: str = "reading",
    ) -> Iterator[AnswerResult | FailedRequest]:
        states: list[RequestState] = []
        pending: list[Job] = []
        for request in requests:
            state = RequestState(request, on_text=on_text, on_progress=on_progress, phase=phase)
            states.append(state)
            try:
                state.question = check_question(request.question)
                state.prompt = self.model.prompt_ids(state.question)
                for job in self._jobs(state, len(state.prompt)):
                    pending.append(job)
                    if len(pending) >= self.pages_per_step:
                        self._step(pending)
                        pending = []
                        yield from self._finished(states)
            except TpdocError as exc:
                state.error = exc
                pending = [job for job in pending if job.state is not state]
            state.all_queued = True
            yield from self._finished(states)
        self._step(pending)
        yield from self._finished(states)

    def _jobs(self, state: RequestState, text_tokens: int) -> Iterator[Job]:
        """Open the document, plan each selected page, and fetch its packed tokens from
        the cache or render and tile it; one page at a time."""
        from tpdoc.documents.pages import open_document, parse_page_spec
        from tpdoc.documents.prepare import prepare_page

        options = state.request.options
        path = state.request.file
        geometry = self.geometry(options)
        state.limit = limit = self._limit(options, text_tokens)
        file_hash = None
        with state.watch.stage("render"):
            doc = open_document(path, password=options.password, dpi=options.dpi)
        with doc:
            numbers = parse_page_spec(options.pages, doc.page_count, path)
            state.total = len(numbers)
            if self.cache is not None:
                with state.watch.stage("cache"):
                    file_hash = self._file_hash(path)
            for number in numbers:
                info = doc.info(number)
                plan = plan_within(
                    number, info.height, info.width, geometry,
                    limit=limit.tokens, scales=self.scales, what=limit.what,
                )  # fmt: skip
                key = None if file_hash is None else CacheKey.for_page(
                    file_hash, plan, geometry.tiling, options.dpi, self.identity,
                    self.model.precision,
                )  # fmt: skip
                job = Job(state, state.queued, plan, key)
                state.queued += 1
                if job.key is not None:
                    with state.watch.stage("cache"):
                        job.packed = self.cache.get(job.key, self._shape(plan))
                    job.cached = job.packed is not None
                if job.packed is None:
                    with state.watch.stage("render"):
                        tiling = geometry.with_options(scale=plan.scale).tiling
                        page = prepare_page(doc, number, plan.plan, tiling, dpi=options.dpi)
                        job.views = page.views
                yield job

    def _limit(self, options: AskOptions, text_tokens: int) -> TokenLimit:
        """The most visual tokens a page may take, which limit that is, and its name."""
        context = self.model.config.geometry.context_limit
        room = None if context is None else context - text_tokens - options.max_new_tokens
        if room is not None and room < 1:
            raise BudgetError(
                f"the question and the answer's room ({text_tokens} + {options.max_new_tokens} "
                f"tokens) leave nothing of the model's context ({context} positions) for a page"
            )
        if options.budget is not None and (room is None or options.budget <= room):
            return TokenLimit(options.budget, "budget", f"--budget {options.budget}")
        if room is None:
            return TokenLimit(None)
        return TokenLimit(
            room,
            "context",
            f"the model's context ({context} positions, {room:,} left after the prompt "
            f"and the answer)",
        )

    def _step(self, jobs: list[Job]) -> None:
        """Encode what the cache did not have, then answer every page."""
        import torch

        if not jobs:
            return
        with torch.no_grad():
            self._encode(jobs)
            self._answer(jobs)

    def _encode(self, jobs: list[Job]) -> None:
        import torch

        todo = [job for job in jobs if job.packed is None]
        index = 0
        while index < len(todo):
            chunk = take_views(todo[index:], VIEWS_PER_FORWARD)
            index += len(chunk)
            pixels = torch.cat([job.views for job in chunk])  # [sum V, 3, T, T]
            views = [job.views.shape[0] for job in chunk]
            device = self.model.device
            seconds, feats = timed(lambda p=pixels: self.model.features(p), device)
            share(chunk, "vision", seconds, views)
            seconds, packed = timed(lambda f=feats: self.model.pack(f), device)
            share(chunk, "packer", seconds, views)
            for job, part in zip(chunk, packed.split(views), strict=True):
                job.packed, job.views = part, None  # [V, Q, D]
                if job.key is not None:
                    with job.state.watch.stage("cache"):
                        self.cache.put(job.key, part)

    def _answer(self, jobs: list[Job]) -> None:
        live = [job for job in jobs if job.state.error is None]
        if self.model.pointer is not None:
            self._point(live)
            return
        batched = [job for job in live if not self._answer_from_prefix(job)]
        order = sorted(
            batched, key=lambda j: (j.state.request.options.max_new_tokens, j.plan.visual_tokens)
        )
        index = 0
        while index < len(order):
            tokens = order[index].state.request.options.max_new_tokens
            chunk = [
                job
                for job in order[index : index + self.sequences_per_batch]
                if job.state.request.options.max_new_tokens == tokens
            ]
            index += len(chunk)
            self._generate(chunk, tokens)

    def _point(self, jobs: list[Job]) -> None:
        """A pointer model's answers (``tpdoc.model.pointer``): one pass of the language model
        over each tile row with the question, no generation; the pass counts as prefill."""
        for index in range(0, len(jobs), self.sequences_per_batch):
            chunk = jobs[index : index + self.sequences_per_batch]
            questions = [job.state.question for job in chunk]
            pages = [(job.packed, job.plan.plan) for job in chunk]
            seconds, spans = timed(
                lambda q=questions, p=pages: self.model.point(q, p), self.model.device
            )
            share(chunk, "prefill", seconds, [1] * len(chunk))
            for job, span in zip(chunk, spans, strict=True):
                text = NOT_FOUND if span.text is None else span.text
                if job.state.on_text is not None:
                    job.state.on_text(job.plan.page, text)
                job.state.answered(
                    job.index,
                    PageAnswer(
                        job.plan.page, text, span.logprob, job.plan, job.cached, box=span.box
                    ),
                )

    def _answer_from_prefix(self, job: Job) -> bool:
        """Answer a page asked before from its prefilled prefix (prefilling it now on the
        second time); False leaves the page to the batched path."""
        if job.key is None:
            return False
        key = (job.key, tuple(job.state.prompt.before))
        prefix = self.prefixes.get(key)
        if prefix is None:
            if not self.prefixes.wanted(key):
                return False
            with job.state.watch.stage("prefill"):
                prefix = self.model.prefill(job.state.prompt, self._layout(job))
            self.prefixes.put(key, prefix)
        self._generate([job], job.state.request.options.max_new_tokens, prefix)
        return True

    def _generate(self, chunk: list[Job], max_new_tokens: int, prefix: Any = None) -> None:
        embeds = [self._layout(job) for job in chunk]
        batch = self.model.build_batch([job.state.prompt for job in chunk], embeds)

        def on_text(row: int, text: str) -> None:
            job = chunk[row]
            if job.state.on_text is not None:
                job.state.on_text(job.plan.page, text)

        stream = TokenStream(self.model.tokenizer, len(chunk), on_text)
        generations = self.model.generate(
            batch, max_new_tokens=max_new_tokens, prefix=prefix, streamer=stream
        )
        ones = [1] * len(chunk)
        share(chunk, "prefill", stream.prefill_seconds, ones)
        share(chunk, "decode", stream.decode_seconds, ones)
        for job, generation in zip(chunk, generations, strict=True):
            job.state.answered(
                job.index,
                PageAnswer(
                    job.plan.page, generation.text, generation.confidence, job.plan, job.cached
                ),
            )

    def _layout(self, job: Job) -> torch.Tensor:
        packed = job.packed.to(self.model.device)
        return self.model.page_embeddings(packed, job.plan.plan)  # [P, D]

    def _finished(self, states: list[RequestState]) -> Iterator[AnswerResult | FailedRequest]:
        """Pop and yield the leading requests that are complete, keeping their order."""
        while states and states[0].complete:
            yield outcome(states.pop(0), self.name, self.model.config.geometry.context_limit)

    # ------------------------------------------------------------------------ helpers

    def _file_hash(self, path: str) -> str:
        stat = Path(path).stat()
        memo = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
        if memo not in self._hashes:
            if len(self._hashes) >= FILE_HASHES_KEPT:  # a server sees a new file per upload
                del self._hashes[next(iter(self._hashes))]  # the oldest (insertion order)
            self._hashes[memo] = file_sha256(path)
        return self._hashes[memo]

    def _shape(self, plan: PagePlan) -> tuple[int, int, int]:
        g = self.model.config.geometry.with_options(scale=plan.scale)
        return (plan.plan.num_views, g.tokens_per_tile, self.model.config.projector.llm_dim)


def ask(
    path: str | Path,
    question: str,
    *,
    model: DocumentModel | str | Path | None = None,
    device: str = "auto",
    dtype: str = "auto",
    cache: VisualTokenCache | bool = True,
    on_text: PageCallback | None = None,
    **options: Any,
) -> AnswerResult:
    """Answer one question about one document with ``model`` (default: the embedded one).

    ``options``: ``pages``, ``dpi``, ``max_tiles``, ``scale``, ``budget``,
    ``max_new_tokens``, ``password``, ``all_pages`` (see ``AskOptions``).
    """
    qa = DocumentQA(
        model, device=device, dtype=dtype, cache=cache, max_tiles=options.get("max_tiles")
    )
    return qa.ask(path, question, on_text=on_text, **options)
