"""Prompt templates (files in ``prompts/``) and their tokenisation around ``<image>``.

In: a template name and a question; a tokenizer. Out: the prompt text, and
``PromptIds`` (token ids before and after the image placeholder) tokenised as the
published LLaVA code does: the prompt is split at ``<image>``, each chunk tokenised on its
own with BOS, and the BOS of every later chunk dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from tpdoc.errors import ConfigError

IMAGE_PLACEHOLDER = "<image>"
QUESTION_FIELD = "{question}"
SHORT_ANSWER = "short_answer"


def prompts_dir() -> Path:
    """Where the template files are: inside the installed package, or the source checkout."""
    here = Path(__file__).resolve().parents[1]  # the tpdoc package
    for candidate in (here / "prompts", here.parent / "prompts"):
        if candidate.is_dir():
            return candidate
    raise ConfigError(f"prompt templates not found next to {here}")


@cache
def _read(name: str) -> str:
    path = prompts_dir() / f"{name}.txt"
    if not path.is_file():
        known = sorted(p.stem for p in prompts_dir().glob("*.txt"))
        raise ConfigError(f"unknown prompt template {name!r}; known: {', '.join(known)}")
    text = path.read_text(encoding="utf-8")
    return text[:-1] if text.endswith("\n") else text


@dataclass(frozen=True)
class PromptTemplate:
    """A template with exactly one ``<image>`` and one ``{question}``."""

    name: str
    text: str

    def __post_init__(self) -> None:
        for field, count in ((IMAGE_PLACEHOLDER, 1), (QUESTION_FIELD, 1)):
            if self.text.count(field) != count:
                raise ConfigError(
                    f"prompt template {self.name!r} must contain {field} exactly {count} time(s)"
                )

    @classmethod
    def load(cls, name: str) -> PromptTemplate:
        return cls(name, _read(name))

    def render(self, question: str, *, short_answer: bool = False) -> str:
        """The full prompt for ``question``; ``short_answer`` appends the DocVQA instruction."""
        if short_answer:
            question = f"{question}\n{_read(SHORT_ANSWER)}"
        return self.text.replace(QUESTION_FIELD, question)


@dataclass(frozen=True)
class PromptIds:
    """Token ids of a prompt around its single image placeholder."""

    before: tuple[int, ...]
    after: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.before) + len(self.after)


def tokenize_prompt(tokenizer: Any, prompt: str) -> PromptIds:
    """Tokenise ``prompt`` around ``<image>`` by the published rule.

    Each chunk is tokenised on its own (the tokenizer adds BOS if it is configured to);
    a leading BOS is kept once, at the very start, and dropped from every later chunk.
    """
    chunks = prompt.split(IMAGE_PLACEHOLDER)
    if len(chunks) != 2:
        raise ConfigError(f"a prompt needs exactly one {IMAGE_PLACEHOLDER}, got {len(chunks) - 1}")
    before, after = (list(tokenizer(chunk).input_ids) for chunk in chunks)
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is not None and after[:1] == [bos] and before[:1] == [bos]:
        after = after[1:]
    return PromptIds(tuple(before), tuple(after))
