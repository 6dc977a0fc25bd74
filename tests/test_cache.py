"""The visual-token cache: hits skip rendering and the vision tower; corrupt, partial or
foreign entries are rebuilt; keys follow every setting; LRU eviction; atomic writes."""

from __future__ import annotations

import shutil
import threading
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from tests.conftest import make_pdf, tiny_model_config
from tpdoc.answering.cache import (
    CacheKey,
    VisualTokenCache,
    default_cache_root,
    default_max_bytes,
    parse_size,
)
from tpdoc.answering.qa import DocumentQA
from tpdoc.cli import app
from tpdoc.errors import UsageError
from tpdoc.model.document_model import DocumentModel

QUESTION = "What is the total?"


@pytest.fixture(scope="module")
def model(tiny_tokenizer) -> DocumentModel:
    torch.manual_seed(0)
    return DocumentModel.from_config(tiny_model_config(tiny_tokenizer), tiny_tokenizer).eval()


@pytest.fixture
def pdf(tmp_path) -> Path:
    return make_pdf(tmp_path / "doc.pdf", [(595.0, 842.0), (300.0, 300.0)])


@pytest.fixture
def cache(tmp_path) -> VisualTokenCache:
    return VisualTokenCache(tmp_path / "cache", max_bytes=10**8)


def key(**changes) -> CacheKey:
    base = CacheKey(
        file_sha256="ab" * 32, page=1, width=100, height=200, grid=(2, 1), fit=(112, 56),
        mode="slice", tile_size=56, dpi=None, image_mean=(0.5,) * 3, image_std=(0.5,) * 3,
        scale=2, model="tiny|memory|0", dtype="torch.float32",
    )  # fmt: skip
    return replace(base, **changes)


def spy(module: torch.nn.Module) -> list[int]:
    calls: list[int] = []
    module.register_forward_hook(lambda _m, args, _o: calls.append(args[0].shape[0]))
    return calls


def test_second_question_skips_rendering_and_the_vision_tower(model, pdf, cache, monkeypatch):
    qa = DocumentQA(model, cache=cache)
    first = qa.ask(pdf, QUESTION, max_new_tokens=3, all_pages=True)
    assert [p.cached for p in first.pages] == [False, False] and cache.info().entries == 2
    calls = spy(model.vision)
    renders: list[int] = []
    from tpdoc.documents.pages import Document

    original = Document.render
    monkeypatch.setattr(
        Document, "render", lambda self, n, size=None: renders.append(n) or original(self, n, size)
    )
    again = DocumentQA(model, cache=cache).ask(pdf, QUESTION, max_new_tokens=3, all_pages=True)
    assert calls == [] and renders == []
    assert [p.cached for p in again.pages] == [True, True]
    assert [(p.answer, p.confidence) for p in again.pages] == [
        (p.answer, pytest.approx(p.confidence, abs=1e-5)) for p in first.pages
    ]
    assert again.timings["vision"] == 0  # the stage never ran (renders are spied above)
    model._forward_hooks.clear()


def test_entries_round_trip_and_bf16_survives(cache):
    tensor = torch.randn(3, 4, 8)
    cache.put(key(), tensor)
    assert torch.equal(cache.get(key(), (3, 4, 8)), tensor)
    half = tensor.to(torch.bfloat16)
    cache.put(key(dtype="torch.bfloat16"), half)
    assert torch.equal(cache.get(key(dtype="torch.bfloat16")), half)
    assert (cache.hits, cache.misses) == (2, 0)


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "garbage"])
def test_a_damaged_entry_is_a_miss_and_is_removed(cache, damage):
    cache.put(key(), torch.randn(3, 4, 8))
    path = cache.path(key())
    data = path.read_bytes()
    damaged = {
        "truncate": data[: len(data) // 2],
        "flip": data[:-5] + bytes([data[-5] ^ 0xFF]) + data[-4:],  # a byte of the tensor
        "empty": b"",
        "garbage": b"\x00" * 64,
    }[damage]
    path.write_bytes(damaged)
    assert cache.get(key()) is None
    assert not path.exists()


def test_a_foreign_entry_never_returns_another_pages_tokens(cache):
    other = key(page=2)
    cache.put(other, torch.ones(3, 4, 8))
    # Another key's file under this key's name (a collision, a copy, a bug elsewhere).
    cache.path(key()).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(cache.path(other), cache.path(key()))
    assert cache.get(key()) is None and not cache.path(key()).exists()
    cache.put(key(), torch.ones(3, 4, 8))
    assert cache.get(key(), shape=(5, 4, 8)) is None  # the right key, an unexpected shape


def test_corrupt_entry_is_rebuilt_during_a_run(model, pdf, cache):
    qa = DocumentQA(model, cache=cache)
    first = qa.ask(pdf, QUESTION, max_new_tokens=2, pages="2")
    (entry,) = cache.entries()
    entry[0].write_bytes(entry[0].read_bytes()[:100])
    calls = spy(model.vision)
    again = qa.ask(pdf, QUESTION, max_new_tokens=2, pages="2")
    model._forward_hooks.clear()
    assert calls == [first.pages[0].plan.plan.num_views]
    assert again.pages[0].cached is False and again.answer == first.answer
    assert cache.get(cache_key_of(cache)) is not None  # rewritten whole


def cache_key_of(cache: VisualTokenCache) -> CacheKey:
    import json

    from tpdoc.answering.cache import _metadata

    (entry,) = cache.entries()
    data = json.loads(_metadata(entry[0].read_bytes())["key"])
    data["grid"], data["fit"] = tuple(data["grid"]), tuple(data["fit"])
    data["image_mean"], data["image_std"] = tuple(data["image_mean"]), tuple(data["image_std"])
    return CacheKey(**data)


def test_keys_follow_content_settings_and_model(model, pdf, cache, tiny_tokenizer):
    qa = DocumentQA(model, cache=cache)
    qa.ask(pdf, QUESTION, max_new_tokens=2, pages="1")
    assert qa.ask(pdf, QUESTION, max_new_tokens=2, pages="1").pages[0].cached
    assert not qa.ask(pdf, QUESTION, max_new_tokens=2, pages="1", dpi=100).pages[0].cached
    assert not qa.ask(pdf, QUESTION, max_new_tokens=2, pages="1", budget=10).pages[0].cached
    # The same path with other content.
    make_pdf(pdf, [(595.0, 842.0), (300.0, 300.0)], text="Total 9.99")
    assert (
        not DocumentQA(model, cache=cache)
        .ask(pdf, QUESTION, max_new_tokens=2, pages="1")
        .pages[0]
        .cached
    )
    # Another model (other weights) never sees these entries.
    torch.manual_seed(1)
    other = DocumentModel.from_config(tiny_model_config(tiny_tokenizer), tiny_tokenizer).eval()
    assert (
        not DocumentQA(other, cache=cache)
        .ask(pdf, QUESTION, max_new_tokens=2, pages="1")
        .pages[0]
        .cached
    )


def test_model_identity_of_a_folder_follows_its_weights(tiny_model_dir, tmp_path):
    from tpdoc.weights.identity import model_identity

    copy = shutil.copytree(tiny_model_dir, tmp_path / "copy")
    model = DocumentQA(copy, cache=False).model
    before = model_identity(copy, model)
    assert before.startswith("tiny-test|") and str(copy.resolve()) in before
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    assert model_identity(copy, model) != before


def test_least_recently_used_entries_are_evicted(tmp_path):
    import os

    tensor = torch.zeros(4, 16, 16)
    size_one = len(_entry_bytes(tmp_path, tensor))
    cache = VisualTokenCache(tmp_path / "lru", max_bytes=3 * size_one)
    for page in (1, 2, 3):
        cache.put(key(page=page), tensor)
        os.utime(cache.path(key(page=page)), (page, page))  # distinct ages
    assert cache.get(key(page=1)) is not None  # now the most recently used
    cache.put(key(page=4), tensor)
    assert cache.info().entries == 3
    assert cache.get(key(page=2)) is None  # the least recently used went
    assert all(cache.get(key(page=p)) is not None for p in (1, 3, 4))


def test_writes_do_not_walk_the_cache_folder_each_time(tmp_path, monkeypatch):
    tensor = torch.zeros(4, 16, 16)
    size_one = len(_entry_bytes(tmp_path, tensor))
    cache = VisualTokenCache(tmp_path / "walks", max_bytes=5 * size_one)
    walks: list[int] = []
    entries = cache.entries
    monkeypatch.setattr(cache, "entries", lambda: walks.append(1) or entries())
    for page in range(1, 21):  # 5 to fill the cache, then 15 that each evict the oldest
        cache.put(key(page=page), tensor)
    assert len(walks) == 1  # walked once, on the first write
    info = VisualTokenCache(cache.root, max_bytes=cache.max_bytes).info()
    assert info.entries == 5 and info.bytes <= cache.max_bytes
    assert all(cache.get(key(page=p)) is not None for p in range(16, 21))  # the newest


def test_an_entry_another_process_used_is_not_evicted(tmp_path):
    import os

    tensor = torch.zeros(4, 16, 16)
    size_one = len(_entry_bytes(tmp_path, tensor))
    cache = VisualTokenCache(tmp_path / "shared-lru", max_bytes=3 * size_one)
    for page in (1, 2, 3):
        cache.put(key(page=page), tensor)
    later = cache.path(key(page=3)).stat().st_mtime + 10
    os.utime(cache.path(key(page=1)), (later, later))  # read by another process since
    cache.put(key(page=4), tensor)
    assert cache.get(key(page=2)) is None  # the least recently used, as the folder says
    assert all(cache.get(key(page=p)) is not None for p in (1, 3, 4))


def test_the_folder_is_measured_again_after_many_writes(tmp_path, monkeypatch):
    from tpdoc.answering.cache import RESCAN_PUTS

    cache = VisualTokenCache(tmp_path / "rescan", max_bytes=10**9)
    walks: list[int] = []
    entries = cache.entries
    monkeypatch.setattr(cache, "entries", lambda: walks.append(1) or entries())
    for _ in range(RESCAN_PUTS + 1):
        cache.put(key(), torch.zeros(1, 1, 1))  # the same entry, rewritten
    assert len(walks) == 2  # the first write, then after RESCAN_PUTS more


def _entry_bytes(tmp_path: Path, tensor: torch.Tensor) -> bytes:
    probe = VisualTokenCache(tmp_path / "probe")
    probe.put(key(), tensor)
    return probe.path(key()).read_bytes()


def test_concurrent_writers_and_readers_never_see_half_an_entry(tmp_path):
    cache = VisualTokenCache(tmp_path / "shared")
    tensors = [torch.full((8, 16, 32), float(i)) for i in range(4)]
    cache.put(key(), tensors[0])  # readers always find an entry: old or new, never half
    errors: list[BaseException] = []
    seen: list[float] = []

    def writer(i: int) -> None:
        try:
            for _ in range(15):
                VisualTokenCache(cache.root).put(key(), tensors[i])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def reader() -> None:
        try:
            for _ in range(60):
                got = VisualTokenCache(cache.root).get(key(), (8, 16, 32))
                assert got is not None, "a reader missed the entry (a torn read was deleted)"
                seen.append(float(got.unique().item()))  # one writer's tensor, whole
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    threads += [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(seen) == 2 * 60 and set(seen) <= {0.0, 1.0, 2.0, 3.0}
    assert not [p for p in cache.folder.rglob("*.tmp")]


def test_an_unwritable_cache_warns_and_the_run_goes_on(model, pdf, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    cache = VisualTokenCache(blocker)
    result = DocumentQA(model, cache=cache).ask(pdf, QUESTION, max_new_tokens=2, pages="2")
    assert result.answer is not None and cache.write_error


def test_cache_location_and_size_settings(monkeypatch, tmp_path):
    monkeypatch.setenv("TPDOC_CACHE", str(tmp_path / "here"))
    assert default_cache_root() == tmp_path / "here"
    monkeypatch.delenv("TPDOC_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr("sys.platform", "linux")
    assert default_cache_root() == tmp_path / "xdg" / "tpdoc"
    monkeypatch.setattr("sys.platform", "darwin")
    assert default_cache_root() == Path.home() / "Library" / "Caches" / "tpdoc"
    monkeypatch.setattr("sys.platform", "win32")
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "local"))
    assert default_cache_root() == tmp_path / "local" / "tpdoc" / "Cache"
    assert parse_size("2G") == 2 * 1024**3 and parse_size("500 MB") == 500 * 1024**2
    assert parse_size("1.5GiB") == int(1.5 * 1024**3) and parse_size("1000") == 1000
    monkeypatch.setenv("TPDOC_CACHE_MAX", "lots")
    with pytest.raises(UsageError, match="TPDOC_CACHE_MAX: 'lots'"):
        default_max_bytes()


def test_cache_commands(model, pdf, monkeypatch, tmp_path):
    import json

    monkeypatch.setenv("TPDOC_CACHE", str(tmp_path / "cli-cache"))
    DocumentQA(model).ask(pdf, QUESTION, max_new_tokens=2)
    runner = CliRunner()
    info = runner.invoke(app, ["cache", "info", "--json"])
    assert info.exit_code == 0, info.stderr
    data = json.loads(info.stdout)
    assert (
        data["entries"] == 2 and data["bytes"] > 0 and data["root"] == str(tmp_path / "cli-cache")
    )
    table = runner.invoke(app, ["cache", "info"])
    assert "entries" in table.stdout and "2" in table.stdout
    cleared = runner.invoke(app, ["cache", "clear"])
    assert cleared.exit_code == 0 and cleared.stdout.startswith("removed 2 entries")
    assert json.loads(runner.invoke(app, ["cache", "info", "--json"]).stdout)["entries"] == 0


def test_no_cache_writes_nothing(tiny_model_dir, pdf, tmp_path, monkeypatch):
    monkeypatch.setenv("TPDOC_CACHE", str(tmp_path / "untouched"))
    args = ["ask", str(pdf), QUESTION, "--model", str(tiny_model_dir), "--max-new-tokens", "2"]
    result = CliRunner().invoke(app, [*args, "--no-cache"])
    assert result.exit_code == 0, result.stderr
    assert not (tmp_path / "untouched").exists()
    assert CliRunner().invoke(app, args).exit_code == 0
    assert VisualTokenCache(tmp_path / "untouched").info().entries == 2


def test_tokens_computed_in_another_precision_are_not_reused(model, pdf, cache):
    qa = DocumentQA(model, cache=cache)
    assert not qa.ask(pdf, QUESTION, max_new_tokens=2, pages="1").pages[0].cached
    model.autocast = torch.bfloat16  # what ``--dtype auto`` picks on a CPU with bfloat16
    try:
        assert not qa.ask(pdf, QUESTION, max_new_tokens=2, pages="1").pages[0].cached
        assert qa.ask(pdf, QUESTION, max_new_tokens=2, pages="1").pages[0].cached
    finally:
        model.autocast = None
    assert qa.ask(pdf, QUESTION, max_new_tokens=2, pages="1").pages[0].cached
