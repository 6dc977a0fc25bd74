"""Shared fixtures: tiny tokenizers, tiny model configs and documents made on the fly.

Nothing here touches the network or the user's home: caches are pointed at tmp folders.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

TINY_CORPUS = [
    "Invoice No. INV-2024-0153 Date 12.03.2024 Total 1,234.56 EUR",
    "What is the total? What is the invoice number? Who issued the document?",
    "Question: Answer: not found, receipt, cable kit, price, quantity",
    "A chat between a curious user and an artificial intelligence assistant.",
]


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("HF_HOME", str(home / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TPDOC_CACHE", str(home / "tpdoc-cache"))
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.delenv("TPDOC_DEBUG", raising=False)
    monkeypatch.delenv("TPDOC_PDF_PASSWORD", raising=False)


def make_tokenizer(vocab_size: int = 200):
    """A small tokenizer of the kind the project ships (``tpdoc.model.tokenizer``), trained
    offline."""
    from tpdoc.model.tokenizer import train_tokenizer

    return train_tokenizer(TINY_CORPUS, vocab_size)


@pytest.fixture(scope="session")
def tiny_tokenizer():
    return make_tokenizer()


def tiny_model_config(tokenizer, *, scale: int = 2, mode: str = "slice", max_tiles: int = 9):
    """A ModelConfig small enough for CPU tests: 56px tiles of 14px patches (G = 4)."""
    from tpdoc.model.config import ModelConfig, VisionConfig
    from tpdoc.model.packer import PackerConfig

    vision = VisionConfig(
        type="clip",
        config={
            "image_size": 56,
            "patch_size": 14,
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 3,
            "num_attention_heads": 2,
        },
        select_layer=-2,
        levels=(1, 2, 3),
    )
    projector = PackerConfig(
        vision_dim=16, num_levels=3, embed_dim=16, num_heads=2, llm_dim=32, grid=4, scale=scale
    )
    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 2048,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    return ModelConfig(
        name="tiny-test",
        vision=vision,
        projector=projector,
        text=text,
        mode=mode,
        max_tiles=max_tiles,
    )


def interruptible() -> None:
    """``preexec_fn`` for a child that tests send Ctrl-C (SIGINT): its default action, as
    at a terminal. A shell's background job (a CI runner's, say) starts with SIGINT
    ignored, and a Python child then never raises ``KeyboardInterrupt``."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def make_pdf(path: Path, sizes: list[tuple[float, float]], text: str = "Total 1,234.56") -> Path:
    """A PDF with one page per (width, height) in points, each with some text."""
    import pymupdf

    doc = pymupdf.open()
    for i, (w, h) in enumerate(sizes):
        page = doc.new_page(width=w, height=h)
        page.insert_text((36, 72), f"Page {i + 1}: {text}", fontsize=12)
        page.draw_rect(
            pymupdf.Rect(w - 80, h - 80, w - 20, h - 20), color=(1, 0, 0), fill=(1, 0, 0)
        )
    doc.save(path)
    doc.close()
    return path


# ------------------------------------------------- models for ask, batch, eval and chat


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_tokenizer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random model saved in tpdoc's format: ``--model`` for CLI tests."""
    import torch

    from tpdoc.model.document_model import DocumentModel
    from tpdoc.weights.checkpoint import save_model

    torch.manual_seed(0)
    model = DocumentModel.from_config(tiny_model_config(tiny_tokenizer), tiny_tokenizer)
    return save_model(model.eval(), tmp_path_factory.mktemp("models") / "tiny")


@contextmanager
def forward_lengths(module: torch.nn.Module) -> Iterator[list[int]]:
    """Positions fed to each forward of ``module`` (a language model) inside the block."""
    seen: list[int] = []

    def hook(_module, args, kwargs):
        x = kwargs.get("inputs_embeds")
        if x is None:
            x = kwargs.get("input_ids", args[0] if args else None)
        seen.append(x.shape[1])

    handle = module.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield seen
    finally:
        handle.remove()


def scripted_language_model(tokenizer, hidden: int, script):
    """A language-model double behind the interface ``DocumentModel`` uses (input
    embeddings, ``generate`` with a streamer, ``compute_transition_scores``).

    ``script(prompt_text, visual_positions) -> (answer, logprob)`` decides each answer:
    the prompt's token ids are recovered from the embeddings (exact rows of the table),
    every other position is visual. The answer is generated token by token (EOS last),
    each token with log-probability ``logprob``; ``prompts`` records what each row saw.
    """
    from types import SimpleNamespace

    import torch
    from torch import nn

    class LengthOnlyCache:
        def __init__(self, length: int) -> None:
            self.length = length

        def get_seq_length(self) -> int:
            return self.length

        def crop(self, length: int) -> None:
            pass

    class ScriptedLanguageModel(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(len(tokenizer), hidden)
            self.prompts: list[tuple[str, int]] = []

        def get_input_embeddings(self) -> nn.Module:
            return self.embed

        def forward(self, inputs_embeds, use_cache=False, past_key_values=None, **_):
            """Prefilling a page (``DocumentModel.prefill``): a cache that only knows its
            length; ``generate`` still reads every row from the whole prompt."""
            return {"past_key_values": LengthOnlyCache(inputs_embeds.shape[1])}

        def _read(self, row: torch.Tensor) -> tuple[str, int]:
            same = (row[:, None, :] == self.embed.weight[None]).all(-1)  # [T, vocab]
            is_text = same.any(-1)
            ids = same.float().argmax(-1)[is_text].tolist()
            return tokenizer.decode(ids), int((~is_text).sum())

        def generate(self, inputs_embeds, attention_mask, max_new_tokens, **kwargs):
            eos, pad = kwargs["eos_token_id"], kwargs["pad_token_id"]
            rows, logps = [], []
            for embeds, mask in zip(inputs_embeds, attention_mask, strict=True):
                seen = self._read(embeds[mask.bool()])
                self.prompts.append(seen)
                answer, logp = script(*seen)
                ids = tokenizer(answer, add_special_tokens=False).input_ids
                rows.append([*ids[: max_new_tokens - 1], eos][:max_new_tokens])
                logps.append(logp)
            steps = max(len(r) for r in rows)
            sequences = torch.tensor([r + [pad] * (steps - len(r)) for r in rows])  # [B, n]
            streamer = kwargs.get("streamer")
            if streamer is not None:
                streamer.put(sequences[:, :0])  # the prompt: no ids with embeddings
                for step in range(steps):
                    streamer.put(sequences[:, step])
                streamer.end()
            scores = torch.tensor([[lp] * steps for lp in logps])  # [B, n]
            return SimpleNamespace(sequences=sequences, scores=scores)

        def compute_transition_scores(self, sequences, scores, normalize_logits=True):
            return scores

    return ScriptedLanguageModel()


@pytest.fixture(scope="session")
def scripted_model(tiny_tokenizer):
    """``scripted_model(script)``: the tiny vision tower and packer (random, seeded)
    with a ``scripted_language_model``."""
    import torch

    from tpdoc.model.document_model import DocumentModel, build_vision_tower
    from tpdoc.model.projectors import build_projector

    def make(script):
        torch.manual_seed(0)
        config = tiny_model_config(tiny_tokenizer)
        language_model = scripted_language_model(tiny_tokenizer, config.projector.llm_dim, script)
        vision, projector = build_vision_tower(config), build_projector(config.projector)
        return DocumentModel(config, vision, projector, language_model, tiny_tokenizer).eval()

    return make


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tests run tiny models, for which thread hand-offs cost more than they save (and CI
    machines are shared); results do not depend on the thread count."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
