"""ADM reference batches (guided-diffusion's evaluator): written by ``compute_stats(format="adm")``, read as a
reference (FID/sFID from the file's statistics for the default setup, everything else from ``arr_0``) and as
generated images (``arr_0`` only); stats files of other tools accepted with ``trust_stats``."""
from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import genmetrics
from genmetrics.errors import StatsError
from genmetrics.features.registry import EXTRACTORS
from genmetrics.io.adm import is_adm_batch, read_adm_batch
from genmetrics_cli.main import cli
from tests.helpers import TinyExtractor, fashion_mnist_subset, random_images, stand_in


@pytest.fixture
def real_inception(monkeypatch, inception):
    """``inception`` (the default) gives the session's TF-Inception without reloading it."""
    monkeypatch.setitem(EXTRACTORS, "inception", stand_in(lambda: inception, like="inception"))
    yield inception
    inception.spatial = False


@pytest.fixture
def sides(tmp_path) -> dict[str, str]:
    """Generated images, the images of a batch's ``arr_0`` and other images whose statistics the batch holds."""
    paths = {}
    for name, n, seed in (("gen", 10, 1), ("images", 12, 2), ("dataset", 14, 3)):
        paths[name] = str(tmp_path / f"{name}.npy")
        np.save(paths[name], random_images(n, size=32, seed=seed))
    return paths


def _batch(tmp_path, images: str, stats: genmetrics.Stats, name: str = "batch.npz") -> str:
    """An ADM batch as guided-diffusion ships them: ``arr_0`` and the statistics of a (larger) data set."""
    path = str(tmp_path / name)
    np.savez(path, arr_0=np.load(images), mu=stats.mu, sigma=stats.sigma, mu_s=stats.mu_s, sigma_s=stats.sigma_s)
    return path


def _score(gen, ref, metrics, **options):
    return genmetrics.score(gen, ref, metrics, progress=False, kid_subset_size=5, **options)


def test_written_batch_is_what_guided_diffusions_evaluator_reads(real_inception, sides, tmp_path, monkeypatch):
    """arr_0 is a seeded subset (in source order) of at most MAX_IMAGES images; mu, sigma, mu_s, sigma_s are the
    statistics of all of them, always with the spatial pair (the evaluator reads mu_s wherever mu is)."""
    monkeypatch.setattr("genmetrics.pipeline.MAX_IMAGES", 5)
    out = tmp_path / "ref.npz"
    stats = genmetrics.compute_stats(sides["dataset"], out, format="adm", seed=4, progress=False)
    with zipfile.ZipFile(out) as archive, archive.open("arr_0.npy") as handle:  # the evaluator's open_npz_array
        assert np.lib.format.read_magic(handle) == (1, 0)
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
    assert (shape, fortran, dtype) == ((5, 32, 32, 3), False, np.uint8)
    obj = np.load(out)  # the evaluator's read_statistics
    assert sorted(obj.keys()) == ["arr_0", "mu", "mu_s", "sigma", "sigma_s"]
    assert obj["mu"].shape == (2048,) and obj["sigma_s"].shape == (2023, 2023)
    source = np.load(sides["dataset"])
    rows = [int(np.flatnonzero((source == image).all(axis=(1, 2, 3)))[0]) for image in obj["arr_0"]]
    assert rows == sorted(rows) and len(set(rows)) == 5
    plain = genmetrics.compute_stats(sides["dataset"], sfid=True, progress=False)
    assert stats.n == 14 and np.array_equal(obj["mu"], plain.mu) and np.array_equal(obj["sigma_s"], plain.sigma_s)
    again = genmetrics.compute_stats(sides["dataset"], tmp_path / "again.npz", format="adm", seed=4, progress=False)
    assert again.n == 14 and np.array_equal(np.load(tmp_path / "again.npz")["arr_0"], obj["arr_0"])


def test_batch_as_reference_fid_from_its_statistics_the_rest_from_its_images(real_inception, sides, tmp_path):
    dataset = genmetrics.compute_stats(sides["dataset"], tmp_path / "dataset.npz", sfid=True, progress=False)
    batch = _batch(tmp_path, sides["images"], dataset)
    result = _score(sides["gen"], batch, "fid,sfid,kid,pr")
    from_file = _score(sides["gen"], tmp_path / "dataset.npz", "fid,sfid")
    from_images = _score(sides["gen"], sides["images"], "kid,pr")
    assert result.metrics["fid"] == from_file.metrics["fid"] and result.metrics["sfid"] == from_file.metrics["sfid"]
    for key in ("kid_mean", "kid_std", "precision", "recall"):
        assert result.metrics[key] == from_images.metrics[key]
    provenance = result.provenance.to_dict()
    assert provenance["reference_kind"] == "adm-batch"
    assert provenance["reference_keys_used"] == ["arr_0", "mu", "sigma", "mu_s", "sigma_s"]
    assert provenance["reference"]["n"] == 12
    fid_only = _score(sides["gen"], batch, "fid").provenance.to_dict()  # nothing extracted from arr_0
    assert fid_only["reference_keys_used"] == ["mu", "sigma"] and fid_only["reference"]["n"] == 12


def test_batch_with_another_extractor_setup_scores_its_images_and_says_why(real_inception, sides, tmp_path,
                                                                           monkeypatch):
    monkeypatch.setitem(EXTRACTORS, "tiny", stand_in(TinyExtractor))
    dataset = genmetrics.compute_stats(sides["dataset"], sfid=True, progress=False)
    batch = _batch(tmp_path, sides["images"], dataset)
    result = _score(sides["gen"], batch, "fid", extractor="tiny")
    assert result.metrics["fid"] == _score(sides["gen"], sides["images"], "fid", extractor="tiny").metrics["fid"]
    assert result.provenance.to_dict()["reference_keys_used"] == ["arr_0"]
    assert any("mu, sigma, mu_s, sigma_s were not used" in warning for warning in result.warnings)


def test_batch_as_generated_images_reads_arr_0_and_names_the_ignored_keys(real_inception, sides, tmp_path):
    dataset = genmetrics.compute_stats(sides["dataset"], sfid=True, progress=False)
    batch = _batch(tmp_path, sides["images"], dataset)
    result = _score(batch, sides["gen"], "fid")
    assert result.metrics["fid"] == _score(sides["images"], sides["gen"], "fid").metrics["fid"]
    assert result.provenance.to_dict()["generated_keys_ignored"] == ["mu", "sigma", "mu_s", "sigma_s"]


def test_a_batch_of_arr_0_alone_is_an_image_array(real_inception, sides, tmp_path):
    path = tmp_path / "only.npz"
    np.savez(path, arr_0=np.load(sides["images"]))
    assert not is_adm_batch(path)
    assert _score(sides["gen"], path, "fid").metrics["fid"] == _score(sides["gen"], sides["images"], "fid").metrics["fid"]


def test_cli_stats_adm_format_and_sfid_stats_files(real_inception, sides, tmp_path):
    runner = CliRunner()
    written = runner.invoke(cli, ["stats", sides["dataset"], "-o", str(tmp_path / "adm.npz"), "--format", "adm",
                                  "--no-progress"])
    assert written.exit_code == 0 and "wrote ADM reference batch" in written.output
    assert read_adm_batch(tmp_path / "adm.npz").keys == ["arr_0", "mu", "sigma", "mu_s", "sigma_s"]
    written = runner.invoke(cli, ["stats", sides["dataset"], "-o", str(tmp_path / "s.npz"), "--sfid", "--no-progress"])
    assert written.exit_code == 0 and "with sfid statistics" in written.output
    scored = runner.invoke(cli, ["score", sides["gen"], str(tmp_path / "s.npz"), "--metrics", "sfid", "--json",
                                 "--no-progress"])
    via_batch = runner.invoke(cli, ["score", sides["gen"], str(tmp_path / "adm.npz"), "--metrics", "sfid", "--json",
                                    "--no-progress"])
    assert json.loads(scored.stdout)["metrics"] == json.loads(via_batch.stdout)["metrics"]


@pytest.mark.parametrize("option", [["--resize", "clean"], ["--precision", "bf16"], ["--extractor", "fashion-cnn"]])
def test_adm_batches_are_written_only_with_the_evaluators_setup(sides, tmp_path, option):
    refused = CliRunner().invoke(cli, ["stats", sides["dataset"], "-o", str(tmp_path / "c.npz"), "--format", "adm",
                                       *option])
    assert refused.exit_code == 2 and "--format adm needs --extractor inception with the TF1 resize" in refused.stderr
    assert not (tmp_path / "c.npz").exists()


# --- stats files of other tools: --trust-stats ----------------------------------------------------------------


@pytest.fixture
def fashion_sides(tmp_path) -> dict[str, str]:
    """Two sides of 300 Fashion-MNIST images (more than fashion-cnn's 128 dimensions: regular covariances)."""
    images = fashion_mnist_subset("test")[0]
    paths = {"gen": str(tmp_path / "gen.npy"), "ref": str(tmp_path / "ref.npy")}
    np.save(paths["gen"], images[:300])
    np.save(paths["ref"], images[300:600])
    return paths


def _foreign(tmp_path, stats: genmetrics.Stats) -> str:
    """A pytorch-fid --save-stats file: mu and sigma only."""
    path = str(tmp_path / "fid_stats.npz")
    np.savez(path, mu=stats.mu, sigma=stats.sigma)
    return path


def test_trust_stats_accepts_a_file_without_metadata_as_this_runs_setup(fashion_sides, tmp_path):
    ours = genmetrics.compute_stats(fashion_sides["ref"], tmp_path / "ours.npz", extractor="fashion-cnn",
                                    progress=False)
    foreign = _foreign(tmp_path, ours)
    with pytest.raises(StatsError, match=r"no genmetrics metadata .* pass trust_stats=True"):
        genmetrics.score(fashion_sides["gen"], foreign, "fid", extractor="fashion-cnn", progress=False)
    trusted = genmetrics.score(fashion_sides["gen"], foreign, "fid", extractor="fashion-cnn", trust_stats=True,
                               progress=False)
    checked = genmetrics.score(fashion_sides["gen"], tmp_path / "ours.npz", "fid", extractor="fashion-cnn",
                               progress=False)
    assert trusted.metrics == checked.metrics
    provenance = trusted.provenance.to_dict()
    assert provenance["reference_trusted_without_metadata"] is True and provenance["reference"]["n"] is None
    runner = CliRunner()
    refused = runner.invoke(cli, ["score", fashion_sides["gen"], foreign, "--metrics", "fid", "--extractor",
                                  "fashion-cnn", "--no-progress"])
    assert refused.exit_code == 2 and "pass --trust-stats if you know" in refused.stderr
    table = runner.invoke(cli, ["score", fashion_sides["gen"], foreign, "--metrics", "fid", "--extractor",
                                "fashion-cnn", "--no-progress", "--trust-stats"])
    assert table.exit_code == 0 and "were trusted (--trust-stats)" in table.stdout
    compared = runner.invoke(cli, ["compare", fashion_sides["gen"], fashion_sides["ref"], "--ref", foreign,
                                   "--metrics", "fid", "--extractor", "fashion-cnn", "--no-progress",
                                   "--bootstrap", "10", "--trust-stats"])
    assert compared.exit_code == 0, compared.output


def test_trusted_files_are_still_checked(fashion_sides, tmp_path):
    path = tmp_path / "wrong_dim.npz"
    np.savez(path, mu=np.zeros(2048), sigma=np.eye(2048))
    with pytest.raises(StatsError, match=r"do not match the extractor's dimension 128"):
        genmetrics.score(fashion_sides["gen"], path, "fid", extractor="fashion-cnn", trust_stats=True,
                         progress=False)
    np.savez(path, mu=np.full(128, np.nan), sigma=np.eye(128))
    with pytest.raises(StatsError, match=r"'mu' contains NaN/inf"):
        genmetrics.score(fashion_sides["gen"], path, "fid", extractor="fashion-cnn", trust_stats=True,
                         progress=False)


@pytest.mark.filterwarnings("ignore:The `disp` argument is deprecated")  # pytorch-fid's sqrtm call
def test_pytorch_fid_and_torchmetrics_read_our_stats_files(fashion_sides, tmp_path):
    """pytorch-fid reads the mu/sigma of a genmetrics stats file (its .npz path) and torchmetrics' Fréchet distance
    on them agrees with ours to their sqrtm error."""
    from pytorch_fid.fid_score import calculate_frechet_distance, compute_statistics_of_path
    from torchmetrics.image.fid import _compute_fid

    files = [str(tmp_path / f"{side}.npz") for side in ("gen", "ref")]
    for side, path in zip(("gen", "ref"), files):
        genmetrics.compute_stats(fashion_sides[side], path, extractor="fashion-cnn", progress=False)
    ours = genmetrics.score(fashion_sides["gen"], files[1], "fid", extractor="fashion-cnn", progress=False)
    (mu1, sigma1), (mu2, sigma2) = (compute_statistics_of_path(path, None, 1, 128, "cpu") for path in files)
    theirs = calculate_frechet_distance(mu1, sigma1, mu2, sigma2)
    tensors = [torch.from_numpy(array) for array in (mu1, sigma1, mu2, sigma2)]
    torchmetrics_fid = float(_compute_fid(*tensors))
    assert ours.metrics["fid"] > 1
    assert theirs == pytest.approx(ours.metrics["fid"], rel=1e-6)
    assert torchmetrics_fid == pytest.approx(ours.metrics["fid"], rel=1e-6)
