"""The benchmark scripts count and measure what they say (no timing is asserted)."""

from __future__ import annotations

import json

import pytest

from benchmarks import prefill, tokens
from benchmarks.common import SAMPLES, emit, published_shape


def test_token_counts_follow_the_tile_plan_for_both_projectors():
    geometry = published_shape(layers=1).geometry
    counts, skipped = tokens.count_pages([SAMPLES / "report.pdf"], geometry, caps=(9,),
                                         scales=(2, 4))  # fmt: skip
    assert not skipped
    assert {c.page for c in counts} == {1, 2, 3}
    for c in counts:
        assert c.cap == 9
        # Every view costs (24/s)^2 packed or 576 uncompressed; separators cost the same.
        separators = c.uncompressed % 576
        views = c.uncompressed // 576
        assert c.packed == views * (24 // c.scale) ** 2 + separators
    rows = tokens.summarise(counts)
    assert [r[:3] for r in rows] == [[9, 2, 3], [9, 4, 3]]
    s2 = [c for c in counts if c.scale == 2]
    assert rows[0][9] == round(sum(c.packed for c in s2) / sum(c.uncompressed for c in s2), 4)


def test_unreadable_files_are_listed_not_fatal(tmp_path):
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(b"not a pdf")
    found = tokens.find_documents([tmp_path])
    counts, skipped = tokens.count_pages(found, published_shape(1).geometry, caps=(9,),
                                         scales=(2,))  # fmt: skip
    assert counts == [] and len(skipped) == 1 and "bad.pdf" in skipped[0]


def test_prefill_measures_the_kv_cache_it_builds():
    result = prefill.measure("embedded", "s4", 0, "fp32", repeat=1, decode=2,
                             page=SAMPLES / "report.pdf")  # fmt: skip
    config = prefill.model_config("embedded", 0)
    text = config.text
    assert result["visual_tokens"] == prefill.page_tokens(config, "s4", SAMPLES / "report.pdf")
    assert result["model"] == "embedded" and result["variant"] == "s4"
    assert result["positions"] == result["visual_tokens"] + prefill.PROMPT_TOKENS
    # keys and values of every layer and every prefilled position, fp32
    positions = result["positions"]
    expected = 2 * text["num_hidden_layers"] * positions * text["hidden_size"] * 4
    assert result["kv_mb"] == pytest.approx(expected / 2**20)


def test_json_output_names_the_machine(capsys):
    emit("t", ["a", "b"], [[1, 2.5]], as_json=True)
    record = json.loads(capsys.readouterr().out)
    assert record["rows"] == [{"a": 1, "b": 2.5}] and "cores" in record["machine"]


def test_generated_documents_print_their_answers(tmp_path):
    import pymupdf

    from benchmarks.pipeline import generated_documents

    docs = generated_documents(tmp_path, 3)
    assert len(docs) == 3
    for path, items in docs:
        text = "".join(pymupdf.open(path)[0].get_text().split())
        assert items and all("".join(a.split()) in text for _, a in items)


def test_the_nine_tile_page_splits_three_by_three(tmp_path):
    from benchmarks.common import nine_tile_page
    from tpdoc.answering.planning import plan_within
    from tpdoc.documents.pages import open_document

    with open_document(nine_tile_page(tmp_path)) as doc:
        info = doc.info(1)
        text = doc.render(1)  # the report's content is on it, not a blank page
    plan = plan_within(1, info.height, info.width, published_shape(1).geometry)
    assert (plan.plan.rows, plan.plan.cols) == (3, 3)
    assert text.convert("L").getextrema()[0] < 128


def test_ablation_reports_each_variant_at_the_step_asked(tmp_path):
    from benchmarks.ablation import finished

    log = tmp_path / "mlp" / "log.jsonl"
    log.parent.mkdir()
    log.write_text("".join(json.dumps({"step": s, "heldout_em": s / 1000}) + "\n"
                           for s in (500, 1000)))  # fmt: skip
    assert finished(tmp_path, "mlp", 500)["heldout_em"] == 0.5  # not the last evaluation
    assert finished(tmp_path, "mlp", 1000)["heldout_em"] == 1.0
    assert finished(tmp_path, "mlp", 1500) is None  # not trained that far yet
    assert finished(tmp_path, "tokenpacker-s2", 500) is None


def test_published_shape_pipeline_sets_tokenpacker_beside_the_mlp(monkeypatch):
    """The GPU table's code path, on a published shape shrunk to CPU size."""
    import argparse
    from dataclasses import replace

    from benchmarks import pipeline

    def tiny_shape(layers, *, scale=2, max_tiles=9):
        config = published_shape(layers, scale=scale, max_tiles=max_tiles)
        vision = replace(config.vision, levels=(1, 2, 3), config={**config.vision.config,
                         "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 4,
                         "num_attention_heads": 2})  # fmt: skip
        projector = replace(config.projector, vision_dim=32, embed_dim=32, llm_dim=64,
                            num_levels=3)  # fmt: skip
        text = {**config.text, "hidden_size": 64, "intermediate_size": 128,
                "num_attention_heads": 2, "num_key_value_heads": 2}  # fmt: skip
        return replace(config, vision=vision, projector=projector, text=text)

    monkeypatch.setattr(pipeline, "published_shape", tiny_shape)
    args = argparse.Namespace(docs=2, layers=1, device="cpu", dtype="float32", repeat=1,
                              max_new_tokens=2)  # fmt: skip
    columns, rows, _ = pipeline.shape_rows(args)
    assert columns == ["measurement", "tokenpacker (144/tile)", "mlp (576/tile)", "ratio"]
    by_name = {row[0]: row[1:] for row in rows}
    assert by_name["batch: failed"][:2] == [0, 0]
    packed, mlp, ratio = by_name["batch: pages per second"]
    assert packed > 0 and mlp > 0 and ratio == round(packed / mlp, 3)
    assert "stage: prefill (s)" in by_name and "stage: cache (s)" not in by_name


def test_not_here_threshold_trades_answers_for_not_found_and_is_restored(capsys):
    from benchmarks import not_here
    from tpdoc.model import pointer
    from tpdoc.weights.registry import EMBEDDED_DIR, load_config

    shipped = EMBEDDED_DIR / "tpdoc-tiny"
    if load_config(shipped).answer.kind != "pointer":
        pytest.skip("the shipped model generates its answers")
    before = pointer.NOT_HERE_AT
    not_here.main(["--model", str(shipped), "--pages", "1", "--thresholds", "0,1.01", "--json"])
    rows = json.loads(capsys.readouterr().out)["rows"]
    all_null, no_null = (row['row "not found"'] for row in rows)
    assert all_null == 1.0 and no_null < 1.0  # at 0 "not here" wins every row; above 1 none
    assert before == pointer.NOT_HERE_AT
