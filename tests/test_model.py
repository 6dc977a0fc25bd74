"""End to end through a tiny random CLIP + TokenPacker + tiny random LLaMA."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import make_pdf, tiny_model_config
from tpdoc.answering.budget import inspect_document
from tpdoc.documents.prepare import prepare_pages
from tpdoc.errors import ConfigError
from tpdoc.model.document_model import DocumentModel
from tpdoc.model.vision import ClipVisionTower, FeatureSelection


@pytest.fixture(scope="module")
def model(tiny_tokenizer):
    torch.manual_seed(0)
    return DocumentModel.from_config(tiny_model_config(tiny_tokenizer), tiny_tokenizer).eval()


@pytest.fixture
def pdf(tmp_path):
    return make_pdf(tmp_path / "doc.pdf", [(595.0, 842.0), (300.0, 300.0)])


def test_vision_features_are_the_selected_hidden_states(model):
    tower = model.vision
    pixels = torch.randn(3, 3, tower.tile_size, tower.tile_size)
    feats = tower(pixels)
    hidden = tower.vision_tower(pixels, output_hidden_states=True).hidden_states
    g, c = tower.patch_grid, tower.hidden_size
    assert feats.features.shape == (3, g * g, c)
    assert feats.multi_level_features.shape == (3, g * g, 3 * c)
    torch.testing.assert_close(feats.features, hidden[-2][:, 1:])
    torch.testing.assert_close(feats.multi_level_features[..., c : 2 * c], hidden[2][:, 1:])


def test_tower_rejects_levels_it_does_not_have(model):
    with pytest.raises(ConfigError, match="out of range"):
        ClipVisionTower(model.vision.vision_tower, FeatureSelection(levels=(1, 9)))


def test_all_views_of_all_pages_go_through_the_tower_once(model, pdf):
    pages = list(prepare_pages(pdf, model.config.tiling))
    calls = []
    hook = model.vision.vision_tower.register_forward_hook(lambda *a: calls.append(a[1][0].shape))
    try:
        packed = model.encode(torch.cat([p.views for p in pages]))
    finally:
        hook.remove()
    views = sum(p.plan.num_views for p in pages)
    assert calls == [torch.Size([views, 3, 56, 56])]
    assert packed.shape == (views, model.projector.tokens_per_tile, 32)


def test_sequence_length_is_inspect_count_plus_text_and_one_token_is_generated(model, pdf):
    config = model.config
    budget = inspect_document(pdf, config.geometry)
    pages = list(prepare_pages(pdf, config.tiling))
    assert [p.plan.grid for p in pages] == [tuple(b["grid"]) for b in budget.to_json()["pages"]]
    packed = model.encode(torch.cat([p.views for p in pages]))
    embeds, start = [], 0
    for p in pages:
        embeds.append(model.page_embeddings(packed[start : start + p.plan.num_views], p.plan))
        start += p.plan.num_views
    prompt = model.prompt_ids("What is the total?")
    batch = model.build_batch([prompt, prompt], embeds)
    for page_budget, length in zip(budget.pages, batch.lengths, strict=True):
        assert length == page_budget.visual_tokens + len(prompt)
    answers = model.generate(batch, max_new_tokens=1)
    assert len(answers) == 2
    for answer in answers:
        assert len(answer.logprobs) == 1 and answer.logprobs[0] <= 0
        assert len(answer.token_ids) <= 1


def test_left_padding_does_not_change_the_answer(model, pdf):
    """A short page generated alone or beside a long one gives the same tokens and scores."""
    pages = list(prepare_pages(pdf, model.config.tiling))
    prompt = model.prompt_ids("What is the total?")
    embeds = [model.page_embeddings(model.encode(p.views), p.plan) for p in pages]
    together = model.generate(model.build_batch([prompt, prompt], embeds), max_new_tokens=4)
    alone = model.generate(model.build_batch([prompt], embeds[1:]), max_new_tokens=4)
    assert together[1].token_ids == alone[0].token_ids
    assert together[1].logprobs == pytest.approx(alone[0].logprobs, abs=1e-4)


def test_training_loss_counts_only_answer_tokens(model, pdf):
    page = next(iter(prepare_pages(pdf, model.config.tiling, pages="2")))
    embeds = [model.page_embeddings(model.encode(page.views), page.plan)]
    prompt = model.prompt_ids("What is the total?")
    batch = model.build_batch([prompt], embeds, answers=["1,234.56"], padding_side="right")
    answer_ids = model.tokenizer("1,234.56", add_special_tokens=False).input_ids
    labelled = batch.labels[batch.labels != -100].tolist()
    assert labelled == [*answer_ids, model.tokenizer.eos_token_id]
    loss = model.loss(batch)
    assert torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    assert model.projector.mlp[0].weight.grad is not None  # gradients reach the packer


def test_inconsistent_model_config_is_rejected(tiny_tokenizer):
    from dataclasses import replace

    config = tiny_model_config(tiny_tokenizer)
    with pytest.raises(ConfigError, match="projector grid"):
        replace(config, projector=replace(config.projector, grid=8))
    with pytest.raises(ConfigError, match="llm_dim"):
        replace(config, text={**config.text, "hidden_size": 64})


def test_config_round_trips_through_json(tiny_tokenizer, tmp_path):
    from tpdoc.model.config import ModelConfig
    from tpdoc.weights.registry import load_config

    config = tiny_model_config(tiny_tokenizer, scale=4, max_tiles=16)
    config.save(tmp_path)
    loaded = load_config(tmp_path)
    assert loaded == config
    assert loaded.geometry.tokens_per_tile == 1 and loaded.geometry.max_tiles == 16
    assert ModelConfig.from_dict(config.to_dict()) == config


def test_auto_precision_autocasts_to_bfloat16_only_on_a_cpu_that_has_it(monkeypatch):
    from tpdoc.weights import loading

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(loading, "cpu_has_bfloat16", lambda: True)
    assert loading.resolve_autocast("auto", cpu) is torch.bfloat16
    assert loading.resolve_autocast("float32", cpu) is None  # an explicit dtype is kept
    assert loading.resolve_autocast("auto", cuda) is None  # GPUs get bfloat16 weights instead
    monkeypatch.setattr(loading, "cpu_has_bfloat16", lambda: False)
    assert loading.resolve_autocast("auto", cpu) is None


def test_autocast_computes_in_bfloat16_and_hands_back_the_weights_dtype(model, pdf):
    views = next(iter(prepare_pages(pdf, model.config.tiling, pages="1"))).views
    full = model.encode(views)
    model.autocast = torch.bfloat16
    try:
        fast = model.encode(views)
        precision = model.precision
    finally:
        model.autocast = None
    assert fast.dtype == full.dtype == torch.float32
    assert not torch.equal(fast, full)  # the matmuls did run in bfloat16 ...
    torch.testing.assert_close(fast, full, atol=0.1, rtol=0.05)  # ... to about 2-3 digits
    assert (precision, model.precision) == ("float32+autocast-bfloat16", "float32")
