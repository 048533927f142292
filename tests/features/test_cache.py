"""Feature cache: hits, per-file keys, misses on another spec, --no-cache, corrupt entries, concurrency, CLI."""
from __future__ import annotations

import dataclasses
import multiprocessing
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import genmetrics
from genmetrics_cli.main import cli
from genmetrics.errors import DecodeError, WeightsError
from genmetrics.features import cache as cache_module
from genmetrics.features.cache import FeatureCache, cache_usage, spec_digest
from genmetrics.features.extract import FeatureSet, extract_features
from genmetrics.features.inception import InceptionExtractor
from genmetrics.features.registry import EXTRACTORS
from genmetrics.io.images import open_source
from tests.helpers import TinyExtractor, extract_to_file, stand_in, random_images, write_folder

KEY = "ab" * 32


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def cache_root(tmp_path, monkeypatch) -> Path:
    """This test's own cache folder (not yet created), also as $GENMETRICS_CACHE_DIR."""
    root = tmp_path / "cache"
    monkeypatch.setenv("GENMETRICS_CACHE_DIR", str(root))
    return root


@pytest.fixture
def folder(tmp_path) -> Path:
    path = tmp_path / "images"
    write_folder(path, random_images(8, size=32, seed=20))
    return path


def entries(root: Path) -> list[Path]:
    return sorted(root.glob("*/??/*.npz"))


def extract(source, extractor, root: Path, **options) -> FeatureSet:
    return extract_features(open_source(str(source)), extractor, progress=False,
                            cache=FeatureCache(root, extractor.spec), **options)


def test_second_run_hits_the_cache_with_identical_features(inception, tmp_path, cache_root, monkeypatch):
    folder = tmp_path / "four"
    write_folder(folder, random_images(4, size=32, seed=21))
    uncached = extract_features(open_source(str(folder)), inception, progress=False).features
    seen: list[int] = []
    forward = InceptionExtractor.forward

    def counting_forward(self, batch):
        seen.append(len(batch))
        return forward(self, batch)

    monkeypatch.setattr(InceptionExtractor, "forward", counting_forward)
    cold = genmetrics.compute_stats(str(folder), features=True, progress=False)
    assert sum(seen) == 4 and len(entries(cache_root)) == 4
    seen.clear()
    warm = genmetrics.compute_stats(str(folder), features=True, progress=False, batch_size=3)
    assert seen == []
    np.testing.assert_array_equal(cold.features, uncached)
    np.testing.assert_array_equal(warm.features, cold.features)
    np.testing.assert_allclose(warm.sigma, cold.sigma, rtol=1e-12, atol=1e-15)  # streamed in other batches


def test_changing_one_file_re_extracts_only_that_file(folder, cache_root):
    extractor = TinyExtractor()
    extract(folder, extractor, cache_root)
    Image.fromarray(random_images(1, size=32, seed=99)[0]).save(folder / "img_0003.png")
    extractor.calls = 0
    feats = extract(folder, extractor, cache_root, batch_size=3)
    assert extractor.calls == 1 and len(entries(cache_root)) == 9
    fresh = extract_features(open_source(str(folder)), TinyExtractor(), progress=False)
    np.testing.assert_array_equal(feats.features, fresh.features)
    np.testing.assert_array_equal(feats.logits, fresh.logits)


def test_another_resize_weights_or_version_is_a_miss(cache_root, monkeypatch):
    spec = TinyExtractor().spec
    stored = {"features": np.arange(16, dtype=np.float32), "logits": np.ones(4, np.float32)}
    FeatureCache(cache_root, spec).put(KEY, stored)
    hit = FeatureCache(cache_root, spec).get(KEY)
    assert hit is not None and set(hit) == {"features", "logits"}
    np.testing.assert_array_equal(hit["features"], stored["features"])
    for other in (dataclasses.replace(spec, resize="clean"), dataclasses.replace(spec, weights_sha256="1" * 64),
                  dataclasses.replace(spec, image_size=16), dataclasses.replace(spec, precision="bfloat16")):
        assert FeatureCache(cache_root, other).get(KEY) is None
    monkeypatch.setattr(cache_module, "__version__", "99.0.0")
    assert FeatureCache(cache_root, spec).get(KEY) is None


def test_another_resize_re_extracts_through_the_engine(cache_root):
    images = random_images(5, size=32, seed=22)
    np.save(cache_root.parent / "images.npy", images)
    extract(cache_root.parent / "images.npy", TinyExtractor(), cache_root)
    clean = TinyExtractor(resize="clean")
    extract(cache_root.parent / "images.npy", clean, cache_root)
    assert clean.calls == 5 and len(entries(cache_root)) == 10
    assert len(cache_usage(cache_root)) == 2


def test_no_cache_writes_nothing(tmp_path, cache_root, monkeypatch):
    monkeypatch.setitem(EXTRACTORS, "tiny", stand_in(TinyExtractor))
    folder = tmp_path / "three"
    write_folder(folder, random_images(3, size=32, seed=23))
    out = tmp_path / "s.npz"
    tiny = ("--extractor", "tiny", "--no-progress")
    assert run("stats", str(folder), "-o", str(out), "--no-cache", *tiny).exit_code == 0
    assert run("score", str(folder), str(folder), "--metrics", "fid", "--no-cache", *tiny).exit_code == 0
    assert not cache_root.exists()
    assert run("score", str(folder), str(folder), "--metrics", "fid", *tiny).exit_code == 0
    assert len(entries(cache_root)) == 3


def test_corrupt_entries_are_misses_and_rewritten(folder, cache_root):
    extractor = TinyExtractor()
    cold = extract(folder, extractor, cache_root)
    paths = entries(cache_root)
    paths[0].write_bytes(paths[0].read_bytes()[:100])  # truncated
    paths[1].write_bytes(b"")
    flipped = bytearray(paths[2].read_bytes())
    flipped[200] ^= 0xFF  # inside the features' data: caught by the zip CRC
    paths[2].write_bytes(bytes(flipped))
    with open(paths[3], "wb") as handle:  # a valid npz of the wrong shape
        np.savez(handle, features=np.zeros(5, np.float32))
    with open(paths[4], "wb") as handle:  # features without the logits this extractor has
        np.savez(handle, features=np.zeros(16, np.float32))
    extractor.calls = 0
    warm = extract(folder, extractor, cache_root)
    assert extractor.calls == 5
    np.testing.assert_array_equal(warm.features, cold.features)
    np.testing.assert_array_equal(warm.logits, cold.logits)
    extractor.calls = 0
    extract(folder, extractor, cache_root)
    assert extractor.calls == 0  # all rewritten
    assert not list(cache_root.rglob("*.tmp"))


def test_partial_cache_with_workers_keeps_row_order_and_the_bad_file_policy(folder, cache_root):
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    half = open_source(str(folder), num_samples=4, seed=0)
    extract_features(half, TinyExtractor(), progress=False, skip_bad=True,
                     cache=FeatureCache(cache_root, TinyExtractor().spec))
    cached = len(entries(cache_root))
    assert 0 < cached < 8
    with pytest.raises(DecodeError, match="broken.png"):
        extract(folder, TinyExtractor(), cache_root)
    extractor = TinyExtractor()
    feats = extract(folder, extractor, cache_root, skip_bad=True, batch_size=3, workers=2)
    assert extractor.calls == 8 - cached
    reference = extract_features(open_source(str(folder)), TinyExtractor(), skip_bad=True, progress=False)
    np.testing.assert_array_equal(feats.features, reference.features)
    np.testing.assert_array_equal(feats.logits, reference.logits)
    assert feats.skipped == reference.skipped and feats.skipped[0].endswith("broken.png")


def test_generator_samples_are_not_cached(cache_root):
    def sample(n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randint(0, 256, (n, 16, 16, 3), generator=generator, dtype=torch.uint8)

    extractor = TinyExtractor()
    extract_features(open_source(sample, num_samples=4), extractor, progress=False,
                     cache=FeatureCache(cache_root, extractor.spec))
    assert not cache_root.exists()


def test_an_unwritable_cache_warns_and_results_stay_right(folder, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.warns(UserWarning, match="not writable.*cache=False"):
        feats = extract(folder, TinyExtractor(), blocker)
    fresh = extract_features(open_source(str(folder)), TinyExtractor(), progress=False)
    np.testing.assert_array_equal(feats.features, fresh.features)


def test_two_processes_filling_one_empty_cache_agree(tmp_path):
    folder = tmp_path / "images"
    write_folder(folder, random_images(24, size=32, seed=25))
    root = tmp_path / "cache"
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    outs = [tmp_path / f"features{i}.npy" for i in range(2)]
    workers = [context.Process(target=extract_to_file, args=(str(folder), str(root), str(out), barrier))
               for out in outs]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
    assert [worker.exitcode for worker in workers] == [0, 0]
    first, second = (np.load(out) for out in outs)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first, extract_features(open_source(str(folder)), TinyExtractor(),
                                                          progress=False).features)
    assert len(entries(root)) == 24 and not list(root.rglob("*.tmp"))
    cache = FeatureCache(root, TinyExtractor().spec)
    source = open_source(str(folder))
    stored = np.stack([cache.get(source.raw_bytes_hash(i))["features"] for i in range(len(source))])
    np.testing.assert_array_equal(stored, first)


def test_cache_info_and_clear(folder, cache_root):
    info = run("cache", "info")
    assert info.exit_code == 0 and f"folder: {cache_root}" in info.stdout and "entries: 0" in info.stdout
    extract(folder, TinyExtractor(), cache_root)
    extract(folder, TinyExtractor(resize="clean"), cache_root)
    (cache_root / "keep.txt").write_text("not ours")
    info = run("cache", "info")
    assert "entries: 16" in info.stdout and info.stdout.count("tiny-test") == 2
    assert "resize=clean@8" in info.stdout and "genmetrics=" in info.stdout
    clean = spec_digest(TinyExtractor(resize="clean").spec)
    assert clean[:12] in info.stdout
    cleared = run("cache", "clear", "--spec", clean[:8])
    assert cleared.exit_code == 0 and "removed 8 entries" in cleared.stdout
    assert [u.digest for u in cache_usage(cache_root)] == [spec_digest(TinyExtractor().spec)]
    missing = run("cache", "clear", "--spec", "nothex")
    assert missing.exit_code == 2 and "no cache spec folders match 'nothex'" in missing.stderr
    assert "removed 8 entries" in run("cache", "clear").stdout
    assert entries(cache_root) == [] and (cache_root / "keep.txt").exists()


def test_nan_features_name_the_file_and_are_not_cached(folder, cache_root, monkeypatch):
    """Regression: NaN/inf network outputs (broken weights, overflow at reduced precision) were stored in the cache
    before the statistics refused them, with a message naming no file."""
    forward = TinyExtractor.forward
    monkeypatch.setattr(TinyExtractor, "forward", lambda self, batch: {**forward(self, batch),
                                                                        "logits": torch.full((len(batch), 4), np.inf)})
    with pytest.raises(WeightsError, match=r"NaN/inf logits for 'img_0000\.png'.*precision=fp32"):
        extract(folder, TinyExtractor(), cache_root)
    assert entries(cache_root) == []
