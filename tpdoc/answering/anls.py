"""ANLS and exact match, as DocVQA scores answers, and the character error rate.

In: a predicted answer and the list of accepted answers (or a transcription and its
reference, for ``cer``). Out: the question's ANLS and exact match, as the official
DocVQA evaluation script computes them: both strings are lower-cased and their whitespace
collapsed (stripped, runs of whitespace to one space);
the edit distance of the normalised strings is divided by the longer length of the
strings *as given* (the script's ``len(answer.upper())``: normalising does not shorten
the denominator); the best accepted answer's similarity ``1 - distance`` counts, and a
similarity below ``THRESHOLD`` (0.5) scores 0. The dataset's ANLS is the mean over its
questions.
"""

from __future__ import annotations

from collections.abc import Sequence

THRESHOLD = 0.5


def normalize(text: str) -> str:
    return " ".join(text.lower().split())


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions), two rows of memory."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def similarity(prediction: str, answer: str) -> float:
    """``1 - NL``: the normalised strings' edit distance over the raw strings' longer
    length (as the official script); two empty strings are identical."""
    longest = max(len(answer.upper()), len(prediction.upper()))
    if longest == 0:
        return 1.0
    return 1.0 - levenshtein(normalize(prediction), normalize(answer)) / longest


def anls(prediction: str, answers: Sequence[str], threshold: float = THRESHOLD) -> float:
    """The question's score: the best similarity over ``answers``, 0 below ``threshold``."""
    best = max((similarity(prediction, a) for a in answers), default=0.0)
    return best if best >= threshold else 0.0


def exact_match(prediction: str, answers: Sequence[str]) -> bool:
    p = normalize(prediction)
    return any(p == normalize(a) for a in answers)


def cer(prediction: str, reference: str) -> float:
    """Character error rate of a transcription: edit distance over the reference length."""
    return levenshtein(prediction, reference) / max(1, len(reference))
