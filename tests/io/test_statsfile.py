"""Stats files: round trip, pytorch-fid keys, no pickle, validation, compatibility, atomic writes."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from genmetrics.config import ExtractorSpec
from genmetrics.errors import InputError, StatsError
from genmetrics.pipeline import is_stats_file
from genmetrics.io.statsfile import Stats, check_compatible, load_stats, save_stats
from tests.helpers import with_zip_extract_version

SPEC = ExtractorSpec(name="toy", weights_sha256="ab" * 32, resize="tf1", image_size=299, dim=4)


def make_stats(features: bool = True) -> Stats:
    feats = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)
    return Stats(mu=feats.mean(0).astype(np.float64), sigma=np.cov(feats, rowvar=False), n=10, extractor=SPEC,
                 meta={"source": "toy", "content_hash": "00"}, features=feats if features else None)


def test_round_trip_keeps_values_metadata_and_pytorch_fid_keys(tmp_path):
    path = tmp_path / "s.npz"
    save_stats(path, make_stats())
    with np.load(path, allow_pickle=False) as raw:
        assert {"mu", "sigma", "meta", "features"} <= set(raw.files)
        assert raw["mu"].dtype == np.float64 and raw["sigma"].dtype == np.float64
    loaded = load_stats(path)
    original = make_stats()
    np.testing.assert_array_equal(loaded.mu, original.mu)
    np.testing.assert_array_equal(loaded.sigma, original.sigma)
    np.testing.assert_array_equal(loaded.features, original.features)
    assert loaded.extractor == SPEC and loaded.n == 10 and loaded.meta["source"] == "toy"
    assert list(tmp_path.iterdir()) == [path]  # no temp file left behind


def test_pickled_content_is_refused_without_being_executed(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, mu=np.zeros(4), sigma=np.eye(4), meta=np.array([{"x": 1}], dtype=object))
    with pytest.raises(StatsError, match="cannot be read without pickle"):
        load_stats(path)


def test_file_without_metadata_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "pytorch_fid.npz"
    np.savez(path, mu=np.zeros(4), sigma=np.eye(4))
    with pytest.raises(StatsError, match=r"no genmetrics metadata.*genmetrics\.compute_stats\(SRC, FILE\)"):
        load_stats(path)


@pytest.mark.parametrize("bad", ["nan", "shape"])
def test_nan_or_wrong_shape_is_refused(tmp_path, bad):
    path = tmp_path / "bad.npz"
    stats = make_stats()
    meta = json.dumps({"n": 10, "extractor": SPEC.to_dict()})
    sigma = stats.sigma.copy()
    if bad == "nan":
        sigma[0, 0] = np.nan
    np.savez(path, mu=stats.mu if bad == "nan" else np.zeros(5), sigma=sigma, meta=np.array(meta))
    with pytest.raises(StatsError, match="NaN" if bad == "nan" else "do not match"):
        load_stats(path)


def test_not_an_npz_and_missing_file(tmp_path):
    (tmp_path / "x.npz").write_text("hello")
    with pytest.raises(StatsError, match="not a valid .npz"):
        load_stats(tmp_path / "x.npz")
    with pytest.raises(StatsError, match="does not exist"):
        load_stats(tmp_path / "missing.npz")


def test_unsupported_zip_version_and_bad_metadata_are_stats_errors(tmp_path):
    """Regression: zipfile's NotImplementedError and int(inf) in the metadata escaped as tracebacks."""
    path = tmp_path / "s.npz"
    save_stats(path, make_stats())
    (tmp_path / "v.npz").write_bytes(with_zip_extract_version(path.read_bytes()))
    with pytest.raises(StatsError, match=r"v\.npz.*not a valid .npz.*NotImplementedError"):
        load_stats(tmp_path / "v.npz")
    assert not is_stats_file(tmp_path / "v.npz")  # then read as an image array, an InputError
    np.savez(tmp_path / "inf.npz", mu=np.zeros(4), sigma=np.eye(4),
             meta=np.array(json.dumps({"n": float("inf"), "extractor": SPEC.to_dict()})))
    with pytest.raises(StatsError, match=r"inf\.npz.*malformed metadata"):
        load_stats(tmp_path / "inf.npz")


def test_incompatible_specs_name_every_difference():
    other = dataclasses.replace(SPEC, resize="clean", dim=8)
    with pytest.raises(StatsError, match="resize 'clean' vs 'tf1'; dim 8 vs 4"):
        check_compatible(SPEC, other, "ref.npz")
    check_compatible(SPEC, dataclasses.replace(SPEC), "same.npz")


def test_failed_write_leaves_no_file(tmp_path, monkeypatch):
    path = tmp_path / "s.npz"

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", explode)
    with pytest.raises(InputError, match=r"cannot write .*s\.npz.*disk full"):
        save_stats(path, make_stats())
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output_folder_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        save_stats(tmp_path / "missing" / "s.npz", make_stats())
    with pytest.raises(StatsError, match="must end in .npz"):
        save_stats(tmp_path / "s.txt", make_stats())
