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

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tpdoc.answering.cache import CacheKey, VisualTokenCache, file_sha256
from tpdoc.answering.planning import BudgetError, PagePlan, TokenLimit, plan_within
from tpdoc.answering.results import (
    NOT_FOUND,
    AnswerResult,
    AskOptions,
    FailedRequest,
    PageAnswer,
    Request,
    TokenUse,
    best_page,
    check_question,
)
from tpdoc.answering.streaming import Stopwatch, TokenStream
from tpdoc.errors import TpdocError, UsageError

if TYPE_CHECKING:
    import torch

    from tpdoc.model.config import Geometry, ModelConfig
    from tpdoc.model.document_model import DocumentModel

PAGES_PER_STEP = 8  # pages gathered before the vision tower and the LLM run
VIEWS_PER_FORWARD = 64  # vision-tower batch
SEQUENCES_PER_BATCH = 8  # language-model batch
# Prefilled pages kept between questions about them (tpdoc.answering.prefixes); the embedded model's
# page takes about 15 MiB, a 7B model's about 0.5 GiB.
PREFIX_CACHE_BYTES = 512 * 2**20
FILE_HASHES_KEPT = 1024  # files whose content hash is remembered (by path, size, mtime)
PageCallback = Callable[[int, str], None]  # (page number, its answer so far)


@dataclass
class _Job:
    """One page of one request on its way through the model."""

    state: _State
    index: int  # position among the request's pages
    plan: PagePlan
    key: CacheKey | None
    views: torch.Tensor | None = None  # [V, 3, T, T] before encoding
    packed: torch.Tensor | None = None  # [V, Q, D] after (or from the cache)
    cached: bool = False


@dataclass
class _State:
    """A request while its pages are in flight."""

    request: Request
    question: str = ""
    prompt: Any = None  # PromptIds
    limit: TokenLimit | None = None  # what each page is planned to fit
    on_text: PageCallback | None = None
    queued: int = 0
    answers: dict[int, PageAnswer] = field(default_factory=dict)  # by position
    watch: Stopwatch = field(default_factory=Stopwatch)
    all_queued: bool = False
    error: TpdocError | None = None

    @property
    def complete(self) -> bool:
        return self.error is not None or (self.all_queued and len(self.answers) == self.queued)


@dataclass(frozen=True)
class EncodedPage:
    """A page's plan and its packed tokens laid out for the LLM ``[P, D]``."""

    plan: PagePlan
    embeddings: torch.Tensor
    cached: bool


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
        **fields: Any,
    ) -> AnswerResult:
        """Answer ``question`` about ``path``; raises ``TpdocError`` if it cannot.

        ``options`` (or ``AskOptions`` fields as keywords, which override it) say how;
        ``on_text(page, text)`` receives every page's answer as it grows, token by token.
        """
        options = replace(options or AskOptions(), **fields)
        request = Request(str(path), question, options=options)
        (outcome,) = self._run([request], on_text=on_text)
        if isinstance(outcome, FailedRequest):
            raise outcome.cause
        return outcome

    def ask_many(self, requests: Iterable[Request]) -> Iterator[AnswerResult | FailedRequest]:
        """Answer requests in order; a request that fails becomes a ``FailedRequest`` and
        the rest go on. Pages of different requests share the model's batches."""
        yield from self._run(requests)

    def encode_document(
        self, path: str | Path, *, text_tokens: int, options: AskOptions
    ) -> tuple[list[EncodedPage], Stopwatch]:
        """Every selected page planned (leaving ``text_tokens`` for the prompt), packed and
        laid out for the language model; for sessions that ask many questions."""
        import torch

        state = _State(Request(str(path), "", options=options))
        pages: list[EncodedPage] = []
        jobs: list[_Job] = []
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
        self, requests: Iterable[Request], on_text: PageCallback | None = None
    ) -> Iterator[AnswerResult | FailedRequest]:
        states: list[_State] = []
        pending: list[_Job] = []
        for request in requests:
            state = _State(request, on_text=on_text)
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

    def _jobs(self, state: _State, text_tokens: int) -> Iterator[_Job]:
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
            if self.cache is not None:
                with state.watch.stage("cache"):
                    file_hash = self._file_hash(path)
            for number in numbers:
                info = doc.info(number)
                plan = plan_within(
                    number, info.height, info.width, geometry,
                    limit=limit.tokens, scales=self.scales, what=limit.what,
                )  # fmt: skip
                job = _Job(state, state.queued, plan, self._key(file_hash, plan, geometry, options))
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

    def _step(self, jobs: list[_Job]) -> None:
        """Encode what the cache did not have, then answer every page."""
        import torch

        if not jobs:
            return
        with torch.no_grad():
            self._encode(jobs)
            self._answer(jobs)

    def _encode(self, jobs: list[_Job]) -> None:
        import torch

        todo = [job for job in jobs if job.packed is None]
        index = 0
        while index < len(todo):
            chunk = _take_views(todo[index:], VIEWS_PER_FORWARD)
            index += len(chunk)
            pixels = torch.cat([job.views for job in chunk])  # [sum V, 3, T, T]
            views = [job.views.shape[0] for job in chunk]
            device = self.model.device
            seconds, feats = _timed(lambda p=pixels: self.model.features(p), device)
            _share(chunk, "vision", seconds, views)
            seconds, packed = _timed(lambda f=feats: self.model.pack(f), device)
            _share(chunk, "packer", seconds, views)
            for job, part in zip(chunk, packed.split(views), strict=True):
                job.packed, job.views = part, None  # [V, Q, D]
                if job.key is not None:
                    with job.state.watch.stage("cache"):
                        self.cache.put(job.key, part)

    def _answer(self, jobs: list[_Job]) -> None:
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

    def _point(self, jobs: list[_Job]) -> None:
        """A pointer model's answers (``tpdoc.model.pointer``): one pass of the language model
        over each tile row with the question, no generation; the pass counts as prefill."""
        for index in range(0, len(jobs), self.sequences_per_batch):
            chunk = jobs[index : index + self.sequences_per_batch]
            questions = [job.state.question for job in chunk]
            pages = [(job.packed, job.plan.plan) for job in chunk]
            seconds, spans = _timed(
                lambda q=questions, p=pages: self.model.point(q, p), self.model.device
            )
            _share(chunk, "prefill", seconds, [1] * len(chunk))
            for job, span in zip(chunk, spans, strict=True):
                text = NOT_FOUND if span.text is None else span.text
                if job.state.on_text is not None:
                    job.state.on_text(job.plan.page, text)
                job.state.answers[job.index] = PageAnswer(
                    job.plan.page, text, span.logprob, job.plan, job.cached, box=span.box
                )

    def _answer_from_prefix(self, job: _Job) -> bool:
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

    def _generate(self, chunk: list[_Job], max_new_tokens: int, prefix: Any = None) -> None:
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
        _share(chunk, "prefill", stream.prefill_seconds, ones)
        _share(chunk, "decode", stream.decode_seconds, ones)
        for job, generation in zip(chunk, generations, strict=True):
            job.state.answers[job.index] = PageAnswer(
                job.plan.page, generation.text, generation.confidence, job.plan, job.cached
            )

    def _layout(self, job: _Job) -> torch.Tensor:
        packed = job.packed.to(self.model.device)
        return self.model.page_embeddings(packed, job.plan.plan)  # [P, D]

    def _finished(self, states: list[_State]) -> Iterator[AnswerResult | FailedRequest]:
        """Pop and yield the leading requests that are complete, keeping their order."""
        while states and states[0].complete:
            yield self._outcome(states.pop(0))

    def _outcome(self, state: _State) -> AnswerResult | FailedRequest:
        request = state.request
        if state.error is not None:
            return FailedRequest(
                request.file, request.question, request.id, str(state.error),
                state.error.exit_code, cause=state.error,
            )  # fmt: skip
        pages = tuple(state.answers[i] for i in range(state.queued))
        best = best_page(pages)
        plans = [p.plan for p in pages]
        down = any(p.planned_down for p in plans)
        text = len(state.prompt)
        return AnswerResult(
            file=request.file,
            question=state.question,
            answer=best.answer,
            page=best.page,
            confidence=best.confidence,
            pages=pages,
            tokens=TokenUse(
                visual=sum(p.visual_tokens for p in plans),
                visual_uncompressed=sum(p.visual_tokens_uncompressed for p in plans),
                text=text,
                context=max(p.visual_tokens for p in plans) + text + request.options.max_new_tokens,
                context_limit=self.model.config.geometry.context_limit,
            ),
            timings=dict(state.watch.seconds),
            model=self.name,
            id=request.id,
            budget=request.options.budget,
            all_pages=request.options.all_pages,
            # Which limit planned pages down; None when no page had to be.
            limited_by=state.limit.source if down and state.limit is not None else None,
        )

    # ------------------------------------------------------------------------ helpers

    def _file_hash(self, path: str) -> str:
        stat = Path(path).stat()
        memo = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
        if memo not in self._hashes:
            if len(self._hashes) >= FILE_HASHES_KEPT:  # a server sees a new file per upload
                del self._hashes[next(iter(self._hashes))]  # the oldest (insertion order)
            self._hashes[memo] = file_sha256(path)
        return self._hashes[memo]

    def _key(
        self, file_hash: str | None, plan: PagePlan, geometry: Geometry, options: AskOptions
    ) -> CacheKey | None:
        if file_hash is None:
            return None
        tiling = geometry.tiling
        return CacheKey(
            file_sha256=file_hash,
            page=plan.page,
            width=plan.plan.width,
            height=plan.plan.height,
            grid=plan.plan.grid,
            fit=plan.plan.fit,
            mode=plan.plan.mode,
            tile_size=tiling.tile_size,
            dpi=options.dpi,
            image_mean=tiling.image_mean,
            image_std=tiling.image_std,
            scale=plan.scale,
            model=self.identity,
            dtype=str(self.model.dtype),
        )

    def _shape(self, plan: PagePlan) -> tuple[int, int, int]:
        g = self.model.config.geometry.with_options(scale=plan.scale)
        return (plan.plan.num_views, g.tokens_per_tile, self.model.config.projector.llm_dim)


def model_scales(config: ModelConfig) -> tuple[int, ...]:
    """Packer scales a model was trained for (today: its projector's only)."""
    return (config.projector.scale,)


def asked_geometry(config: ModelConfig, options: AskOptions, name: str) -> Geometry:
    """The model's geometry with ``--max-tiles`` and ``--scale`` applied; a scale the
    model (called ``name`` in the message) was not trained for is a ``UsageError``."""
    scales = model_scales(config)
    if options.scale is not None and options.scale not in scales:
        raise UsageError(
            f"--scale {options.scale}: model {name} works at scale "
            f"{', '.join(map(str, scales))} only"
        )
    return config.geometry.with_options(max_tiles=options.max_tiles, scale=options.scale)


def check_document(
    path: str | Path, options: AskOptions, model: DocumentModel | str | Path | None = None
) -> int:
    """Check what can be checked before loading a model's weights (fail fast): that
    ``path`` opens and the page spec selects pages of it; with ``--scale`` or
    ``--budget``, that the model (as ``DocumentQA`` takes it; its ``config.json`` is
    enough) works at that scale and that every selected page fits the budget at least as
    one tile. The number of selected pages.

    The context limit is checked when the question is asked: it needs the tokenizer.
    """
    from tpdoc.documents.pages import open_document, parse_page_spec

    with open_document(path, password=options.password, dpi=options.dpi) as doc:
        numbers = parse_page_spec(options.pages, doc.page_count, path)
        if options.scale is None and options.budget is None:
            return len(numbers)
        config, name = _config_of(model)
        geometry = asked_geometry(config, options, name)
        if options.budget is not None:
            for number in numbers:
                info = doc.info(number)
                plan_within(
                    number, info.height, info.width, geometry, limit=options.budget,
                    scales=model_scales(config), what=f"--budget {options.budget}",
                )  # fmt: skip
    return len(numbers)


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


# -------------------------------------------------------------------------- internals


def _config_of(model: DocumentModel | str | Path | None) -> tuple[ModelConfig, str]:
    """A model's configuration and its name in messages, without loading weights."""
    if model is None or isinstance(model, str | Path):
        from tpdoc.weights.registry import DEFAULT_MODEL, load_config

        return load_config(model), str(model) if model is not None else DEFAULT_MODEL
    return model.config, model.config.name


def _take_views(jobs: list[_Job], limit: int) -> list[_Job]:
    """The leading jobs whose views fit one forward (at least one job)."""
    taken, views = [], 0
    for job in jobs:
        if taken and views + job.views.shape[0] > limit:
            break
        taken.append(job)
        views += job.views.shape[0]
    return taken


def _timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    """Seconds ``fn`` took, waiting for a GPU's queued kernels so that the time lands
    on the stage that launched them rather than on the next one that reads a result."""
    import time

    start = time.perf_counter()
    value = fn()
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)
    return time.perf_counter() - start, value


def _share(jobs: list[_Job], stage: str, seconds: float, weights: list[int]) -> None:
    """Split a batched stage's time between the jobs' requests by their share of work."""
    total = sum(weights) or 1
    for job, weight in zip(jobs, weights, strict=True):
        job.state.watch.add(stage, seconds * weight / total)
