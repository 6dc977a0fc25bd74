"""Reworded training questions for stage P: some words swapped for their neighbours
among the model's pretrained question words.

In: the model's ``QuestionWords`` (word pieces and their frozen vectors), the words of
the training phrasings, a rate. Out: ``Rewording``, which rewrites a question with each
known word, at that rate, replaced by one of its nearest whole words in the vector
space ("employees" by "staff" or "workers", "price" by "cost").

Why: training asks in a few hundred phrasings, which the language model can learn by
their bytes alone, so it has no reason to use the word vectors. A swapped word changes
the bytes and keeps the meaning, which teaches the model to answer by the vectors, and
so to understand words that no training question used. The neighbours come from the
pretrained vectors only; the held-out phrasings are never looked at.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable

import torch

from tpdoc.model.question_words import QuestionWords

WORD = re.compile(r"[A-Za-z]+")
NEIGHBOURS = 6  # nearest whole words a word may become
MIN_LENGTH = 4  # shorter words ("is", "the") stay, and become no shorter word
# Words that carry the question's form, not its subject: their neighbours are noise.
KEEP = frozenset(
    (
        "what",
        "which",
        "when",
        "where",
        "there",
        "this",
        "that",
        "does",
        "have",
        "give",
        "many",
        "much",
        "from",
        "with",
        "were",
        "they",
        "your",
        "tell",
    )
)


class Rewording:
    def __init__(self, words: QuestionWords, vocabulary: Iterable[str], rate: float,
                 neighbours: int = NEIGHBOURS) -> None:  # fmt: skip
        self.rate = rate
        pieces = words.tokenizer.get_vocab()
        # Whole lower-case words of the word-piece vocabulary ("▁" starts a word).
        names = [t[1:] for t in pieces if t.startswith("▁") and t[1:].isascii()
                 and t[1:].isalpha() and t[1:].islower() and len(t) > MIN_LENGTH]  # fmt: skip
        table = torch.nn.functional.normalize(words.table[[pieces["▁" + n] for n in names]], dim=1)
        self.near: dict[str, list[str]] = {}
        for word in sorted({w.lower() for text in vocabulary for w in WORD.findall(text)}):
            piece = pieces.get("▁" + word)
            if piece is None or len(word) < MIN_LENGTH or word in KEEP:
                continue
            v = torch.nn.functional.normalize(words.table[piece], dim=0)
            top = (table @ v).topk(neighbours + 1).indices.tolist()
            self.near[word] = [names[i] for i in top if names[i] != word][:neighbours]

    def __call__(self, question: str, rng: random.Random) -> str:
        def swap(match: re.Match[str]) -> str:
            word = match.group(0)
            near = self.near.get(word.lower())
            if not near or rng.random() >= self.rate:
                return word
            new = rng.choice(near)
            if word.isupper():
                return new.upper()
            return new.capitalize() if word[0].isupper() else new

        return WORD.sub(swap, question)
