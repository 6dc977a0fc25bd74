"""Watching work happen: stage timings, and the tokens of answers as they are generated.

In: code run inside ``Stopwatch.stage(name)`` blocks; the token ids ``generate`` hands
its streamer. Out: seconds per stage (render, vision, packer, prefill, decode, cache);
each answer's text so far, passed to a callback after every token; and the moment the
first token came, which splits generation into prefill and decode.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

STAGES = ("render", "vision", "packer", "prefill", "decode", "cache")


class Stopwatch:
    """Seconds spent per stage, summed over every block of that stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(STAGES, 0.0)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds


TextCallback = Callable[[int, str], None]  # (row in the batch, the row's text so far)


class TokenStream:
    """A ``transformers`` streamer (``put`` / ``end``) for a batch of B answers.

    ``generate`` first puts the prompt ids ``[B, n]`` (``n = 0`` with embeddings), then
    one token per row ``[B]`` per step. A row stops at its first EOS.
    """

    def __init__(self, tokenizer: Any, rows: int, on_text: TextCallback | None = None) -> None:
        self.tokenizer = tokenizer
        self.on_text = on_text
        self.tokens: list[list[int]] = [[] for _ in range(rows)]
        self.texts = [""] * rows
        self.done = [False] * rows
        self.start = time.perf_counter()
        self.first_token: float | None = None
        self.finished: float | None = None

    def put(self, value: Any) -> None:
        if value.dim() > 1:
            return  # the prompt: nothing generated yet
        if self.first_token is None:
            self.first_token = time.perf_counter()
        eos = self.tokenizer.eos_token_id
        for row, token in enumerate(value.tolist()):
            if self.done[row]:
                continue
            if token == eos:
                self.done[row] = True
                continue
            self.tokens[row].append(token)
            text = self.tokenizer.decode(self.tokens[row], skip_special_tokens=True).strip()
            if text != self.texts[row]:
                self.texts[row] = text
                if self.on_text is not None:
                    self.on_text(row, text)

    def end(self) -> None:
        self.finished = time.perf_counter()

    @property
    def prefill_seconds(self) -> float:
        """Until the first token: the prompt's forward pass (and the first pick)."""
        return (self.first_token or self.finished or self.start) - self.start

    @property
    def decode_seconds(self) -> float:
        """From the first token to the end."""
        if self.first_token is None or self.finished is None:
            return 0.0
        return self.finished - self.first_token
