"""Training the embedded model's architecture on a tiny config: it learns, saves, resumes."""

from __future__ import annotations

import json
import random

import pytest
import torch

from tpdoc.model.config import ModelConfig, VisionConfig
from tpdoc.model.packer import PackerConfig
from tpdoc.synth.render import Glyph
from tpdoc.train.glyphs import GlyphGrid, GlyphHead
from tpdoc.train.qa import joined, make_sample, reading_order, tile_lines


def tiny_conv_config() -> ModelConfig:
    vision = VisionConfig(
        type="convnet",
        config={
            "image_size": 64,
            "patch_size": 16,
            "hidden_size": 16,
            "stem_channels": [8, 8, 16],
            "depth": 2,
            "mlp_ratio": 2,
            "kernel_size": 3,
        },  # fmt: skip
        select_layer=-1,
        levels=(0, 1, 2),
    )
    projector = PackerConfig(vision_dim=16, num_levels=3, embed_dim=16, num_heads=2, llm_dim=32,
                             grid=4, scale=2)  # fmt: skip
    text = {"vocab_size": 512, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
            "num_attention_heads": 2, "num_key_value_heads": 2, "max_position_embeddings": 4096,
            "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 3,
            "tie_word_embeddings": True}  # fmt: skip
    return ModelConfig(name="tiny-conv", vision=vision, projector=projector, text=text,
                       max_tiles=9, image_mean=(0.5,) * 3, image_std=(0.5,) * 3)  # fmt: skip


def test_reading_order_groups_lines_and_spaces():
    found = [Glyph("b", (7, 0, 13, 10)), Glyph("a", (0, 0, 6, 10)), Glyph("c", (30, 1, 36, 11)),
             Glyph("d", (0, 20, 6, 30))]  # fmt: skip
    assert reading_order(found) == "ab c\nd"


def test_text_lines_carry_their_boxes_in_tile_pixels():
    found = [Glyph("a", (100, 50, 106, 60)), Glyph("b", (107, 50, 113, 60)),
             Glyph("c", (100, 70, 106, 80))]  # fmt: skip
    found.append(Glyph("d", (130, 70, 136, 80)))  # after a wide gap: a space first
    lines = tile_lines(found, 96, 48)
    assert [line.text for line in lines] == ["ab", "c d"]
    assert lines[0].box == (4, 2, 17, 12)
    assert lines[1].centres == ((7, 27), None, (37, 27))
    assert "\n".join(line.text for line in lines) == reading_order(found)
    both = joined(lines, limit=4)
    assert (both.text, both.centres) == ("ab\nc", ((7, 7), (14, 7), None, (7, 27)))
    assert both.box == (4, 2, 40, 32)


def test_a_tile_without_lines_gives_an_unguided_answer_not_a_crash():
    from tpdoc.train.qa_losses import answer_line

    assert joined([]).text == ""
    line = answer_line([], "42.00")
    assert (line.text, line.centres) == ("42.00", ())


def test_line_runs_show_only_their_lines_and_say_them():
    from tpdoc.train.lines import LINE_MARGIN, line_runs, white_value
    from tpdoc.weights.registry import load_config

    tiling = load_config().tiling
    white = white_value(tiling.image_mean, tiling.image_std)
    rng = random.Random(5)
    sample = None
    while sample is None:
        sample = make_sample(rng, tiling, GlyphGrid(cell=16), "train", 2)
    views, shown = line_runs(sample, rng, 6, 2, white)
    assert views.shape == (6, 3, tiling.tile_size, tiling.tile_size) and len(shown) == 6
    texts = [run.text for run in shown]
    runs = {
        "\n".join(x.text for x in lines[j : j + k]): (tile, lines[j : j + k])
        for tile, lines in enumerate(sample.lines)
        for k in (1, 2)
        for j in range(len(lines) - k + 1)
    }
    for view, text in zip(views, texts, strict=True):
        tile, run = runs[text]  # a run of one or two consecutive lines of one tile
        x0 = max(0, int(min(x.box[0] for x in run)) - LINE_MARGIN)
        y0 = max(0, int(min(x.box[1] for x in run)) - LINE_MARGIN)
        x1 = int(max(x.box[2] for x in run) + 0.999) + LINE_MARGIN
        y1 = int(max(x.box[3] for x in run) + 0.999) + LINE_MARGIN
        # Shown as in the tile inside the run's box, white everywhere else.
        assert torch.equal(view[:, y0:y1, x0:x1], sample.views[tile][:, y0:y1, x0:x1])
        outside = torch.ones(view.shape[1:], dtype=torch.bool)
        outside[y0:y1, x0:x1] = False
        assert (view[:, outside] == white.reshape(3, 1)).all()
        assert outside.any() and not (view == white).all()


def test_samples_are_built_like_answer_time_inputs():
    config = tiny_conv_config()
    grid = GlyphGrid(cell=16)
    sample = make_sample(random.Random(3), config.tiling, grid, "train", 3)
    assert sample is not None and sample.qa
    assert sample.views.shape == (sample.plan.num_views, 3, 64, 64)
    assert sample.glyph_labels.shape == (sample.plan.rows * sample.plan.cols, 16, 8)
    assert (sample.glyph_labels > 0).any()


def test_every_tile_is_read_and_single_tile_questions_stay_inside_their_tile():
    from tpdoc.weights.registry import load_config

    tiling = load_config().tiling  # the embedded 384-px tiles: fields fit inside one
    rng = random.Random(11)
    local = 0
    for _ in range(4):
        sample = make_sample(rng, tiling, GlyphGrid(cell=16), "train", 4)
        if sample is None:
            continue
        tiles = sample.plan.rows * sample.plan.cols
        with_text = {i for i in range(tiles) if (sample.glyph_labels[i] > 0).any()}
        assert {i for i, _ in sample.tile_texts} == with_text
        texts = dict(sample.tile_texts)
        for tile, question, answer in sample.tile_qa:
            assert (question, answer) in sample.qa
            # Both ends of the value lie in the tile, so its transcription holds all of it.
            assert "".join(answer.split()) in "".join(texts[tile].split())
            local += 1
    assert local > 0


def test_a_few_steps_reduce_the_loss_on_one_page():
    from tests.conftest import make_tokenizer
    from tpdoc.model.document_model import DocumentModel
    from tpdoc.train.qa_losses import step_loss

    torch.manual_seed(0)
    config = tiny_conv_config()
    tok = make_tokenizer()
    from dataclasses import replace

    config = replace(config, text={**config.text, "vocab_size": len(tok)})
    model = DocumentModel.from_config(config, tok)
    head = GlyphHead(16, GlyphGrid(cell=16))
    sample = make_sample(random.Random(5), config.tiling, GlyphGrid(cell=16), "train", 2)
    opt = torch.optim.AdamW([*model.parameters(), *head.parameters()], lr=3e-3)
    from contextlib import nullcontext

    losses = []
    rng = random.Random(0)
    for _ in range(12):
        parts = step_loss(model, head, sample, nullcontext, rng)
        assert {"qa", "read", "glyph"} <= parts.keys()
        loss = sum(parts.values())
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


@pytest.mark.parametrize("freeze", [False, True])
def test_qa_training_runs_saves_and_resumes(tmp_path, freeze):
    from tpdoc.train.run_qa import train_qa
    from tpdoc.weights.checkpoint import load_model

    out = tmp_path / "run"
    kwargs = dict(tower=None, eval_every=2, workers=0, config=tiny_conv_config(),
                  tokenizer_docs=5, eval_pages=1, bf16=False, freeze_vision=freeze)  # fmt: skip
    first = train_qa(out, steps=2, **kwargs)
    assert first["step"] == 2 and 0 <= first["heldout_em"] <= 1
    before = {k: v.clone() for k, v in load_model(out / "model").state_dict().items()}
    second = train_qa(out, steps=4, resume=True, **kwargs)
    assert second["step"] == 4
    assert json.loads((out / "progress.json").read_text())["step"] == 4
    lines = (out / "log.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [2, 4]
    after = load_model(out / "model").state_dict()
    changed = [k for k in after if not torch.equal(after[k], before[k])]
    assert any(k.startswith("language_model.") for k in changed)
    assert any(k.startswith("vision.") for k in changed) != freeze


def tiny_conv_model(tokenizer):
    """A seeded random model of ``tiny_conv_config`` with ``tokenizer``'s vocabulary."""
    from dataclasses import replace

    from tpdoc.model.document_model import DocumentModel

    torch.manual_seed(1)
    config = tiny_conv_config()
    config = replace(config, text={**config.text, "vocab_size": len(tokenizer)})
    return DocumentModel.from_config(config, tokenizer).eval()


def test_saved_model_round_trips_with_identical_outputs(tmp_path, tiny_tokenizer):
    from tpdoc.weights.checkpoint import load_model, save_model

    model = tiny_conv_model(tiny_tokenizer)
    config = model.config
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    sample = make_sample(random.Random(2), config.tiling, GlyphGrid(cell=16), "train", 1)
    with torch.no_grad():
        a, b = model.encode(sample.views), loaded.encode(sample.views)
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        prompt = model.prompt_ids("What is the total?")
        batch_a = model.build_batch([prompt], [model.page_embeddings(a, sample.plan)])
        batch_b = loaded.build_batch([prompt], [loaded.page_embeddings(b, sample.plan)])
        assert model.generate(batch_a, 5) == loaded.generate(batch_b, 5)


def test_glyph_stage_trains_saves_and_inits_a_tower(tmp_path):
    from tpdoc.model.document_model import build_vision_tower
    from tpdoc.train.run_glyphs import train_glyphs
    from tpdoc.train.stage_files import load_tower

    config = tiny_conv_config()
    out = tmp_path / "glyphs"
    metrics = train_glyphs(out, steps=2, batch=2, eval_every=1, workers=0, bf16=False,
                           config=config, eval_crops=2)  # fmt: skip
    assert metrics["step"] == 2 and 0 <= metrics["heldout_glyph_acc"] <= 1
    assert [json.loads(x)["step"] for x in (out / "log.jsonl").read_text().splitlines()] == [1, 2]
    fresh = build_vision_tower(config)
    load_tower(fresh, out / "tower.safetensors")
    from tpdoc.weights.tensors import load_strict, read_safetensors

    head = GlyphHead(16, GlyphGrid(cell=16))
    load_strict(head, read_safetensors([out / "glyph_head.safetensors"]), "head")
    # Stage 2 starts from both (its glyph loss keeps the trained head).
    from tpdoc.train.run_qa import train_qa

    qa = train_qa(tmp_path / "qa", steps=1, tower=out / "tower.safetensors", eval_every=1,
                  workers=0, config=config, tokenizer_docs=3, eval_pages=1, bf16=False)  # fmt: skip
    assert qa["step"] == 1  # both files loaded strictly: a mismatch would have raised
    resumed = train_glyphs(out, steps=3, batch=2, eval_every=1, workers=0, bf16=False,
                           config=config, eval_crops=2, resume=True)  # fmt: skip
    assert resumed["step"] == 3
    trained = build_vision_tower(config)
    load_tower(trained, out / "tower.safetensors")
    changed = [
        k for k, v in trained.state_dict().items() if not torch.equal(v, fresh.state_dict()[k])
    ]
    assert changed  # the third step moved the weights saved after step 2


def test_export_writes_float16_weights_and_keeps_the_model_card(tmp_path, tiny_tokenizer):
    from safetensors import safe_open

    from tpdoc.train.__main__ import main
    from tpdoc.weights.checkpoint import load_model, save_model

    model = tiny_conv_model(tiny_tokenizer)
    save_model(model, tmp_path / "trained")
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    (shipped / "README.md").write_text("model card\n")
    assert main(["export", "--model", str(tmp_path / "trained"), "--out", str(shipped)]) == 0
    assert (shipped / "README.md").read_text() == "model card\n"
    with safe_open(str(shipped / "model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()}  # noqa: SIM118 - safe_open is no dict == {torch.float16}
    loaded = load_model(shipped)  # float32 again on load
    for name, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], value, rtol=1e-3, atol=1e-4)


def test_tpdoc_train_runs_the_stages_cli(capsys):
    from tpdoc.cli import main

    with pytest.raises(SystemExit) as done:
        main(["train", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "usage: tpdoc train" in out and "glyphs" in out and "qa" in out
    with pytest.raises(SystemExit) as bad:
        main(["train", "nonsense"])
    assert bad.value.code == 2 and "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["avgpool", "mlp2x_gelu"])
def test_qa_stage_swaps_in_a_fresh_projector_of_another_kind(tmp_path, kind):
    from dataclasses import replace

    from tpdoc.train.run_qa import train_qa
    from tpdoc.weights.checkpoint import load_model

    config = tiny_conv_config()
    kwargs = dict(tower=None, eval_every=1, workers=0, config=config, tokenizer_docs=3,
                  eval_pages=1, bf16=False)  # fmt: skip
    train_qa(tmp_path / "a", steps=1, **kwargs)
    other = replace(config.projector, kind=kind)
    metrics = train_qa(tmp_path / "b", steps=1, init_model=tmp_path / "a" / "model",
                       projector=other, freeze_vision=True, **kwargs)  # fmt: skip
    a = load_model(tmp_path / "a" / "model").state_dict()
    model = load_model(tmp_path / "b" / "model")
    assert model.config.projector.kind == kind
    assert 0.0 <= metrics["heldout_packed_glyph_acc"] <= 1.0
    b = model.state_dict()
    # Tower kept (frozen), projector replaced.
    assert all(torch.equal(a[k], b[k]) for k in a if k.startswith("vision."))
    assert not any(k.startswith("projector.q_proj") for k in b)


def test_qa_stage_continues_from_a_saved_model(tmp_path):
    from tpdoc.train.run_qa import train_qa
    from tpdoc.weights.checkpoint import load_model

    kwargs = dict(tower=None, eval_every=1, workers=0, config=tiny_conv_config(),
                  tokenizer_docs=3, eval_pages=1, bf16=False)  # fmt: skip
    train_qa(tmp_path / "a", steps=1, **kwargs)
    assert (tmp_path / "a" / "model" / "glyph_head.safetensors").is_file()
    # With a zero learning rate the continued run must save exactly what it started from.
    train_qa(tmp_path / "b", steps=1, lr=0.0, init_model=tmp_path / "a" / "model", **kwargs)
    a = load_model(tmp_path / "a" / "model").state_dict()
    b = load_model(tmp_path / "b" / "model").state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    tokenizer_a = (tmp_path / "a" / "model" / "tokenizer.json").read_text()
    assert tokenizer_a == (tmp_path / "b" / "model" / "tokenizer.json").read_text()


def test_packed_labels_match_labelling_each_packed_region_directly():
    from tpdoc.train.glyphs import label_crop
    from tpdoc.train.packed_glyphs import packed_labels

    rng = random.Random(0)
    found = [Glyph(chr(65 + i % 26), (x, y, x + 3, y + 5))
             for i, (x, y) in enumerate((rng.uniform(0, 60), rng.uniform(0, 60))
                                        for _ in range(40))]  # fmt: skip
    fine = label_crop(found, 0, 0, 64, GlyphGrid(cell=16))  # [16, 8]
    coarse = label_crop(found, 0, 0, 64, GlyphGrid(cell=32, rows=4, cols=8))  # [4, 32]
    assert torch.equal(packed_labels(fine[None], GlyphGrid(cell=16), 4, 2)[0], coarse)
