"""`genmetrics clipscore` and `score --metrics clip_score/cmmd --extractor clip` end to end, on a tiny saved model."""
from __future__ import annotations

import csv
import json
import re
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

import genmetrics
from genmetrics_cli.main import cli
from genmetrics.errors import ConfigError, InputError
from genmetrics.features.weights import sha256_file
from genmetrics.metrics.cmmd import cmmd
from tests.clip_model import open_clip_reference, reference_clip_scores
from tests.helpers import random_images, write_folder

N = 6
CAPTIONS = ["a red square", "ünï 日本語", "a cat, on a mat", 'she said "hi"', "a dog", "🐱 emoji"]
LONG = " ".join(f"word{i % 37}" for i in range(500))


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """imgs/ (6 images), captions.csv, refs.jsonl."""
    root = tmp_path_factory.mktemp("clipscore")
    write_folder(root / "imgs", random_images(N, size=40, seed=21))
    with open(root / "captions.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "caption"])
        writer.writerows((f"img_{i:04d}.png", caption) for i, caption in enumerate(CAPTIONS))
    refs = [{"file": f"img_{i:04d}", "caption": [f"reference {i}", f"another one {i}"]} for i in range(N)]
    (root / "refs.jsonl").write_text("\n".join(json.dumps(r) for r in refs), encoding="utf-8")
    return root


def _clip_args(tiny_clip) -> list[str]:
    return ["--clip-model", tiny_clip[0], "--clip-weights", tiny_clip[1], "--no-progress"]


def test_clipscore_json_and_per_sample_csv_equal_the_formula_on_open_clips_embeddings(data, tiny_clip, tmp_path,
                                                                                       monkeypatch):
    out = tmp_path / "per_sample.csv"
    result = run("clipscore", str(data / "imgs"), str(data / "captions.csv"), "--json", "--per-sample", str(out),
                 *_clip_args(tiny_clip))
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert set(printed["metrics"]) == {"clip_score_mean", "clip_score_std"}
    prov = printed["provenance"]
    assert prov["extractor"]["weights_sha256"] == sha256_file(tiny_clip[1]) == prov["clip"]["weights_sha256"]
    assert prov["extractor"]["name"].startswith("clip-tiny-clip") and prov["generated"]["n"] == N
    assert prov["clip_score"]["w"] == 2.5 and prov["clip_score"]["truncated"] == 0
    assert "open_clip_torch" in prov["versions"]
    with open(out, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["file"] for row in rows] == [f"img_{i:04d}.png" for i in range(N)]
    assert [row["caption"] for row in rows] == CAPTIONS
    scores = np.array([float(row["score"]) for row in rows])
    images = random_images(N, size=40, seed=21)
    expected = reference_clip_scores(open_clip_reference(*tiny_clip, monkeypatch), images, CAPTIONS)
    assert scores == pytest.approx(expected, abs=1e-5)
    assert (scores == 0).any() and (scores > 0).any()  # the random model gives negative cosines too
    assert printed["metrics"]["clip_score_mean"] == pytest.approx(scores.mean(), abs=1e-12)
    assert printed["metrics"]["clip_score_std"] == pytest.approx(scores.std(), abs=1e-12)


def test_prefix_w_and_ref_clip_score(data, tiny_clip, monkeypatch):
    prefix = "A photo depicts "
    result = genmetrics.clip_score(str(data / "imgs"), str(data / "captions.csv"), str(data / "refs.jsonl"),
                                   clip_model=tiny_clip[0], clip_weights=tiny_clip[1], w=2.0, prefix=prefix,
                                   progress=False)
    reference = open_clip_reference(*tiny_clip, monkeypatch)
    images = random_images(N, size=40, seed=21)
    expected = reference_clip_scores(reference, images, [prefix + c for c in CAPTIONS], w=2.0)
    assert [row["score"] for row in result.per_sample] == pytest.approx(expected, abs=1e-5)
    model, _, tokenizer = reference
    with torch.no_grad():
        cands = F.normalize(model.encode_text(tokenizer([prefix + c for c in CAPTIONS])), dim=-1)
        refs = F.normalize(model.encode_text(tokenizer(
            [f"{prefix}{kind} {i}" for i in range(N) for kind in ("reference", "another one")])), dim=-1)
    best = np.maximum((cands[:, None, :] * refs.view(N, 2, -1)).sum(-1).max(1).values.double().numpy(), 0)
    total = expected + best
    harmonic = np.divide(2 * expected * best, total, out=np.zeros_like(total), where=total > 0)
    assert [row["ref_score"] for row in result.per_sample] == pytest.approx(harmonic, abs=1e-5)
    assert result.metrics["ref_clip_score_mean"] == pytest.approx(harmonic.mean(), abs=1e-5)
    assert result.provenance["clip_score"]["prefix"] == prefix


def test_batch_size_does_not_change_the_scores(data, tiny_clip):
    common = (str(data / "imgs"), str(data / "captions.csv"), "--json", *_clip_args(tiny_clip))
    one = json.loads(run("clipscore", *common, "--batch-size", "1").stdout)["metrics"]
    all_at_once = json.loads(run("clipscore", *common, "--batch-size", "6").stdout)["metrics"]
    assert one == pytest.approx(all_at_once, abs=1e-6)


def test_a_500_word_caption_is_truncated_and_reported(tmp_path, tiny_clip):
    write_folder(tmp_path / "imgs", random_images(2, seed=22))
    (tmp_path / "caps.tsv").write_text(f"img_0000.png\t{LONG}\nimg_0001.png\tshort\n", encoding="utf-8")
    result = run("clipscore", str(tmp_path / "imgs"), str(tmp_path / "caps.tsv"), *_clip_args(tiny_clip))
    assert result.exit_code == 0, result.output
    assert "1 truncated" in result.stdout and "warning: 1 caption(s) longer than the 16-token" in result.stdout
    api = genmetrics.clip_score(str(tmp_path / "imgs"), str(tmp_path / "caps.tsv"), clip_model=tiny_clip[0],
                                clip_weights=tiny_clip[1], progress=False)
    assert api.provenance["clip_score"]["truncated_files"] == ["img_0000.png"]


@pytest.mark.parametrize("captions, message", [
    ("file,caption\nimg_0000.png,ok\nimg_0001.png,\n", "1 empty caption.*'img_0001.png'"),
    ("file,caption\nimg_0000.png,ok\n", r"1 image\(s\) in .* have no caption .*'img_0001.png'"),
    ("file,caption\nimg_0000.png,a\nimg_0001.png,b\nghost.png,c\n", r"1 caption\(s\) .* name no image .*'ghost.png'"),
])
def test_caption_errors_are_one_line_exit_2(tmp_path, tiny_clip, captions, message):
    write_folder(tmp_path / "imgs", random_images(2, seed=23))
    (tmp_path / "c.csv").write_text(captions)
    result = run("clipscore", str(tmp_path / "imgs"), str(tmp_path / "c.csv"), *_clip_args(tiny_clip))
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("error: ")
    assert re.search(message, result.stderr), result.stderr


def test_weight_errors_name_the_fix(data, tiny_clip, monkeypatch):
    monkeypatch.delenv("GENMETRICS_CLIP_WEIGHTS", raising=False)
    missing = run("clipscore", str(data / "imgs"), str(data / "captions.csv"), "--clip-model", tiny_clip[0])
    assert missing.exit_code == 2 and "--clip-weights PATH" in missing.stderr
    tag = run("clipscore", str(data / "imgs"), str(data / "captions.csv"), "--clip-weights", "laion2b_s34b_b79k")
    assert tag.exit_code == 2 and "never downloads" in tag.stderr
    monkeypatch.setenv("GENMETRICS_CLIP_WEIGHTS", tiny_clip[1])
    from_env = run("clipscore", str(data / "imgs"), str(data / "captions.csv"), "--clip-model", tiny_clip[0],
                   "--no-progress")
    assert from_env.exit_code == 0, from_env.output


def test_score_with_clip_score_and_cmmd_on_clip_features(data, tiny_clip, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("genmetrics tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    ref = tmp_path / "ref"
    write_folder(ref, random_images(N, size=40, seed=24))
    out = tmp_path / "s.csv"
    result = run("score", str(data / "imgs"), str(ref), "--metrics", "fid,kid,pr,cmmd,clip_score", "--extractor",
                 "clip", "--captions", str(data / "captions.csv"), "--kid-subset-size", "4", "--pr-k", "2",
                 "--per-sample", str(out), "--json", *_clip_args(tiny_clip))
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)["metrics"]
    assert set(metrics) == {"fid", "kid_mean", "kid_std", "precision", "recall", "cmmd", "clip_score_mean",
                            "clip_score_std"}
    alone = genmetrics.clip_score(str(data / "imgs"), str(data / "captions.csv"), clip_model=tiny_clip[0],
                                  clip_weights=tiny_clip[1], progress=False)
    assert metrics["clip_score_mean"] == pytest.approx(alone.metrics["clip_score_mean"], abs=1e-12)
    assert len(out.read_text(encoding="utf-8").splitlines()) == N + 1
    stats = [genmetrics.compute_stats(src, features=True, extractor="clip", clip_model=tiny_clip[0],
                                      clip_weights=tiny_clip[1], progress=False)
             for src in (str(data / "imgs"), str(ref))]
    assert metrics["cmmd"] == pytest.approx(cmmd(stats[0].features, stats[1].features), rel=1e-9)
    only = run("score", str(data / "imgs"), "--metrics", "clip_score", "--captions", str(data / "captions.csv"),
               "--json", *_clip_args(tiny_clip))
    assert only.exit_code == 0, only.output
    assert json.loads(only.stdout)["metrics"] == pytest.approx(alone.metrics, abs=1e-12)


def test_metric_option_errors(data, tiny_clip):
    with pytest.raises(ConfigError, match="'cmmd' is defined on CLIP embeddings.*extractor=clip"):
        genmetrics.score(str(data / "imgs"), str(data / "imgs"), "cmmd", progress=False)
    with pytest.raises(ConfigError, match="'clip_score' needs captions: pass captions=CAPTIONS"):
        genmetrics.score(str(data / "imgs"), None, "clip_score", progress=False)
    with pytest.raises(ConfigError, match="'is' needs classifier logits, which extractor=clip does not give"):
        genmetrics.score(str(data / "imgs"), None, "is", extractor="clip", progress=False)
    result = run("score", str(data / "imgs"), str(data / "imgs"), "--metrics", "fid", "--per-sample", "x.csv")
    assert result.exit_code == 2 and "add clip_score (with --captions) or realism to --metrics" in result.stderr


def test_skip_bad_leaves_undecodable_images_out(tmp_path, tiny_clip):
    write_folder(tmp_path / "imgs", random_images(3, seed=25))
    (tmp_path / "imgs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    captions = {"img_0000.png": "a", "img_0001.png": "b", "img_0002.png": "c", "broken.png": "d"}
    kwargs = {"clip_model": tiny_clip[0], "clip_weights": tiny_clip[1], "progress": False}
    with pytest.raises(genmetrics.GenMetricsError, match="broken.png"):
        genmetrics.clip_score(str(tmp_path / "imgs"), captions, **kwargs)
    result = genmetrics.clip_score(str(tmp_path / "imgs"), captions, skip_bad=True, **kwargs)
    assert [row["file"] for row in result.per_sample] == ["img_0000.png", "img_0001.png", "img_0002.png"]
    assert result.provenance["generated"]["n_skipped"] == 1


def _metrics(*args: str) -> dict:
    result = run("clipscore", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_an_array_file_takes_captions_named_by_index(data, tiny_clip, tmp_path):
    np.save(tmp_path / "samples.npy", random_images(N, size=40, seed=21))
    with open(tmp_path / "by_index.csv", "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([("file", "caption"), *((str(i), CAPTIONS[i]) for i in reversed(range(N)))])
    by_index = _metrics(str(tmp_path / "samples.npy"), str(tmp_path / "by_index.csv"), *_clip_args(tiny_clip))
    by_name = _metrics(str(data / "imgs"), str(data / "captions.csv"), *_clip_args(tiny_clip))
    assert by_index["metrics"] == pytest.approx(by_name["metrics"], abs=1e-12)


def test_without_captions_a_sample_npz_gives_its_prompts(data, tiny_clip, tmp_path):
    path = tmp_path / "samples.npz"
    np.savez(path, images=random_images(N, size=40, seed=21), prompts=np.array(CAPTIONS), labels=np.arange(N))
    out = tmp_path / "rows.csv"
    printed = _metrics(str(path), "--per-sample", str(out), *_clip_args(tiny_clip))
    by_name = _metrics(str(data / "imgs"), str(data / "captions.csv"), *_clip_args(tiny_clip))
    assert printed["metrics"] == pytest.approx(by_name["metrics"], abs=1e-12)
    assert printed["provenance"]["clip_score"]["captions"] == f"{path}['prompts']"
    with open(out, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["file"] for row in rows] == [f"samples.npz['images'][{i}]" for i in range(N)]
    assert [row["caption"] for row in rows] == CAPTIONS
    kwargs = {"clip_model": tiny_clip[0], "clip_weights": tiny_clip[1], "progress": False}
    scored = genmetrics.score(str(path), None, "clip_score", **kwargs)  # score's captions=None reads them too
    assert scored.metrics == pytest.approx(by_name["metrics"], abs=1e-12)
    subset = genmetrics.clip_score(str(path), num_samples=3, seed=5, **kwargs)
    picked = [int(row["file"].split("[")[-1][:-1]) for row in subset.per_sample]
    assert len(picked) == 3 and [row["caption"] for row in subset.per_sample] == [CAPTIONS[i] for i in picked]


def test_without_captions_other_sources_and_bad_prompts_are_one_line_errors(data, tiny_clip, tmp_path):
    result = run("clipscore", str(data / "imgs"), *_clip_args(tiny_clip))
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert f"error: no captions for '{data / 'imgs'}': pass CAPTIONS (a CSV/TSV/JSONL file or a folder of .txt " \
           "files), or a .npz of the images with a 'prompts' array" in result.stderr
    with pytest.raises(InputError, match=r"no captions for the ndarray: pass captions=CAPTIONS"):
        genmetrics.clip_score(random_images(2), clip_model=tiny_clip[0], clip_weights=tiny_clip[1])
    with pytest.raises(InputError, match=r"no such file or folder: '.*missing\.npz'; check the path"):
        genmetrics.clip_score(str(tmp_path / "missing.npz"), clip_model=tiny_clip[0], clip_weights=tiny_clip[1])
    np.savez(tmp_path / "short.npz", images=random_images(3), prompts=np.array(["a", "b"]))
    short = run("clipscore", str(tmp_path / "short.npz"), *_clip_args(tiny_clip))
    assert short.exit_code == 2 and len(short.stderr.strip().splitlines()) == 1
    assert f"array 'prompts' of '{tmp_path / 'short.npz'}' holds 2 prompts for the file's 3 images" in short.stderr
