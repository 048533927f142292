"""fd_inf, vendi and realism (dgm-eval's metrics) through score, stats files, Evaluator and compare: the values of
their pure functions on the extracted features, and what each needs of the reference."""
from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

import genmetrics
from genmetrics.errors import ConfigError, MetricError, StatsError
from genmetrics.features.extract import extract_features
from genmetrics.features.registry import EXTRACTORS
from genmetrics.io.images import open_source
from genmetrics.metrics.fd_infinity import fd_infinity
from genmetrics.metrics.memorisation import authpct, ct_score
from genmetrics.metrics.realism import realism_scores
from genmetrics.metrics.vendi import per_class_vendi, vendi_score
from genmetrics_cli.main import cli
from tests.helpers import TinyExtractor, random_images, stand_in, write_folder


@pytest.fixture(autouse=True)
def tiny(monkeypatch):
    monkeypatch.setitem(EXTRACTORS, "tiny", stand_in(TinyExtractor))


@pytest.fixture
def sides() -> tuple[np.ndarray, np.ndarray]:
    return random_images(60, size=16, seed=1), random_images(50, size=16, seed=2)


def _features(images: np.ndarray) -> np.ndarray:
    return extract_features(open_source(images), TinyExtractor(), keep_features=True, progress=False).features


def test_score_gives_the_pure_functions_values(sides):
    gen, ref = sides
    result = genmetrics.score(gen, ref, "fd_inf,vendi,realism", extractor="tiny", progress=False, seed=4)
    feats_gen, feats_ref = _features(gen), _features(ref)
    ref_stats = extract_features(open_source(ref), TinyExtractor(), progress=False).stats
    expected = fd_infinity(feats_gen, ref_stats.mean, ref_stats.cov, seed=4)
    assert result.metrics["fd_inf"] == pytest.approx(expected.value, rel=1e-9)
    assert result.metrics["fd_inf_slope"] == pytest.approx(expected.slope, rel=1e-9)
    assert result.metrics["vendi"] == pytest.approx(vendi_score(feats_gen), rel=1e-12)
    scores = realism_scores(feats_ref, feats_gen, k=3)
    assert result.metrics["realism_mean"] == pytest.approx(scores.mean(), rel=1e-12)
    assert result.metrics["realism_median"] == pytest.approx(np.median(scores), rel=1e-12)
    provenance = result.provenance.to_dict()
    assert provenance["fd_inf"] == {"points": 15, "seed": 4} and provenance["realism_k"] == 3


def test_what_each_needs_of_the_reference(sides, tmp_path):
    """vendi needs no reference; fd_inf only the reference's moments (a stats file without features); realism the
    reference's features."""
    gen, ref = sides
    alone = genmetrics.score(gen, None, "vendi", extractor="tiny", progress=False)
    assert alone.metrics["vendi"] == pytest.approx(vendi_score(_features(gen)), rel=1e-12)
    genmetrics.compute_stats(ref, tmp_path / "moments.npz", extractor="tiny", progress=False)
    moments_only = genmetrics.score(gen, tmp_path / "moments.npz", "fid,fd_inf,vendi", extractor="tiny",
                                    progress=False)
    with_images = genmetrics.score(gen, ref, "fid,fd_inf,vendi", extractor="tiny", progress=False)
    assert moments_only.metrics == pytest.approx(with_images.metrics, rel=1e-9)
    with pytest.raises(StatsError, match="hold no features"):
        genmetrics.score(gen, tmp_path / "moments.npz", "realism", extractor="tiny", progress=False)


def test_streaming_evaluator_and_cli_list_them(sides):
    gen, ref = sides
    evaluator = genmetrics.Evaluator(ref, "fd_inf,vendi,realism", extractor="tiny", progress=False)
    evaluator.update(gen[:25])
    evaluator.update(gen[25:])
    streamed = evaluator.compute()
    assert streamed.metrics == pytest.approx(genmetrics.score(gen, ref, "fd_inf,vendi,realism", extractor="tiny",
                                                              progress=False).metrics, rel=1e-9)
    help_text = CliRunner().invoke(cli, ["score", "--help"]).output
    assert all(name in help_text for name in ("fd_inf", "vendi", "realism"))


def test_compare_takes_realism_and_refuses_fd_inf_and_vendi_with_the_reason(sides):
    gen, ref = sides
    comparison = genmetrics.compare(gen, gen[::-1].copy(), ref, "realism", extractor="tiny", progress=False,
                                    bootstrap_replicates=20)
    row = comparison.rows[0]
    assert row.metric == "realism"
    assert row.baseline == pytest.approx(realism_scores(_features(ref), _features(gen)).mean(), rel=1e-12)
    assert row.baseline == pytest.approx(row.candidate, rel=1e-12)  # the same samples in another order
    for name, reason in (("fd_inf", "has no bootstrap interval"), ("vendi", "lowers the Vendi score")):
        with pytest.raises(ConfigError, match=reason):
            genmetrics.compare(gen, gen, ref, name, extractor="tiny", progress=False)


def test_copies_of_reference_images_are_named_not_scored_infinite(sides):
    gen, ref = sides
    copied = np.concatenate([gen[:20], ref[:3]])
    with pytest.raises(MetricError, match=r"realism: [1-3] generated sample\(s\) coincide with a reference sample"):
        genmetrics.score(copied, ref, "realism", extractor="tiny", progress=False)


def test_memorisation_metrics_take_a_training_set(sides, tmp_path):
    """authpct and ct against --train (images or a stats file with features), REF the test set: the values of the
    pure functions; copies of training images are not authentic and pull C_T down."""
    gen, ref = sides
    train = random_images(120, size=16, seed=3)
    result = genmetrics.score(gen, ref, "authpct,ct", extractor="tiny", train=train, progress=False, seed=2)
    feats_gen, feats_ref, feats_train = _features(gen), _features(ref), _features(train)
    assert result.metrics["authpct"] == pytest.approx(authpct(feats_train, feats_gen), rel=1e-12)
    assert result.metrics["ct"] == pytest.approx(ct_score(feats_train, feats_ref, feats_gen, seed=2), rel=1e-12)
    provenance = result.provenance.to_dict()
    assert provenance["train"]["n"] == 120 and provenance["ct"]["seed"] == 2
    genmetrics.compute_stats(train, tmp_path / "train.npz", features=True, extractor="tiny", progress=False)
    from_file = genmetrics.score(gen, ref, "authpct,ct", extractor="tiny", train=tmp_path / "train.npz",
                                 progress=False, seed=2)
    assert from_file.metrics == pytest.approx(result.metrics, rel=1e-12)
    copies = np.concatenate([train[:50], gen[:10]])
    copied = genmetrics.score(copies, ref, "authpct,ct", extractor="tiny", train=train, progress=False, seed=2)
    assert copied.metrics["authpct"] <= 100 * 10 / 60 + 1e-9  # the 50 exact copies are never authentic


def test_memorisation_metrics_without_a_training_set_name_the_option(sides, tmp_path):
    gen, ref = sides
    with pytest.raises(ConfigError, match=r"authpct,ct measure\(s\) memorisation of a training set: pass train=TRAIN"):
        genmetrics.score(gen, ref, "authpct,ct", extractor="tiny", progress=False)
    np.save(tmp_path / "gen.npy", gen)
    np.save(tmp_path / "ref.npy", ref)
    refused = CliRunner().invoke(cli, ["score", str(tmp_path / "gen.npy"), str(tmp_path / "ref.npy"), "--metrics",
                                       "ct", "--extractor", "tiny"])
    assert refused.exit_code == 2 and "pass --train TRAIN" in refused.stderr
    with pytest.raises(ConfigError, match="Evaluator does not take authpct"):
        genmetrics.Evaluator(ref, "authpct", extractor="tiny")
    with pytest.raises(ConfigError, match="compare does not take ct .a memorisation test"):
        genmetrics.compare(gen, gen, ref, "ct", extractor="tiny", progress=False)


def test_per_class_vendi_from_labels(sides, tmp_path):
    """vendi_per_class: the mean of the Vendi scores of each class's samples, labels given in the source's order, as
    a mapping or as a CSV file (file,label) matched by name; a missing label names the option."""
    gen, _ = sides
    labels = np.arange(len(gen)) % 3
    result = genmetrics.score(gen, None, "vendi,vendi_per_class", extractor="tiny", labels=labels, progress=False)
    per_class = per_class_vendi(_features(gen), labels)
    assert result.metrics["vendi_per_class"] == pytest.approx(np.mean(list(per_class.values())), rel=1e-12)
    assert result.metrics["vendi"] == pytest.approx(vendi_score(_features(gen)), rel=1e-12)
    folder = tmp_path / "gen"
    write_folder(folder, gen)
    names = sorted(path.name for path in folder.iterdir())
    (tmp_path / "labels.csv").write_text("file,label\n" + "".join(f"{name},{i % 3}\n" for i, name in enumerate(names)))
    from_file = genmetrics.score(str(folder), None, "vendi_per_class", extractor="tiny",
                                 labels=tmp_path / "labels.csv", progress=False)
    assert from_file.metrics == pytest.approx({"vendi_per_class": result.metrics["vendi_per_class"]}, rel=1e-9)
    cli_run = CliRunner().invoke(cli, ["score", str(folder), "--metrics", "vendi_per_class", "--extractor", "tiny",
                                       "--labels", str(tmp_path / "labels.csv"), "--no-progress", "--json"])
    assert cli_run.exit_code == 0, cli_run.output
    with pytest.raises(ConfigError, match="vendi_per_class need.s. the class of each generated image: pass labels="):
        genmetrics.score(gen, None, "vendi_per_class", extractor="tiny", progress=False)


@pytest.mark.parametrize("labels, message", [
    ([0, 1], "labels hold 2 entries for the 60 images"),
    ({"img_0000.png": 1}, "59 image.s. of .* have no label"),
    ([0.5] * 60, "0.5 is not an integer class label"),
])
def test_bad_labels_are_named(sides, tmp_path, labels, message):
    folder = tmp_path / "gen"
    write_folder(folder, sides[0])
    with pytest.raises(genmetrics.GenMetricsError, match=message):
        genmetrics.score(str(folder), None, "vendi_per_class", extractor="tiny", labels=labels, progress=False)


def test_labels_file_formats(tmp_path):
    from genmetrics.io.labels import read_labels

    (tmp_path / "plain.csv").write_text("a.png,1\nb.png,2\n")
    assert read_labels(tmp_path / "plain.csv", ["a.png", "b.png"], "x").tolist() == [1, 2]
    (tmp_path / "named.tsv").write_text("class\tfile_name\n3\ta\n4\tb\n")
    assert read_labels(tmp_path / "named.tsv", ["b.png", "a.png"], "x").tolist() == [4, 3]
    (tmp_path / "extra.csv").write_text("file,label\na.png,1\nb.png,2\nc.png,3\n")
    with pytest.raises(genmetrics.GenMetricsError, match="1 label.s. name no image of 'x': 'c.png'"):
        read_labels(tmp_path / "extra.csv", ["a.png", "b.png"], "x")
    (tmp_path / "wide.csv").write_text("x,y,z\n1,2,3\n")
    with pytest.raises(genmetrics.GenMetricsError, match="names no file and label columns"):
        read_labels(tmp_path / "wide.csv", ["a.png"], "x")


def test_realism_per_sample_rows_and_the_least_and_most_realistic_names(sides, tmp_path):
    gen, ref = sides
    folder = tmp_path / "gen"
    write_folder(folder, gen)
    result = genmetrics.score(str(folder), ref, "realism", extractor="tiny", progress=False)
    scores = realism_scores(_features(ref), _features(gen))
    names = sorted(path.name for path in folder.iterdir())
    assert [row["file"] for row in result.per_sample] == names
    assert np.allclose([row["realism"] for row in result.per_sample], scores, rtol=1e-12, atol=0)
    provenance = result.provenance.to_dict()
    order = np.argsort(scores, kind="stable")
    assert provenance["realism_least"] == [names[i] for i in order[:10]]
    assert provenance["realism_most"] == [names[i] for i in order[::-1][:10]]
    out = tmp_path / "realism.csv"
    np.save(tmp_path / "ref.npy", ref)
    written = CliRunner().invoke(cli, ["score", str(folder), str(tmp_path / "ref.npy"), "--metrics", "realism",
                                       "--extractor", "tiny", "--no-progress", "--per-sample", str(out)])
    assert written.exit_code == 0, written.output
    lines = out.read_text().splitlines()
    assert lines[0] == "file,realism" and len(lines) == 61 and lines[1].startswith(f"{names[0]},")
