"""Features and every metric are the same for any batch size and worker count."""
from __future__ import annotations

import numpy as np
import pytest

from genmetrics.features.extract import extract_features
from genmetrics.io.images import open_source
from genmetrics.metrics.fid import fid_from_features
from genmetrics.metrics.kid import kid
from genmetrics.metrics.precision_recall import density_coverage, precision_recall
from tests.helpers import random_images, write_folder

CONFIGS = [(1, 0), (7, 0), (64, 0), (7, 2)]  # (batch size, workers)


@pytest.fixture(scope="module")
def runs(inception, tmp_path_factory) -> dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]:
    """Features of a folder (decoded in workers when workers > 0) and of an array, per configuration."""
    folder = tmp_path_factory.mktemp("inv") / "gen"
    write_folder(folder, random_images(12, size=32, seed=21))
    reference = random_images(12, size=48, seed=22)
    return {
        (batch, workers): tuple(
            extract_features(open_source(src), inception, batch_size=batch, workers=workers, progress=False).features
            for src in (folder, reference))
        for batch, workers in CONFIGS
    }


def metrics(gen: np.ndarray, ref: np.ndarray) -> np.ndarray:
    return np.array([fid_from_features(gen, ref), *kid(gen, ref, subsets=10, subset_size=6),
                     *precision_recall(ref, gen, k=3), *density_coverage(ref, gen, k=3)])


def test_features_and_metrics_do_not_depend_on_batch_size_or_workers(runs):
    base_gen, base_ref = runs[CONFIGS[0]]
    base_metrics = metrics(base_gen, base_ref)
    for config in CONFIGS[1:]:
        gen, ref = runs[config]
        assert np.abs(gen - base_gen).max() <= 1e-6 * np.abs(base_gen).max(), config
        assert np.abs(ref - base_ref).max() <= 1e-6 * np.abs(base_ref).max(), config
        np.testing.assert_allclose(metrics(gen, ref), base_metrics, rtol=1e-6, atol=1e-9, err_msg=str(config))
