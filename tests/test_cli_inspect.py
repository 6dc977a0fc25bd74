"""`tpdoc inspect`: the JSON contract, the table, overlays and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import make_pdf
from tpdoc.cli import app, main
from tpdoc.documents.tiling import TilingConfig, plan_page
from tpdoc.model.sequence import count_page_positions

A4 = (595.0, 842.0)
LANDSCAPE = (842.0, 595.0)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def report_pdf(tmp_path: Path) -> Path:
    return make_pdf(tmp_path / "report.pdf", [A4, LANDSCAPE, (300.0, 300.0)])


def _clip_geometry_folder(folder: Path, max_tiles: int) -> str:
    """A model folder (config only) with CLIP ViT-L/336 geometry: 336px tiles, G = 24."""
    from tpdoc.model.config import ModelConfig, VisionConfig
    from tpdoc.model.packer import PackerConfig

    ModelConfig(
        name="clip-geometry",
        vision=VisionConfig(config={"image_size": 336, "patch_size": 14, "hidden_size": 16}),
        projector=PackerConfig(vision_dim=16, embed_dim=16, num_heads=2, llm_dim=32),
        text={"hidden_size": 32, "max_position_embeddings": 4096},
        max_tiles=max_tiles,
    ).save(folder)
    return str(folder)


@pytest.fixture(scope="module")
def clip_geometry_model(tmp_path_factory) -> str:
    """At most 9 tiles."""
    return _clip_geometry_folder(tmp_path_factory.mktemp("clip-geometry"), 9)


@pytest.fixture(scope="module")
def clip_geometry_model_25(tmp_path_factory) -> str:
    """The same geometry, made for up to 25 tiles."""
    return _clip_geometry_folder(tmp_path_factory.mktemp("clip-geometry-25"), 25)


def test_default_model_geometry(runner, report_pdf):
    from tpdoc.weights.registry import load_geometry

    data = json.loads(runner.invoke(app, ["inspect", str(report_pdf), "--json"]).stdout)
    g = load_geometry()
    assert (data["tile_size"], data["max_tiles"], data["tokens_per_tile"]) == (
        g.tile_size, g.max_tiles, g.tokens_per_tile,
    )  # fmt: skip
    first = data["pages"][0]
    plan = plan_page(first["height"], first["width"], g.tiling)
    assert first["visual_tokens"] == count_page_positions(plan, g.tokens_per_tile)


def test_load_geometry_takes_a_tile_cap(clip_geometry_model_25):
    """The library's ``max_tiles`` override, which ``inspect --max-tiles`` passes on."""
    from tpdoc.errors import ConfigError
    from tpdoc.weights.registry import load_config, load_geometry

    assert load_geometry(clip_geometry_model_25).max_tiles == 25
    assert load_geometry(clip_geometry_model_25, max_tiles=9).max_tiles == 9
    assert load_config(clip_geometry_model_25, max_tiles=16).tiling.max_tiles == 16
    with pytest.raises(ConfigError, match="max_tiles must be one of"):
        load_geometry(clip_geometry_model_25, max_tiles=12)


def test_a_tile_cap_above_the_models_own_is_refused(runner, report_pdf, clip_geometry_model):
    """A tpdoc model takes no more tiles than its config.json says (it would go past what
    it was made for, slowly and silently)."""
    from tpdoc.errors import UsageError
    from tpdoc.weights.registry import load_config, load_geometry

    assert load_geometry(clip_geometry_model, max_tiles=9).max_tiles == 9
    expected = "--max-tiles 16: model clip-geometry takes at most 9 tiles"
    with pytest.raises(UsageError, match=expected):
        load_config(clip_geometry_model, max_tiles=16)
    args = ["inspect", str(report_pdf), "--max-tiles", "25", "-m", clip_geometry_model]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert "--max-tiles 25: model clip-geometry takes at most 9 tiles" in line
    assert "ask with --max-tiles 9 or fewer" in line


def test_json_contract(runner, report_pdf, clip_geometry_model):
    result = runner.invoke(app, ["inspect", str(report_pdf), "--json", "-m", clip_geometry_model])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["file"] == str(report_pdf)
    assert (data["tile_size"], data["tokens_per_tile"], data["max_tiles"], data["scale"]) == (
        336, 144, 9, 2,
    )  # fmt: skip
    assert [p["page"] for p in data["pages"]] == [1, 2, 3]
    # 595 x 842 pt at the default planning DPI (144): 1190 x 1684 px, 3 x 2 tiles + global view.
    first = data["pages"][0]
    assert (first["width"], first["height"], first["grid"], first["tiles"]) == (
        1190,
        1684,
        [3, 2],
        7,
    )
    assert first["visual_tokens"] == 7 * 144 + 3 * 1 + 3 + 1
    assert first["visual_tokens_uncompressed"] == 7 * 576 + 3 + 3 + 1
    config = TilingConfig()
    for p in data["pages"]:
        plan = plan_page(p["height"], p["width"], config)
        assert p["grid"] == list(plan.grid) and p["tiles"] == plan.num_views
        assert p["visual_tokens"] == count_page_positions(plan, 144)
    assert data["total_visual_tokens"] == sum(p["visual_tokens"] for p in data["pages"])
    assert data["total_visual_tokens_uncompressed"] == sum(
        p["visual_tokens_uncompressed"] for p in data["pages"]
    )
    assert result.stderr == ""


def test_options_change_the_geometry(runner, report_pdf, clip_geometry_model_25):
    model = ["-m", clip_geometry_model_25]
    base = json.loads(runner.invoke(app, ["inspect", str(report_pdf), "--json", *model]).stdout)
    assert (base["max_tiles"], base["pages"][0]["grid"]) == (25, [6, 4])
    args = ["inspect", str(report_pdf), "--json", "--max-tiles", "9", "--scale", "4", "-p", "1"]
    args += model
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["max_tiles"], data["scale"], data["tokens_per_tile"]) == (9, 4, 36)
    assert [p["page"] for p in data["pages"]] == [1]
    assert data["pages"][0]["grid"] == [3, 2]
    assert data["pages"][0]["tiles"] < base["pages"][0]["tiles"]
    low = json.loads(
        runner.invoke(app, ["inspect", str(report_pdf), "--json", "--dpi", "72"]).stdout
    )
    assert (low["pages"][0]["width"], low["pages"][0]["height"]) == (595, 842)


def test_table_and_overlays(runner, report_pdf, tmp_path, clip_geometry_model):
    out = tmp_path / "overlays"
    args = ["inspect", str(report_pdf), "--overlay", str(out), "-m", clip_geometry_model]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    assert "3×2" in result.stdout and "total" in result.stdout
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["report-page0001.png", "report-page0002.png", "report-page0003.png"]
    from PIL import Image

    with Image.open(out / pngs[0]) as im:
        assert im.size == (1190, 1684)
        # The first tile's outline is drawn in the overlay's first colour at its corner.
        assert im.getpixel((1, 1)) == (0xE6, 0x19, 0x4B)
    assert "overlays written" in result.stderr


def test_a_page_over_the_pixel_limit_says_what_the_user_can_change(runner, report_pdf, tmp_path):
    """The limit has no option (above it Pillow refuses images anyway): the advice is --dpi."""
    args = ["inspect", str(report_pdf), "-p", "1", "--dpi", "2000", "--overlay", str(tmp_path)]
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert "16528x23389 = 386,573,392 pixels exceeds the limit" in line
    assert line.endswith("; lower the DPI (--dpi)") and "max_pixels" not in line


def test_image_input(runner, tmp_path, clip_geometry_model):
    from PIL import Image

    path = tmp_path / "scan.png"
    Image.new("RGB", (480, 480), "white").save(path)
    result = runner.invoke(app, ["inspect", str(path), "--json", "-m", clip_geometry_model])
    data = json.loads(result.stdout)
    assert data["pages"][0]["grid"] == [2, 2] and data["pages"][0]["width"] == 480


@pytest.mark.parametrize(
    "make",
    [
        lambda d: d / "missing.pdf",
        lambda d: d,  # a directory
        lambda d: _write(d / "notes.txt", b"plain text, not a document"),
        lambda d: _write(d / "fake.pdf", b"hello"),
        lambda d: _write(d / "empty.pdf", b""),
    ],
    ids=["missing", "directory", "text", "not-a-pdf", "empty"],
)
def test_bad_documents_give_one_line_and_exit_1(runner, tmp_path, make):
    path = make(tmp_path)
    result = runner.invoke(app, ["inspect", str(path), "--json"])
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:")
    assert str(path) in lines[0]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_bad_page_spec_is_a_usage_error(runner, report_pdf):
    result = runner.invoke(app, ["inspect", str(report_pdf), "--pages", "7"])
    assert result.exit_code == 2
    assert "7" in result.stderr and result.stdout == ""


def test_unknown_model_folder(runner, report_pdf, tmp_path):
    result = runner.invoke(app, ["inspect", str(report_pdf), "--model", str(tmp_path / "nope")])
    assert result.exit_code == 1 and "nope" in result.stderr
    result = runner.invoke(app, ["inspect", str(report_pdf), "--model", str(tmp_path)])
    assert result.exit_code == 1 and "config.json" in result.stderr


def test_usage_errors_are_one_line(capsys, report_pdf):
    code = main(["inspect", str(report_pdf), "--max-tiles", "10"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--max-tiles" in err[0] and "10" in err[0]


def test_version_and_fast_help():
    code = (
        "import sys, tpdoc.cli; assert 'torch' not in sys.modules, 'torch imported'; "
        "assert 'pymupdf' not in sys.modules; assert 'transformers' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    out = subprocess.run(
        [sys.executable, "-m", "tpdoc.cli", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0 and out.stdout.startswith("tpdoc ")
