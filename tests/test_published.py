"""Published TokenPacker checkpoints (LLaVA-1.5 layout): config conversion, strict loading,
prompting as published, and end-to-end answers, on tiny fixtures written in that layout."""

from __future__ import annotations

import json
import math
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from tests.conftest import make_pdf
from tests.test_packer import packer_reference
from tests.test_published_fixtures import (
    DROP,
    PROJECTOR,
    TOWER_MEAN,
    TOWER_STD,
    clip_state,
    projector_config,
    put_in_hub_cache,
    save_weights,
    tower_tensor,
    write_published,
    write_tower,
)
from tpdoc.answering.budget import inspect_document
from tpdoc.cli import app
from tpdoc.documents.prepare import prepare_pages
from tpdoc.errors import ModelFormatError, ModelNotFoundError, UsageError, WeightsError
from tpdoc.weights.files import find_weight_files
from tpdoc.weights.loading import load_document_model
from tpdoc.weights.published.config import read_published_config
from tpdoc.weights.published.loader import load_published_model
from tpdoc.weights.published.placement import plan_placement
from tpdoc.weights.published.tower import CLIP_L_336
from tpdoc.weights.registry import load_config, load_geometry

VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. The assistant "
    "gives helpful, detailed, and polite answers to the user's questions."
)
SHORT = "Answer the question using a single word or phrase."
QUESTION = "What is the total?"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("published")


@pytest.fixture(scope="module")
def tower(store: Path) -> Path:
    write_tower(store / "clip-tiny")
    return store / "clip-tiny"


# (folder name, mode, weights layout, tokenizer)
VARIANTS = {
    "pad-safetensors": ("tiny-7b-144token", "pad", "safetensors", "sentencepiece"),
    "slice-safetensors-shards": ("tiny-HD-16patch-144token", "slice", "safetensors-shards", "json"),
    "slice-bin-shards": ("tiny-HD-9patch-144token", "slice", "bin-shards", "sentencepiece"),
    "pad-bin-shards": ("tiny-pad-bin", "pad", "bin-shards", "json"),
}


@pytest.fixture(scope="module")
def checkpoints(store: Path, tower: Path) -> dict[str, tuple[Path, dict[str, torch.Tensor]]]:
    made = {}
    for i, (variant, (name, mode, weights, tokenizer)) in enumerate(VARIANTS.items()):
        folder = store / name
        state = write_published(
            folder, tower=tower, mode=mode, weights=weights, tokenizer=tokenizer, seed=i
        )
        made[variant] = (folder, state)
    return made


@pytest.fixture
def pdf(tmp_path: Path) -> Path:
    return make_pdf(tmp_path / "doc.pdf", [(595.0, 842.0), (300.0, 300.0)])


def quiet(_: str) -> None:
    pass


def load(folder: Path, notes: list[str] | None = None, **kwargs):
    report = notes.append if notes is not None else quiet
    return load_published_model(folder, report=report, **kwargs)


# ---------------------------------------------------------------- config conversion


def test_pad_config_converts_to_a_single_view_model_config(checkpoints, tower):
    folder, _ = checkpoints["pad-safetensors"]
    published = read_published_config(folder, report=quiet)
    config = published.config
    assert published.tower.folder == tower
    assert config.name == "tiny-7b-144token"
    assert (config.mode, config.prompt, config.short_answer) == ("pad", "vicuna_v1", True)
    assert (config.vision.select_layer, config.vision.levels) == (-2, (12, 16, 22, 23))
    assert config.vision.config["num_hidden_layers"] == 24
    p = config.projector
    assert (p.kind, p.vision_dim, p.embed_dim, p.num_levels, p.llm_dim, p.grid, p.scale) == (
        "tokenpacker", 16, 16, 4, 64, 4, 2,
    )  # fmt: skip
    assert config.text["hidden_size"] == 64 and "mm_vision_tower" not in config.text
    assert "torch_dtype" not in config.text and "model_type" not in config.text
    assert config.image_mean == pytest.approx(TOWER_MEAN)  # from the tower's preprocessor
    assert config.image_std == pytest.approx(TOWER_STD)
    assert load_config(folder) == config  # the registry reads the same


@pytest.mark.parametrize(
    ("name", "overrides", "max_tiles", "expected", "source"),
    [
        ("any", {"patch_num": 25}, None, 25, "patch_num in config.json"),
        ("ckpt-HD-13b-16patch-64token", {}, None, 16, "checkpoint name"),
        ("ckpt-HD-13b", {}, None, 9, "default"),
        ("ckpt-HD-13b-16patch-64token", {"patch_num": 9}, 25, 25, "--max-tiles"),
    ],
)
def test_max_tiles_come_from_patch_num_the_name_or_the_default(
    tmp_path, tower, name, overrides, max_tiles, expected, source
):
    folder = tmp_path / name
    folder.mkdir()
    config = json.loads(json.dumps(_config_only(tower, mode="slice", **overrides)))
    (folder / "config.json").write_text(json.dumps(config))
    notes: list[str] = []
    published = read_published_config(folder, max_tiles=max_tiles, report=notes.append)
    assert published.config.max_tiles == expected
    assert source in published.tiles_from
    assert any(f"at most {expected} tiles" in n and source in n for n in notes)


def test_max_tiles_override_replaces_an_unsupported_patch_num(tmp_path, tower, capsys):
    """``load_config`` / ``load_geometry`` pass ``max_tiles`` on: a cap tpdoc cannot use is
    then no error, and stderr names the cap used, not the config's."""
    folder = tmp_path / "ckpt-HD-16patch-64token"
    folder.mkdir()
    config = _config_only(tower, mode="slice", patch_num=12)
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFormatError, match=r"max tiles 12 \(patch_num in config.json\)"):
        load_geometry(folder)
    capsys.readouterr()
    assert load_geometry(folder, max_tiles=25).max_tiles == 25
    assert load_config(folder, max_tiles=16).max_tiles == 16
    err = capsys.readouterr().err
    assert "at most 25 tiles (set by the caller (--max-tiles))" in err
    assert "at most 16 tiles (set by the caller (--max-tiles))" in err
    assert "--max-tiles overrides" not in err
    with pytest.raises(UsageError, match=r"must be one of \[9, 16, 25\], got 12"):
        load_geometry(folder, max_tiles=12)


def _config_only(tower: Path | str, **overrides):
    from tests.test_published_fixtures import published_config

    return published_config(tower=str(tower), scale=overrides.pop("scale", 2), vocab=400,
                            mode=overrides.pop("mode", "pad"), **overrides)  # fmt: skip


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"scale_factor": DROP}, "lacks 'scale_factor'"),
        ({"image_aspect_ratio": "anyres"}, "image_aspect_ratio 'anyres'"),
        ({"mm_hidden_size": 1024}, "mm_hidden_size 1024"),
        ({"architectures": ["LlavaMistralForCausalLM"]}, "LlavaMistralForCausalLM"),
        ({"mm_vision_tower": "/nowhere/my-own-tower"}, "my-own-tower"),
        ({"image_aspect_ratio": "slice", "patch_num": 12}, "max tiles 12"),
    ],
)
def test_bad_published_configs_are_named(tmp_path, tower, overrides, message):
    (tmp_path / "config.json").write_text(json.dumps(_config_only(tower, **overrides)))
    with pytest.raises((ModelFormatError, ModelNotFoundError), match=message) as info:
        read_published_config(tmp_path, report=quiet)
    assert "\n" not in str(info.value)


def test_transformers_llava_is_told_apart_from_the_published_layout(tmp_path):
    config = {
        "model_type": "llava",
        "architectures": ["LlavaForConditionalGeneration"],
        "text_config": {"model_type": "llama"},
        "vision_config": {"model_type": "clip_vision_model"},
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFormatError, match="transformers' own LLaVA layout"):
        load_config(tmp_path)
    with pytest.raises(ModelFormatError, match="transformers' own LLaVA layout"):
        load_document_model(tmp_path, device="cpu")


def test_missing_projector_type_is_tokenpacker_and_another_is_noted(tmp_path, tower):
    (tmp_path / "config.json").write_text(json.dumps(_config_only(tower, mm_projector_type=DROP)))
    notes: list[str] = []
    assert read_published_config(tmp_path, report=notes.append).config.projector.kind == (
        "tokenpacker"
    )
    assert notes == []
    (tmp_path / "config.json").write_text(
        json.dumps(_config_only(tower, mm_projector_type="mlp2x_gelu"))
    )
    read_published_config(tmp_path, report=notes.append)
    assert any("'mlp2x_gelu' is ignored" in n for n in notes)


# ---------------------------------------------------------------- loading and answering


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_loads_and_answers_end_to_end(checkpoints, variant, pdf):
    folder, state = checkpoints[variant]
    model = load_document_model(folder, device="cpu", dtype="auto")
    assert model.dtype == torch.float32  # auto on CPU
    # Every LLaMA weight is the published tensor, cast.
    own = model.language_model.state_dict()
    for key in (
        "model.embed_tokens.weight",
        "model.layers.1.mlp.down_proj.weight",
        "lm_head.weight",
    ):
        torch.testing.assert_close(own[key], state[key].float(), rtol=0, atol=0)

    config = model.config
    budget = inspect_document(pdf, config.geometry)
    pages = list(prepare_pages(pdf, config.tiling))
    embeds = [model.page_embeddings(model.encode(p.views), p.plan) for p in pages]
    prompt = model.prompt_ids(QUESTION)
    batch = model.build_batch([prompt] * len(pages), embeds)
    for page, length in zip(budget.pages, batch.lengths, strict=True):
        assert length == page.visual_tokens + len(prompt)  # inspect's count + the text
    if config.mode == "pad":
        assert [p.visual_tokens for p in budget.pages] == [4, 4]  # one view of (4/2)^2
    else:
        assert budget.pages[0].plan.num_views > 1
    answers = model.generate(batch, max_new_tokens=3)
    assert len(answers) == len(pages)
    for answer in answers:
        assert 1 <= len(answer.logprobs) <= 3 and all(lp <= 0 for lp in answer.logprobs)
        assert isinstance(answer.text, str)


def test_projector_and_tower_equal_independent_implementations(checkpoints, tower, pdf):
    """The loaded tower equals transformers' own CLIP loader on the tower folder; the loaded
    projector equals the per-region reference (tests/test_packer.py) on the file's weights."""
    from transformers import CLIPVisionModel

    folder, state = checkpoints["slice-bin-shards"]
    model = load(folder)
    page = next(iter(prepare_pages(pdf, model.config.tiling, pages="1")))
    feats = model.vision(page.views)

    clip = CLIPVisionModel.from_pretrained(str(tower)).eval()
    with torch.no_grad():
        hidden = clip(page.views, output_hidden_states=True).hidden_states
    torch.testing.assert_close(feats.features, hidden[-2][:, 1:])
    levels = torch.cat([hidden[i] for i in (12, 16, 22, 23)], dim=-1)[:, 1:]
    torch.testing.assert_close(feats.multi_level_features, levels)

    weights = {k[len(PROJECTOR) :]: v.double() for k, v in state.items() if k.startswith(PROJECTOR)}
    expected = packer_reference(
        weights,
        projector_config(2),
        feats.features.double(),
        feats.multi_level_features.double(),
    )
    with torch.no_grad():
        got = model.encode(page.views)
    assert got.shape == (page.plan.num_views, 4, 64)
    torch.testing.assert_close(got.double(), expected, rtol=1e-4, atol=1e-5)


def test_prompt_ids_follow_the_published_rule(checkpoints):
    """vicuna_v1 with the DocVQA suffix, split at <image>, each chunk tokenised with BOS by
    sentencepiece itself, BOS of the second chunk dropped."""
    import sentencepiece as spm

    folder, _ = checkpoints["pad-safetensors"]
    model = load(folder)
    text = model.template.render(QUESTION, short_answer=True)
    assert text == f"{VICUNA_SYSTEM} USER: <image>\n{QUESTION}\n{SHORT} ASSISTANT:"
    before, after = text.split("<image>")
    sp = spm.SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))
    ids = model.prompt_ids(QUESTION)
    assert ids.before == (sp.bos_id(), *sp.encode(before))
    assert ids.after == tuple(sp.encode(after))
    long = model.prompt_ids(QUESTION, short_answer=False)  # --long
    assert long.after == tuple(sp.encode(f"\n{QUESTION} ASSISTANT:"))


def test_im_start_end_wraps_the_image_and_adds_the_tokens(tmp_path, tower):
    import sentencepiece as spm

    folder = tmp_path / "im-start-end"
    write_published(folder, tower=tower, mm_use_im_start_end=True, mm_use_im_patch_token=True)
    model = load(folder)
    tok = model.tokenizer
    assert model.config.prompt == "vicuna_v1_im_start_end"
    start, end, patch = tok.convert_tokens_to_ids(["<im_start>", "<im_end>", "<im_patch>"])
    assert sorted([start, end, patch]) == [400, 401, 402]  # after the 400 pieces
    text = model.template.render(QUESTION, short_answer=True)
    assert "USER: <im_start><image><im_end>\n" in text
    ids = model.prompt_ids(QUESTION)
    sp = spm.SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))
    before, after = text.split("<image>")
    assert ids.before == (sp.bos_id(), *sp.encode(before.removesuffix("<im_start>")), start)
    assert ids.after == tuple(tok(after).input_ids[1:])  # BOS dropped
    assert ids.after[0] == end and tok.decode(ids.after[1:]).strip().startswith(QUESTION)


def test_bfloat16_keeps_rotary_tables_in_float32(checkpoints, pdf):
    folder, _ = checkpoints["pad-safetensors"]
    model = load_document_model(folder, device="cpu", dtype="bfloat16", report=quiet)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert model.language_model.model.rotary_emb.inv_freq.dtype == torch.float32
    page = next(iter(prepare_pages(pdf, model.config.tiling, pages="2")))
    batch = model.build_batch(
        [model.prompt_ids(QUESTION)], [model.page_embeddings(model.encode(page.views), page.plan)]
    )
    assert len(model.generate(batch, max_new_tokens=1)[0].logprobs) == 1


def test_placement_is_reported(checkpoints):
    folder, _ = checkpoints["slice-bin-shards"]
    notes: list[str] = []
    load(folder, notes)
    placed = notes[-1]
    assert placed.startswith("tiny-HD-9patch-144token: vision tower on cpu (")
    assert "language model: 2 of 2 layers on cpu (" in placed and "float32 weights" in placed
    assert any("at most 9 tiles (from the checkpoint name" in n for n in notes)


@pytest.mark.filterwarnings("ignore:Current model requires")  # accelerate, about buffers
def test_placement_spreads_layers_over_gpu_and_cpu_and_refuses_disk(checkpoints):
    """accelerate's device map from given memory budgets (no GPU needed to plan)."""
    from accelerate import init_empty_weights

    from tpdoc.errors import ModelError
    from tpdoc.model.document_model import build_language_model

    config = load_config(checkpoints["pad-safetensors"][0])
    with init_empty_weights():
        lm = build_language_model(config.text)
    layer = sum(p.numel() for p in lm.model.layers[0].parameters()) * 4
    embed = lm.model.embed_tokens.weight.numel() * 4
    cuda = torch.device("cuda")
    # accelerate keeps room on the GPU for the largest offloaded module (lm_head ~ embed).
    budget = {0: 2 * embed + layer + layer // 2, "cpu": 10**9}
    placement = plan_placement(lm, cuda, torch.float32, max_memory=budget)
    assert placement.main == torch.device("cuda", 0) and placement.dispatched
    assert placement.device_of("model.layers.0.mlp.up_proj.weight") == 0
    assert placement.device_of("model.layers.1.mlp.up_proj.weight") == "cpu"
    assert placement.device_of("lm_head.weight") == "cpu"
    with pytest.raises(ModelError, match="does not fit in GPU and CPU memory"):
        plan_placement(lm, cuda, torch.float32, max_memory={0: 1000, "cpu": 1000})
    on_cpu = plan_placement(lm, torch.device("cpu"), torch.float32)
    assert on_cpu.device_map == {"": "cpu"} and not on_cpu.dispatched


# ---------------------------------------------------------------- the vision tower's source


def test_author_tower_path_maps_to_its_hub_id(tmp_path, capsys):
    """``./clip-vit-large-patch14-336`` from the authors' machine -> the openai hub id,
    found in the (fake, offline) hub cache; said on stderr."""
    tower = tmp_path / "tower"
    write_tower(tower, seed=3)
    put_in_hub_cache(CLIP_L_336, tower)
    folder = tmp_path / "ckpt"
    write_published(folder, tower="./clip-vit-large-patch14-336")
    model = load_document_model(folder, device="cpu")
    err = capsys.readouterr().err
    mapped = "'./clip-vit-large-patch14-336' does not exist here; using the hub id it names"
    assert f"{mapped}: {CLIP_L_336}" in err
    key = "vision_model.encoder.layers.5.mlp.fc1.weight"
    torch.testing.assert_close(tower_tensor(model, key), clip_state(seed=3)[key])


def test_tower_weights_carried_by_the_checkpoint_are_used(tmp_path):
    tower = tmp_path / "tower-config-only"
    write_tower(tower, weights=False)
    carried = clip_state(seed=7)
    folder = tmp_path / "ckpt"
    write_published(folder, tower=tower, carry_tower=carried)
    model = load(folder)
    for key in (
        "vision_model.embeddings.patch_embedding.weight",
        "vision_model.post_layernorm.bias",
    ):
        torch.testing.assert_close(tower_tensor(model, key), carried[key].half().float())


def test_inspect_reads_a_published_config_alone(tmp_path, capsys):
    """A config.json as published for TokenPacker-HD-13b-16patch-64token (no weights, tower
    path from the authors' machine, not cached): 336px tiles, 64 tokens, 16 tiles."""
    folder = tmp_path / "TokenPacker-HD-13b-16patch-64token"
    folder.mkdir()
    config = _config_only(
        "./clip-vit-large-patch14-336", mode="slice", scale=3, hidden_size=5120,
        intermediate_size=13824, num_hidden_layers=40, num_attention_heads=40,
        num_key_value_heads=40, vocab_size=32000, mm_hidden_size=1024,
        max_position_embeddings=4096,
    )  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))
    pdf = make_pdf(tmp_path / "doc.pdf", [(595.0, 842.0)])
    result = CliRunner().invoke(app, ["inspect", str(pdf), "--model", str(folder), "--json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["tile_size"], data["tokens_per_tile"], data["max_tiles"], data["scale"]) == (
        336, 64, 16, 3,
    )  # fmt: skip
    assert "using its known geometry (336 px tiles, 14 px patches)" in result.stderr
    assert "at most 16 tiles (from the checkpoint name" in result.stderr
    assert f"using the hub id it names: {CLIP_L_336}" in result.stderr
    loaded = load_config(folder)
    assert loaded.text["hidden_size"] == 5120 and loaded.projector.llm_dim == 5120


def test_inspect_passes_max_tiles_to_the_published_config(tmp_path, tower, pdf):
    """``inspect --max-tiles`` reaches the config reader: stderr and the JSON name the cap
    used, and a config.json whose patch_num tpdoc cannot use is read with the override."""
    folder = tmp_path / "tiny-HD-16patch-144token"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(_config_only(tower, mode="slice")))
    args = ["inspect", str(pdf), "--model", str(folder), "--json"]
    result = CliRunner().invoke(app, [*args, "--max-tiles", "25"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["max_tiles"] == 25
    assert "at most 25 tiles (set by the caller (--max-tiles))" in result.stderr
    assert "at most 16 tiles" not in result.stderr

    config = _config_only(tower, mode="slice", patch_num=12)
    (folder / "config.json").write_text(json.dumps(config))
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 1 and "max tiles 12" in refused.stderr
    assert refused.stdout == ""
    result = CliRunner().invoke(app, [*args, "--max-tiles", "9"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["max_tiles"] == 9


def test_inspect_counts_match_the_loaded_model(checkpoints, pdf):
    folder, _ = checkpoints["slice-safetensors-shards"]
    result = CliRunner().invoke(app, ["inspect", str(pdf), "--model", str(folder), "--json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["max_tiles"] == 16  # from the name tiny-HD-16patch-144token
    model = load(folder)
    pages = list(prepare_pages(pdf, model.config.tiling))
    prompt = model.prompt_ids(QUESTION)
    for page, counted in zip(pages, data["pages"], strict=True):
        embeds = model.page_embeddings(model.encode(page.views), page.plan)
        assert model.build_batch([prompt], [embeds]).lengths == [
            counted["visual_tokens"] + len(prompt)
        ]


# ---------------------------------------------------------------- strict, safe loading


def _drop(key):
    return lambda state: state.pop(key)


def _add(key, shape):
    return lambda state: state.__setitem__(key, torch.zeros(shape, dtype=torch.float16))


def _reshape(key):
    return lambda state: state.__setitem__(key, state[key][:, :-1].contiguous())


UP_PROJ = "model.layers.1.mlp.up_proj.weight"
RESAMPLER = "model.vision_resampler.weight"
Q_PROJ = PROJECTOR + "q_proj_1.weight"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (_drop(UP_PROJ), f"missing keys: {UP_PROJ}"),
        (_add(RESAMPLER, (2, 2)), f"unexpected keys: {RESAMPLER}"),
        (_reshape(Q_PROJ), f"mis-shaped keys: {Q_PROJ} (16, 15) != (16, 16)"),
        (_drop(PROJECTOR + "mlp.2.bias"), "missing keys: model.mm_projector.mlp.2.bias"),
    ],
    ids=["missing", "unexpected", "mis-shaped", "missing-projector"],
)
def test_strict_loading_names_the_keys(tmp_path, tower, mutate, message):
    folder = tmp_path / "ckpt"
    write_published(folder, tower=tower, weights="bin-shards", mutate=mutate)
    with pytest.raises(WeightsError, match="weights do not match the model") as info:
        load(folder)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_derived_buffers_in_old_saves_are_accepted(tmp_path, tower):
    key = "model.layers.0.self_attn.rotary_emb.inv_freq"
    folder = tmp_path / "ckpt"
    write_published(folder, tower=tower, weights="bin-shards", mutate=_add(key, (8,)))
    model = load(folder)  # recomputed from the config, not an unexpected weight (zeros)
    config = json.loads((folder / "config.json").read_text())
    head_dim = config["hidden_size"] // config["num_attention_heads"]  # 16: 8 frequencies
    exponents = torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim
    expected = 1.0 / config["rope_theta"] ** exponents
    inv_freq = model.language_model.model.rotary_emb.inv_freq
    torch.testing.assert_close(inv_freq, expected)


EXECUTED: list[str] = []


def _side_effect() -> str:
    EXECUTED.append("ran")
    return "ran"


class Payload:
    """An object whose unpickling would run code."""

    def __reduce__(self):
        return (_side_effect, ())


def test_bin_weights_are_read_weights_only(tmp_path, tower):
    folder = tmp_path / "ckpt"
    write_published(folder, tower=tower, weights="bin-shards")
    shard = sorted(folder.glob("pytorch_model-*.bin"))[0]
    state = torch.load(shard, weights_only=True)
    torch.save({**state, "extra": Payload()}, shard)
    with pytest.raises(WeightsError, match="refused") as info:
        load(folder)
    assert str(shard) in str(info.value)
    assert EXECUTED == []
    with pytest.raises(pickle.UnpicklingError):  # what torch itself says, for the record
        torch.load(shard, weights_only=True)


def test_missing_weights_and_shards_are_errors(tmp_path, tower, checkpoints):
    folder = tmp_path / "ckpt"
    write_published(folder, tower=tower, weights="safetensors-shards")
    shard = sorted(folder.glob("model-*.safetensors"))[1]
    shard.unlink()
    assert find_weight_files(folder).missing == (shard.name,)
    with pytest.raises(ModelFormatError, match=f"missing: {shard.name}"):
        load(folder)
    for path in folder.glob("*.safetensors*"):
        path.unlink()
    with pytest.raises(ModelFormatError, match="no weights"):
        load(folder)


def test_tokenizer_larger_than_the_vocabulary_is_an_error(tmp_path, tower):
    folder = tmp_path / "ckpt"
    write_published(folder, tower=tower)
    config = json.loads((folder / "config.json").read_text())
    config["mm_use_im_start_end"] = True  # two more tokens than embed_tokens has rows
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFormatError, match="the tokenizer has 402 tokens but the LLaMA"):
        load(folder)


def test_fixture_sizes_stay_tiny(checkpoints):
    """Guard the test budget: the fixtures must stay a few hundred KiB."""
    folder, state = checkpoints["pad-safetensors"]
    assert sum(t.numel() for t in state.values()) < 200_000
    assert math.isclose(state["model.norm.weight"].float().mean().item(), 1.0)


def test_tower_folder_is_loaded_strictly_under_either_naming(tmp_path, tower):
    """A tower folder saved by transformers 5 (no ``vision_model.`` prefix) loads too; a
    tower missing a tensor is named with the file's own key."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    from tests.test_published_fixtures import TOWER

    saved = tmp_path / "tower-v5"
    torch.manual_seed(11)
    CLIPVisionModel(CLIPVisionConfig(**TOWER)).save_pretrained(str(saved))
    folder = tmp_path / "ckpt"
    write_published(folder, tower=saved)
    model = load(folder)
    fresh = CLIPVisionModel.from_pretrained(str(saved)).state_dict()
    key = "encoder.layers.3.self_attn.k_proj.weight"
    torch.testing.assert_close(tower_tensor(model, "vision_model." + key), fresh[key])

    broken = tmp_path / "tower-broken"
    write_tower(broken)
    state = torch.load(broken / "pytorch_model.bin", weights_only=True)
    del state["vision_model.post_layernorm.weight"]
    torch.save(state, broken / "pytorch_model.bin")
    write_published(folder, tower=broken)
    with pytest.raises(WeightsError, match="missing keys: vision_model.post_layernorm.weight"):
        load(folder)


# ---------------------------------------------------------------- shared with tpdoc's own format


def test_tpdoc_format_reads_safetensors_shards_and_never_bin(tiny_model_dir, tmp_path):
    """tpdoc's own folders find their weights as published ones do (``find_weight_files``):
    ``model.safetensors`` or indexed safetensors shards, never ``.bin``."""
    from tpdoc.weights.checkpoint import WEIGHTS_FILE, load_model
    from tpdoc.weights.tensors import read_safetensors

    folder = tmp_path / "sharded"
    shutil.copytree(tiny_model_dir, folder)
    state = read_safetensors([folder / WEIGHTS_FILE])
    (folder / WEIGHTS_FILE).unlink()
    save_weights(folder, state, "safetensors-shards")
    model = load_model(folder, max_tiles=9)  # a tpdoc model takes no more than its own cap
    assert model.config.max_tiles == 9
    own = model.state_dict()
    for key, tensor in state.items():
        torch.testing.assert_close(own[key], tensor, rtol=0, atol=0)

    shard = sorted(folder.glob("model-*.safetensors"))[1]
    shard.unlink()
    with pytest.raises(
        ModelFormatError, match=f"shards named by the index are missing: {shard.name}"
    ):
        load_model(folder)
    for path in folder.glob("model*.safetensors*"):
        path.unlink()
    torch.save(state, folder / "pytorch_model.bin")
    with pytest.raises(ModelFormatError, match="safetensors only, never .bin"):
        load_document_model(folder, device="cpu")


def test_cache_identity_includes_a_separately_loaded_tower(tmp_path):
    """The visual-token cache's model identity changes with the tower folder's weights when
    the checkpoint reads its tower from there, and ignores that folder when it carries one."""
    from tpdoc.weights.identity import model_identity

    tower = tmp_path / "tower"
    write_tower(tower, seed=1)
    folder = tmp_path / "ckpt"
    write_published(folder, tower=tower)
    model = load(folder)
    before = model_identity(folder, model)
    assert f"|{tower.resolve()}|" in before
    write_tower(tower, seed=2)  # other tower weights behind the same checkpoint
    assert model_identity(folder, model) != before

    carried = tmp_path / "carried"
    write_published(carried, tower=tower, carry_tower=clip_state(seed=7))
    model = load(carried)
    before = model_identity(carried, model)
    assert str(tower.resolve()) not in before
    write_tower(tower, seed=3)
    assert model_identity(carried, model) == before
