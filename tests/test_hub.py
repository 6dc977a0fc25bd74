"""Hub ids through huggingface_hub's cache (a fake one, offline), `tpdoc pull`, `tpdoc models`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import make_pdf
from tests.test_published_fixtures import put_in_hub_cache, write_published, write_tower
from tpdoc.cli import app
from tpdoc.errors import ModelNotFoundError, UsageError
from tpdoc.weights.catalogue import KNOWN_CHECKPOINTS
from tpdoc.weights.hub import (
    cache_status,
    download_patterns,
    hub_cache_dir,
    hub_model_folder,
    looks_like_hub_id,
    repo_id_from_cache_path,
)
from tpdoc.weights.loading import load_document_model
from tpdoc.weights.published.tower import CLIP_L_336
from tpdoc.weights.pull import pull
from tpdoc.weights.registry import load_config, load_geometry

HD_ID = "sunshine-lwt/TokenPacker-HD-13b-16patch-64token"


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny published HD checkpoint whose tower is named as the authors' scripts name it."""
    store = tmp_path_factory.mktemp("hub-source")
    write_tower(store / "tower")
    write_published(
        store / "ckpt", tower="./clip-vit-large-patch14-336", mode="slice", scale=2,
        weights="safetensors-shards",
    )  # fmt: skip
    return store


@pytest.fixture
def cached(source: Path) -> Path:
    """The checkpoint and its tower in this test's (offline) hub cache."""
    put_in_hub_cache(CLIP_L_336, source / "tower")
    return put_in_hub_cache(HD_ID, source / "ckpt")


def test_hub_ids_are_told_from_paths():
    assert looks_like_hub_id(HD_ID) and looks_like_hub_id("openai/clip-vit-large-patch14-336")
    for spec in ("./clip-vit-large-patch14-336", "/abs/path", "a/b/c", "tpdoc-tiny", "a/../b"):
        assert not looks_like_hub_id(spec), spec


def test_cache_location_follows_the_environment_now(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert hub_cache_dir() == tmp_path / "home" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "elsewhere"))
    assert hub_cache_dir() == tmp_path / "elsewhere"


def test_load_by_hub_id_offline_from_the_cache(cached, capsys):
    model = load_document_model(HD_ID, device="cpu")
    assert model.config.name == HD_ID
    assert model.config.max_tiles == 16  # from the hub id's name: config.json has no patch_num
    assert repo_id_from_cache_path(cached) == HD_ID
    err = capsys.readouterr().err
    assert f"using the hub id it names: {CLIP_L_336}" in err
    assert "at most 16 tiles (from the checkpoint name" in err


def test_cache_identity_names_the_cached_tower(cached, capsys):
    """A hub checkpoint's identity for the visual-token cache includes the tower snapshot
    its weights were loaded from, found again without a second note on stderr."""
    from tpdoc.weights.hub import cached_snapshot
    from tpdoc.weights.identity import model_identity

    model = load_document_model(HD_ID, device="cpu")
    capsys.readouterr()
    identity = model_identity(HD_ID, model)
    assert f"|{cached.resolve()}|" in identity
    assert f"|{cached_snapshot(CLIP_L_336).resolve()}|" in identity
    assert capsys.readouterr().err == ""


def test_inspect_by_hub_id(cached, tmp_path):
    pdf = make_pdf(tmp_path / "doc.pdf", [(595.0, 842.0)])
    result = CliRunner().invoke(app, ["inspect", str(pdf), "--model", HD_ID, "--json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["tile_size"], data["max_tiles"], data["tokens_per_tile"]) == (56, 16, 4)
    assert load_geometry(HD_ID).max_tiles == 16


def test_config_alone_is_enough_for_the_geometry(source):
    put_in_hub_cache(CLIP_L_336, source / "tower", only=["config.json"])
    put_in_hub_cache(HD_ID, source / "ckpt", only=["config.json"])
    assert load_config(HD_ID).geometry.tile_size == 56  # the cached tower config's
    with pytest.raises(ModelNotFoundError, match="incompletely cached") as info:
        load_document_model(HD_ID, device="cpu")
    message = str(info.value)
    assert "missing weights" in message and f"tpdoc pull {HD_ID}" in message


def test_missing_model_offline_says_what_to_download():
    with pytest.raises(ModelNotFoundError) as info:
        hub_model_folder("org/not-there", weights=True)
    message = str(info.value)
    assert message.startswith("org/not-there: no such local folder")
    assert "not in the Hugging Face cache" in message and str(hub_cache_dir()) in message
    assert "HF_HUB_OFFLINE=1" in message and "tpdoc pull org/not-there" in message


def test_missing_model_in_the_cli_is_one_line(tmp_path):
    pdf = make_pdf(tmp_path / "doc.pdf", [(300.0, 300.0)])
    result = CliRunner().invoke(app, ["inspect", str(pdf), "--model", "org/not-there"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: org/not-there: no such local folder")
    assert result.stderr.count("\n") == 1


def test_pull_offline_uses_the_cache_or_says_why_not(cached):
    result = CliRunner().invoke(app, ["pull", HD_ID])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == str(cached)
    assert f"{CLIP_L_336}: " in result.stderr  # the tower is there too
    missing = CliRunner().invoke(app, ["pull", "org/not-there"])
    assert missing.exit_code == 1 and missing.stdout == ""
    assert "HF_HUB_OFFLINE=1 forbids downloading" in missing.stderr
    with pytest.raises(UsageError, match="pull takes a hub id"):
        pull("./some/folder")


def test_pull_online_downloads_the_model_and_its_tower(source, monkeypatch):
    """Online, with huggingface_hub's network calls replaced by a copy into the cache."""
    import huggingface_hub

    real = huggingface_hub.snapshot_download
    calls = []

    def fake_snapshot_download(repo_id, *, cache_dir, local_files_only=False, **kwargs):
        if local_files_only:
            return real(repo_id, cache_dir=cache_dir, local_files_only=True, **kwargs)
        calls.append((repo_id, kwargs.get("allow_patterns")))
        folder = source / ("tower" if repo_id == CLIP_L_336 else "ckpt")
        return str(put_in_hub_cache(repo_id, folder))

    def fake_list_repo_files(self, repo_id, **kwargs):
        folder = source / ("tower" if repo_id == CLIP_L_336 else "ckpt")
        return [p.name for p in folder.iterdir()] + ["tf_model.h5"]

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr("tpdoc.weights.hub.unreachable", lambda url, timeout=None: None)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", fake_list_repo_files)
    notes: list[str] = []
    pulled = pull(HD_ID, report=notes.append)
    assert [repo for repo, _ in calls] == [HD_ID, CLIP_L_336]
    assert "*.safetensors" in calls[0][1] and "pytorch_model*.bin" in calls[1][1]
    assert pulled.extras[0][0] == CLIP_L_336
    assert cache_status(HD_ID) == "cached"
    assert any(n.startswith(f"downloading {HD_ID} into ") for n in notes)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert load_document_model(HD_ID, device="cpu", report=notes.append).config.name == HD_ID


def test_download_patterns_pick_one_weight_format():
    both = ["config.json", "model.safetensors", "pytorch_model.bin", "tf_model.h5"]
    assert "*.safetensors" in download_patterns(both)
    assert "pytorch_model*.bin" not in download_patterns(both)
    only_bin = ["config.json", "pytorch_model.bin", "flax_model.msgpack"]
    assert "pytorch_model*.bin" in download_patterns(only_bin)
    assert not any("msgpack" in p or "h5" in p for p in download_patterns(only_bin))


def test_models_lists_the_embedded_and_the_published_checkpoints(cached, monkeypatch):
    result = CliRunner().invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["tpdoc-tiny"]["source"] == "embedded"
    assert {k.repo_id for k in KNOWN_CHECKPOINTS} <= set(rows)
    hd16 = rows[HD_ID]
    assert (hd16["tokens_per_tile"], hd16["max_tiles"], hd16["avg_tokens_per_page"]) == (
        64, 16, 619,
    )  # fmt: skip
    assert hd16["status"] == "cached"
    single = rows["sunshine-lwt/TokenPacker-7b-144token"]
    assert (single["mode"], single["tokens_per_tile"], single["status"]) == ("pad", 144, "absent")
    assert [rows[f"sunshine-lwt/TokenPacker-HD-13b-16patch-{n}token"]["avg_tokens_per_page"]
            for n in (144, 64, 36)] == [1393, 619, 347]  # fmt: skip
    assert rows["sunshine-lwt/TokenPacker-HD-7b-9patch-144token"]["avg_tokens_per_page"] == 954
    assert f"vision tower {CLIP_L_336} (cached)" in result.stderr

    monkeypatch.setenv("COLUMNS", "60")  # a narrow terminal's setting, but stdout is a pipe
    table = CliRunner().invoke(app, ["models"])
    assert table.exit_code == 0
    assert HD_ID in table.stdout and "1344x1344" in table.stdout
    assert "absent" in table.stdout and "cached" in table.stdout
    assert "weights shipped" in table.stdout  # a pipe gets whole cells, never "we…"
    assert all(k.repo_id in table.stdout for k in KNOWN_CHECKPOINTS)


def test_unreachable_hub_and_unknown_repo_are_one_line_errors(monkeypatch):
    import huggingface_hub
    from huggingface_hub import errors

    httpx2 = pytest.importorskip("httpx2")  # huggingface_hub's HTTP client (hub >= 1)

    request = httpx2.Request("GET", "https://huggingface.co/api/models/org/name")

    def unreachable(*args, **kwargs):
        raise httpx2.ConnectError("Name or service not known", request=request)

    def unknown(*args, **kwargs):
        response = httpx2.Response(404, request=request)
        raise errors.RepositoryNotFoundError("404 Client Error", response=response)

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(
        "tpdoc.weights.hub.unreachable", lambda url, timeout=None: None
    )  # it answers
    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", unreachable)
    with pytest.raises(ModelNotFoundError) as info:
        hub_model_folder("org/name", weights=True)
    assert "the Hub could not be reached (Name or service not known)" in str(info.value)
    assert "tpdoc pull org/name" in str(info.value)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", unknown)
    with pytest.raises(ModelNotFoundError, match="org/name: no such model on the Hugging Face"):
        hub_model_folder("org/name", weights=False)


@pytest.fixture
def no_proxy_settings(monkeypatch):
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def _no_hub_calls(monkeypatch) -> None:
    """huggingface_hub's network calls fail the test (its retries are what took 23 s)."""
    import huggingface_hub

    real = huggingface_hub.snapshot_download

    def forbidden(*args, **kwargs):
        raise AssertionError("huggingface_hub was asked to download without a network")

    def local_only(repo_id, *, local_files_only=False, **kwargs):
        if not local_files_only:
            forbidden()
        return real(repo_id, local_files_only=True, **kwargs)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", local_only)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", forbidden)
    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", forbidden)


def test_pull_without_network_fails_at_once(monkeypatch, no_proxy_settings):
    """No network (the name does not resolve): one line and exit 1, before any download."""
    import socket
    import time
    from urllib.parse import urlsplit

    from huggingface_hub import constants

    def no_network(address, timeout=None, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(socket, "create_connection", no_network)
    _no_hub_calls(monkeypatch)
    start = time.monotonic()
    result = CliRunner().invoke(app, ["pull", "org/name"])
    assert time.monotonic() - start < 2
    assert result.exit_code == 1 and result.stdout == "", result.stderr
    host = urlsplit(constants.ENDPOINT).hostname
    (line,) = result.stderr.splitlines()
    assert f"the Hub could not be reached ({host}:443: Name or service not known)" in line
    assert "tpdoc pull org/name" in line
    with pytest.raises(ModelNotFoundError, match="could not be reached"):
        hub_model_folder("org/name")  # the config alone (`inspect`) is not fetched either


def test_a_hub_that_does_not_answer_is_given_up_after_the_probe_timeout(
    monkeypatch, no_proxy_settings
):
    import socket
    import threading
    import time

    release = threading.Event()

    def hangs(address, timeout=None, **kwargs):
        release.wait(10)  # a name lookup or a connect that never returns
        raise OSError("released")

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr("tpdoc.weights.hub.PROBE_TIMEOUT_S", 0.2)
    monkeypatch.setattr(socket, "create_connection", hangs)
    _no_hub_calls(monkeypatch)
    start = time.monotonic()
    try:
        with pytest.raises(ModelNotFoundError, match=r":443: no answer within 0.2 s"):
            hub_model_folder("org/name", weights=True)
        assert time.monotonic() - start < 1.5
    finally:
        release.set()


def test_the_probe_goes_where_huggingface_hub_would_connect(monkeypatch, no_proxy_settings):
    """To the endpoint's host, or to the proxy the environment names (unless NO_PROXY)."""
    import socket

    from tpdoc.weights.hub import unreachable

    tried = []

    class Connection:
        def close(self) -> None:
            pass

    def connect(address, timeout=None, **kwargs):
        tried.append(address)
        return Connection()

    monkeypatch.setattr(socket, "create_connection", connect)
    assert unreachable("https://hub.example:8443") is None
    assert unreachable("http://mirror.example") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert unreachable("https://hub.example") is None
    monkeypatch.setenv("NO_PROXY", "hub.example")
    assert unreachable("https://hub.example") is None
    assert tried == [
        ("hub.example", 8443), ("mirror.example", 80), ("proxy.example", 3128),
        ("hub.example", 443),
    ]  # fmt: skip
