"""Hardening, round 2 (README, "Reliability", second catalogue): outputs never destroy what they replace, every
printed number is valid, no hangs or tracebacks, memory bounded by what an input really holds, messages that name
the culprit. Each test is one row of that catalogue."""
from __future__ import annotations

import dataclasses
import json
import os
import socket
import stat
import threading
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import genmetrics
from genmetrics.errors import ConfigError, InputError, MetricError, StatsError, WeightsError
from genmetrics.features.cache import FeatureCache
from genmetrics.features.fashion_cnn import FashionCNNExtractor
from genmetrics.features.inception import InceptionExtractor
from genmetrics.io import images
from genmetrics.io.atomic import check_writable, output_target
from genmetrics.io.images import open_source
from genmetrics.io.statsfile import Stats, load_stats, save_stats
from genmetrics.metrics import check_finite
from genmetrics.report import json_text
from genmetrics_models.checkpoint import save_checkpoint
from genmetrics_models.registry import build_model
from tests.helpers import TinyExtractor, random_images, write_folder
from tests.reliability.harness import TINY, assert_one_line_error, good_folder, run, score_json


def _stats(path: Path, n: int = 40, meta: dict | None = None, **arrays: np.ndarray) -> Path:
    """A stats file of the stand-in extractor (dim 16) with ``arrays`` and metadata entries replaced."""
    feats = np.random.default_rng(0).normal(size=(40, 16))
    values = {"mu": feats.mean(0), "sigma": np.cov(feats, rowvar=False), "features": None, **arrays}
    save_stats(path, Stats(mu=values["mu"], sigma=values["sigma"], n=n, extractor=TinyExtractor().spec,
                           meta={"source": "test", **(meta or {})}, features=values["features"]))
    return path


def _rewrite_member(path: Path, key: str, array: np.ndarray) -> None:
    """Replace (or add) member ``key`` of an .npz file, keeping the others."""
    with np.load(path) as data:
        arrays = {name: data[name] for name in data.files}
    arrays[key] = array
    np.savez(path, **arrays)


# --- outputs ---------------------------------------------------------------------------------------------------------


def test_output_to_a_device_fifo_socket_or_a_link_to_one_is_refused(tmp_path):
    folder = good_folder(tmp_path / "imgs")
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock.npz"))
    link = tmp_path / "link.npz"
    link.symlink_to(fifo)
    for target, what in ((fifo, "a FIFO (named pipe)"), (tmp_path / "sock.npz", "a socket"), (link, "a FIFO")):
        assert_one_line_error(run("stats", folder, "-o", target, *TINY), str(target), f"it is {what}",
                              "a regular file or a new name")
    for device in ("/dev/null", "/dev/full"):  # the check only reads: the node is never touched
        with pytest.raises(InputError, match="it is a character device"):
            output_target(device)
        assert stat.S_ISCHR(os.stat(device).st_mode)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and link.is_symlink()
    sock.close()


def test_output_naming_an_input_is_refused_before_any_work(tmp_path, monkeypatch):
    folder = good_folder(tmp_path / "imgs")
    ref = _stats(tmp_path / "ref.npz")
    before = ref.read_bytes()
    monkeypatch.setattr(TinyExtractor, "forward", lambda *_: pytest.fail("extraction started before the check"))
    assert_one_line_error(run("compare", folder, folder, "--ref", ref, "--output", ref, *TINY), str(ref),
                          "an input of this command")
    array = tmp_path / "images.npy"
    np.save(array, random_images(4))
    alias = tmp_path / "alias.npy"
    alias.symlink_to(array)
    with pytest.raises(StatsError, match="must end in .npz"):
        genmetrics.compute_stats(str(array), str(array), extractor="tiny", progress=False)
    with pytest.raises(InputError, match="an input of this command"):
        check_writable(alias, [array])
    assert ref.read_bytes() == before


def test_output_through_a_symlink_writes_its_target_and_keeps_the_link(tmp_path):
    folder = good_folder(tmp_path / "imgs")
    (tmp_path / "real").mkdir()
    link = tmp_path / "out.npz"
    link.symlink_to(tmp_path / "real" / "stats.npz")  # dangling until written
    result = run("stats", folder, "-o", link, *TINY)
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and load_stats(tmp_path / "real" / "stats.npz").n == 4


def test_new_outputs_get_the_umask_mode_and_replaced_ones_keep_theirs(tmp_path):
    folder = good_folder(tmp_path / "imgs")
    old = os.umask(0o022)
    try:
        assert run("stats", folder, "-o", tmp_path / "new.npz", *TINY).exit_code == 0
        assert stat.S_IMODE(os.stat(tmp_path / "new.npz").st_mode) == 0o644
        os.chmod(tmp_path / "new.npz", 0o640)
        assert run("stats", folder, "-o", tmp_path / "new.npz", *TINY).exit_code == 0
        assert stat.S_IMODE(os.stat(tmp_path / "new.npz").st_mode) == 0o640
    finally:
        os.umask(old)


# --- numbers ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["negative-definite sigma", "asymmetric sigma", "mu 1e300", "n -5", "n 1e40",
                                  "n not an integer", "features and n disagree", "features with 0 rows",
                                  "features with NaN"])
def test_invalid_statistics_are_refused_when_loaded(tmp_path, case):
    folder = good_folder(tmp_path / "imgs")
    rows = np.random.default_rng(1).normal(size=(40, 16))
    make, fragment = {
        "negative-definite sigma": (lambda: _stats(tmp_path / "s.npz", sigma=-np.eye(16)), "not positive semi-definite"),
        "asymmetric sigma": (lambda: _stats(tmp_path / "s.npz", sigma=np.eye(16) + np.triu(np.ones((16, 16)), 1)),
                             "not symmetric"),
        "mu 1e300": (lambda: _stats(tmp_path / "s.npz", mu=np.full(16, 1e300)), "values up to 1e+300"),
        "n -5": (lambda: _stats(tmp_path / "s.npz", n=-5), "n=-5"),
        "n 1e40": (lambda: _stats(tmp_path / "s.npz", n=10 ** 40), "n=10000000000000000000000000000000000000000"),
        "n not an integer": (lambda: _stats(tmp_path / "s.npz", n=40.5), "n=40.5"),
        "features and n disagree": (lambda: _stats(tmp_path / "s.npz", n=50, features=rows), "40 feature rows for n=50"),
        "features with 0 rows": (lambda: _stats(tmp_path / "s.npz", meta={"features_subset": {}}, features=rows[:0]),
                                 "at least 2 feature rows"),
        "features with NaN": (lambda: _stats(tmp_path / "s.npz", features=np.where(rows > 2.5, np.nan, rows)),
                              "'features' contains NaN/inf"),
    }[case]
    assert_one_line_error(run("score", folder, make(), "--metrics", "fid,kid", *TINY), "s.npz", fragment)


def test_metric_values_are_finite_and_json_has_no_nan_or_infinity(tmp_path):
    with pytest.raises(MetricError, match="fid came out inf, not a finite number"):
        check_finite({"fid": float("inf")})
    text = json_text({"metrics": {"fid": 1.5}, "provenance": {"odd": float("nan"), "list": [float("-inf"), 2.0]}})
    assert json.loads(text, parse_constant=lambda token: pytest.fail(token)) == {
        "metrics": {"fid": 1.5}, "provenance": {"odd": None, "list": [None, 2.0]}}
    folder = good_folder(tmp_path / "imgs")
    meta_nan = _stats(tmp_path / "nan.npz")
    with np.load(meta_nan) as data:
        raw = str(data["meta"]).replace('"source": "test"', '"source": NaN')
    _rewrite_member(meta_nan, "meta", np.array(raw))
    assert_one_line_error(run("score", folder, meta_nan, "--metrics", "fid", *TINY), "nan.npz", "NaN is not JSON")


# --- hangs and tracebacks --------------------------------------------------------------------------------------------


def test_fifo_in_the_cache_is_a_miss_and_never_opened_blocking(tmp_path):
    cache = FeatureCache(tmp_path / "cache", TinyExtractor().spec)
    key = "ab" + "0" * 62
    entry = cache._path(key)
    entry.parent.mkdir(parents=True)
    os.mkfifo(entry)
    found = []
    reader = threading.Thread(target=lambda: found.append(cache.get(key)), daemon=True)
    reader.start()
    reader.join(timeout=10)
    assert not reader.is_alive() and found == [None]


def test_deeply_nested_folders_and_metadata_are_errors_not_recursion(tmp_path):
    deep = tmp_path / "deep"
    path = deep
    for _ in range(images.MAX_FOLDER_DEPTH + 1):
        path = path / "d"
    write_folder(path, random_images(2))
    assert_one_line_error(run("stats", deep, "-o", tmp_path / "o.npz", *TINY), "deeper than 256 levels")
    fine = tmp_path / "fine"
    write_folder(fine.joinpath(*["d"] * 200), random_images(2))
    assert len(open_source(str(fine))) == 2
    nested = _stats(tmp_path / "nested.npz")
    with np.load(nested) as data:
        raw = str(data["meta"]).replace('"source": "test"', '"source": ' + "[" * 5000 + "]" * 5000)
    _rewrite_member(nested, "meta", np.array(raw))
    assert_one_line_error(run("score", good_folder(tmp_path / "imgs"), nested, "--metrics", "fid", *TINY),
                          "nested.npz", "nested deeper than 32 levels")


def test_extreme_aspect_ratio_is_a_bad_file_and_long_images_resize_in_bounded_memory(tmp_path, inception):
    folder = good_folder(tmp_path / "imgs")
    Image.new("L", (80_000, 1)).save(folder / "strip.png")
    assert_one_line_error(run("stats", folder, "-o", tmp_path / "o.npz", *TINY), "strip.png",
                          "80000x1 pixels are more than 256 times longer than wide", "--skip-bad")
    report = score_json(folder, folder, "--skip-bad")
    assert report["provenance"]["generated"]["n_skipped"] == 1
    with pytest.raises(InputError, match="more than 256 times longer"):
        open_source(np.zeros((2, 1, 1000), np.uint8))
    long = np.zeros((1, 256 * 299, 3), np.uint8)  # within the bound: resized from uint8, columns first
    assert inception.preprocess(long).shape == (3, 299, 299)


def test_absurd_model_sizes_and_sample_counts_are_refused_up_front(tmp_path):
    out = tmp_path / "run"
    result = run("train", "dcgan", "--dataset", "digits", "--steps", "1", "--out", out, "--eval-samples", "0",
                 "-p", "z_dim=100000000")
    assert_one_line_error(result, "627,200,283,458 parameters", "GiB", "lower its sizes")
    assert not out.exists()  # the failed run removed the folder it created
    model = build_model("dcgan", {"width": 8, "z_dim": 8, "batch_size": 8}, generator=torch.Generator())
    (tmp_path / "ckpt").mkdir()
    save_checkpoint(tmp_path / "ckpt", model, step=1, dataset="digits", seed=0, rng_state=torch.Generator().get_state())
    assert_one_line_error(run("sample", tmp_path / "ckpt", "-n", str(10 ** 15), "-o", tmp_path / "s.npz"),
                          "-n 1000000000000000 samples need", "GiB on disk", "lower -n")
    assert not (tmp_path / "s.npz").exists()


def test_samples_stream_to_disk_in_chunks(tmp_path, monkeypatch):
    model = build_model("dcgan", {"width": 8, "z_dim": 8, "batch_size": 8}, generator=torch.Generator())
    (tmp_path / "ckpt").mkdir()
    save_checkpoint(tmp_path / "ckpt", model, step=1, dataset="digits", seed=0, rng_state=torch.Generator().get_state())
    from genmetrics_models import train

    monkeypatch.setattr(train, "draw", lambda *_: pytest.fail("all samples held in memory"))
    for name in ("s.npz", "s.npy", "folder"):
        assert run("sample", tmp_path / "ckpt", "-n", "150", "-o", tmp_path / name).exit_code == 0
    with np.load(tmp_path / "s.npz") as saved:
        assert saved["images"].shape == (150, 8, 8, 1) and "labels" not in saved.files
        np.testing.assert_array_equal(saved["images"], np.load(tmp_path / "s.npy"))
    assert len(list((tmp_path / "folder").iterdir())) == 150


# --- memory ----------------------------------------------------------------------------------------------------------


def test_npz_members_are_memory_mapped_or_capped(tmp_path, monkeypatch):
    x = random_images(30, size=16)
    np.savez(tmp_path / "stored.npz", images=x)
    np.savez_compressed(tmp_path / "packed.npz", images=x)
    stored = open_source(str(tmp_path / "stored.npz"))
    assert images.mapped_file(stored._get_array()) is not None and np.array_equal(stored.load(3), x[3])
    monkeypatch.setattr(images, "_MAX_ZIP_MEMBER_BYTES", 10_000)  # a compressed member inflating past the cap
    with pytest.raises(InputError, match=r"compressed and inflates to .* over the 0 GiB limit"):
        open_source(str(tmp_path / "packed.npz"))


def test_stats_files_read_only_their_arrays_and_refuse_oversized_ones(tmp_path):
    path = _stats(tmp_path / "s.npz")
    _rewrite_member(path, "junk", np.zeros(2_000_000))  # never read
    assert load_stats(path).n == 40
    big = _stats(tmp_path / "big.npz", n=2)
    _rewrite_member(big, "features", np.zeros((1000, 16), np.float32))
    with pytest.raises(StatsError, match="member 'features' inflates to 64,128 bytes, more than its metadata allows"):
        load_stats(big)


# --- messages --------------------------------------------------------------------------------------------------------


def test_decoder_warnings_name_the_file(monkeypatch):
    original = Image.Image.load
    png = images.io.BytesIO()
    Image.new("RGB", (4, 4)).save(png, "PNG")

    def load_warning(self):
        warnings.warn("Corrupt EXIF data", UserWarning)
        return original(self)

    monkeypatch.setattr(Image.Image, "load", load_warning)
    with pytest.warns(UserWarning, match=r"^'samples/x.png': Corrupt EXIF data$"):
        images._decode(png.getvalue(), "samples/x.png")


def test_weights_paths_that_are_folders_or_devices(tmp_path):
    with pytest.raises(WeightsError, match="are a folder, not a file"):
        InceptionExtractor(str(tmp_path))
    with pytest.raises(WeightsError, match="are not a regular file: a character device"):
        InceptionExtractor("/dev/zero")
    with pytest.raises(WeightsError, match="are not a regular file: a character device"):
        FashionCNNExtractor("/dev/zero")


@pytest.mark.parametrize("check, fragment", [("fid>1e999", "the change inf is outside -1e+06..1e+06"),
                                             ("recall<-2", "outside -1..1")])
def test_fail_if_thresholds_must_be_finite_and_in_range(tmp_path, check, fragment):
    folder = good_folder(tmp_path / "imgs")
    assert_one_line_error(run("compare", folder, folder, "--ref", folder, "--fail-if", check, *TINY), fragment,
                          "could never fail")


def test_long_bootstraps_show_progress_and_absurd_ones_are_refused(tmp_path):
    folder = good_folder(tmp_path / "imgs", n=12)
    assert_one_line_error(run("compare", folder, folder, "--ref", folder, "--bootstrap", str(10 ** 8), *TINY),
                          "--bootstrap 100000000 on 12 baseline samples needs 17.9 GiB")
    shown = run("compare", folder, folder, "--ref", folder, "--bootstrap", "20", "--extractor", "tiny")
    assert shown.exit_code == 0 and "bootstrap baseline" in shown.stderr and "20/20" in shown.stderr


def test_failed_train_removes_the_out_folder_it_created_only(tmp_path):
    out = tmp_path / "new"
    result = run("train", "dcgan", "--dataset", "digits", "--steps", "1", "--out", out, "--eval-samples", "0",
                 "-p", "batch_size=100000")
    assert result.exit_code == 2 and not out.exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    run("train", "dcgan", "--dataset", "digits", "--steps", "1", "--out", kept, "--eval-samples", "0",
        "-p", "batch_size=100000")
    assert kept.is_dir()
