"""Synthetic documents, their recorded facts and glyph labels."""

from __future__ import annotations

import random

import pytest
import torch

from tpdoc.documents.pdf import rasterise_pdf_page as rasterise
from tpdoc.synth import values as V
from tpdoc.synth.fonts import EVAL_FAMILIES, HELD_OUT_FAMILIES, faces_for
from tpdoc.synth.layouts import KINDS, make_document
from tpdoc.synth.render import Glyph, as_printed, degrade, glyphs
from tpdoc.train.glyphs import NONE, OTHER, GlyphGrid, char_class, label_crop


@pytest.mark.parametrize("kind", KINDS)
def test_every_recorded_fact_is_printed_on_its_page(kind):
    for seed in range(3):
        synth = make_document(random.Random(seed), kind=kind)
        assert synth.facts, kind
        for fact in synth.facts:
            text = " ".join(as_printed(synth.doc[fact.page - 1].get_text()).split())
            assert " ".join(fact.value.split()) in text, (kind, fact)
        synth.doc.close()


def test_documents_are_reproducible_from_the_seed():
    a = make_document(random.Random(42))
    b = make_document(random.Random(42))
    assert [(f.key, f.value) for f in a.facts] == [(f.key, f.value) for f in b.facts]
    assert a.doc[0].get_text() == b.doc[0].get_text()


def test_glyph_labels_say_what_was_printed_when_a_font_reads_back_other_code_points():
    """Lato reads a hyphen back as U+2010, Liberation as a soft hyphen, both a space as a
    no-break space: the labels must say "-" and " " as printed."""
    from types import SimpleNamespace

    chars = [{"c": c, "bbox": (i, 0.0, i + 1.0, 1.0)} for i, c in enumerate("R\u2010\xad1\xa02")]
    page = SimpleNamespace(
        rect=SimpleNamespace(width=10.0, height=10.0),
        get_text=lambda _kind: {"blocks": [{"lines": [{"spans": [{"chars": chars}]}]}]},
    )
    assert "".join(g.char for g in glyphs(page, (10, 10), spaces=True)) == "R--1 2"
    assert "".join(g.char for g in glyphs(page, (10, 10))) == "R--12"


def test_held_out_fonts_never_train_and_evaluation_does_not_depend_on_the_machine():
    train = {f.family for f in faces_for("train")}
    assert not train & HELD_OUT_FAMILIES
    assert EVAL_FAMILIES <= HELD_OUT_FAMILIES
    evaluated = faces_for("eval")  # pymupdf-fonts' held-out faces, or Base-14 obliques
    assert evaluated and all(f.path is None for f in evaluated)  # never a machine's file
    assert {f.family for f in evaluated} <= EVAL_FAMILIES or all(
        f.code in ("heit", "tiit", "coit") for f in evaluated
    )


def test_base14_faces_refuse_what_they_cannot_print():
    from tpdoc.synth.fonts import FontFace

    helvetica = FontFace("Helvetica", "helv")
    assert helvetica.has_glyphs("Gesamtbetrag 1.234,56 CHF Müller Nº")
    assert not helvetica.has_glyphs("€ 12.00") and not helvetica.has_glyphs("₹ 5")


def test_money_formats():
    style = V.MoneyStyle("€", before=False, decimal_comma=True, space=True)
    assert style.format(1234.5) == "1.234,50 €"
    assert V.MoneyStyle("$", True, False, False).format(1234.5) == "$1,234.50"
    assert V.MoneyStyle("CHF", True, False, False).format(7) == "CHF 7.00"


def test_glyph_boxes_follow_the_raster_scale():
    synth = make_document(random.Random(1), kind="invoice")
    page = synth.doc[0]
    small, big = glyphs(page, (600, 800)), glyphs(page, (1200, 1600))
    assert len(small) == len(big) > 50
    for a, b in zip(small[:20], big[:20], strict=True):
        assert a.char == b.char
        assert b.centre[0] == pytest.approx(2 * a.centre[0], rel=1e-6)
    image = rasterise(page, (600, 800))
    assert image.size == (600, 800)
    degraded, moved = degrade(image, random.Random(0), small)
    assert degraded.size == image.size and len(moved) == len(small)


def test_label_crop_puts_each_glyph_in_its_sub_cell():
    grid = GlyphGrid(cell=16, rows=2, cols=4)
    found = [Glyph("A", (16, 0, 24, 8)), Glyph("7", (40, 20, 44, 30)), Glyph("x", (500, 0, 510, 9))]
    labels = label_crop(found, 0, 0, 64, grid)  # 4 x 4 cells
    assert labels.shape == (16, 8)
    # "A" centre (20, 4): cell (0, 1), sub-row 0, sub-col 1
    assert labels[1, 1] == char_class("A")
    # "7" centre (42, 25): cell (1, 2), sub-row 1 (y 25 - 16 = 9 >= 8), sub-col 2 (x 10 // 4)
    assert labels[1 * 4 + 2, 1 * 4 + 2] == char_class("7")
    assert int((labels != NONE).sum()) == 2  # "x" is outside the crop
    assert char_class("漢") == OTHER


def test_convnet_tower_shapes_and_levels():
    from tpdoc.model.convnet import ConvVisionTower

    tower = ConvVisionTower.from_config(
        {
            "image_size": 64,
            "patch_size": 16,
            "hidden_size": 8,
            "stem_channels": [4, 4, 8],
            "depth": 2,
            "mlp_ratio": 2,
            "kernel_size": 3,
        }  # fmt: skip
    ).eval()
    assert tower.selection.levels == (0, 1, 2) and tower.num_levels == 3
    feats = tower(torch.randn(2, 3, 64, 64))
    assert feats.features.shape == (2, 16, 8)
    assert feats.multi_level_features.shape == (2, 16, 24)
    states = tower.hidden_states(torch.randn(1, 3, 128, 128))  # crops of any multiple of 16
    assert [s.shape for s in states] == [torch.Size([1, 64, 8])] * 3


def test_a_grown_convnet_starts_as_the_tower_it_grew_from():
    from tpdoc.model.convnet import ConvNet, ConvNetConfig

    small = dict(image_size=64, hidden_size=8, stem_channels=(4, 4, 8), depth=1, kernel_size=3)
    torch.manual_seed(0)
    base = ConvNet(ConvNetConfig(**small)).eval()
    grown = ConvNet(ConvNetConfig(**small, stage_blocks=(1, 0, 2))).eval()
    missing, unexpected = grown.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and {k.split(".")[1] for k in missing} == {"0", "2"}
    x = torch.randn(2, 3, 64, 64)
    assert all(torch.equal(a, b) for a, b in zip(base(x), grown(x), strict=True))
    # Once its new blocks have learnt something, the grown tower computes something else.
    with torch.no_grad():
        grown.stage_blocks[2][0].pw2.weight.normal_()
    assert not torch.allclose(base(x)[-1], grown(x)[-1])


def test_convnet_config_errors_show_values():
    from tpdoc.errors import ConfigError
    from tpdoc.model.convnet import ConvNetConfig

    with pytest.raises(ConfigError, match="16"):
        ConvNetConfig(patch_size=16, stem_channels=(8, 8))
    with pytest.raises(ConfigError, match="100"):
        ConvNetConfig(image_size=100)
    with pytest.raises(ConfigError, match=r"\(0, 0, 0, 1\)"):
        ConvNetConfig(stage_blocks=(0, 0, 0, 1))


def test_boxed_field_layout_is_held_out_from_training(monkeypatch):
    import tpdoc.synth.blocks as blocks

    drawn: list[str] = []
    original = blocks.boxed_fields

    def spy(pen, items):
        drawn.append(pen.s.split)
        original(pen, items)

    monkeypatch.setattr(blocks, "boxed_fields", spy)
    rng = random.Random(7)
    for split in ("train", "eval"):
        for _ in range(15):
            synth = make_document(rng, kind="form", split=split)
            synth.doc.close()
    assert "eval" in drawn and "train" not in drawn


def test_held_out_documents_are_asked_in_phrasings_training_never_uses():
    import random
    import re

    from tpdoc.synth.layouts import make_document
    from tpdoc.synth.questions import HELD_OUT_PARAPHRASES, PARAPHRASES, questions_for

    def patterns(table):
        return {
            re.escape(p.lower()).replace(re.escape("{item}"), ".+")
            for ps in table.values()
            for p in ps
        }

    trained, held_out = patterns(PARAPHRASES), patterns(HELD_OUT_PARAPHRASES)
    assert not trained & held_out
    rng = random.Random(0)
    for split, allowed in (("train", trained), ("eval", held_out)):
        for _ in range(3):
            synth = make_document(rng, split=split)
            for question, _, _ in questions_for(synth, 1, rng, 6, absent_rate=1.0):
                text = question.lower().rstrip("?")
                assert any(re.fullmatch(p, text) for p in allowed), (split, question)
            synth.doc.close()


def test_stage_r_grows_a_tower_but_never_shrinks_it(tmp_path, capsys):
    import json

    from safetensors.torch import save_file

    from tpdoc.errors import ConfigError
    from tpdoc.train import run_read
    from tpdoc.train.__main__ import main

    config = run_read.grown(run_read.pointer_config(), (0, 0, 3))
    assert run_read.grown(config, (1, 0, 3)).vision.config["stage_blocks"] == [1, 0, 3]
    with pytest.raises(ConfigError, match="already has 0,0,3; a tower can only grow"):
        run_read.grown(config, (0, 0, 1))
    # The training command says so in one line, before it builds or trains anything.
    tower = tmp_path / "read.safetensors"  # a stage-R file names its tower in its header
    vision = json.dumps(config.vision.config)
    save_file({"x": torch.zeros(1)}, str(tower), metadata={run_read.VISION_METADATA: vision})
    args = ["read", "--out", str(tmp_path / "r"), "--steps", "1", "--tower", str(tower)]
    assert main([*args, "--stage-blocks", "0,0,1"]) == ConfigError.exit_code
    assert "can only grow" in capsys.readouterr().err
