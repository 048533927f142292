"""The catalogue of bad inputs and faults: one test per case (README, "Reliability"), end to end through the CLI
(`genmetrics stats` / `score`) and the public API. Each case is either a one-line error naming the culprit (exit
code 2, no traceback, nothing written), a counted skip with --skip-bad, or a documented conversion that scores.

Most cases use the stand-in extractor (``--extractor tiny``: the real engine, cache, statistics and metrics with a
tiny linear network); the conversions whose resizing matters (1x1, mixed sizes) run the real TF-Inception.
"""
from __future__ import annotations

import dataclasses
import errno
import os
import resource
import struct
import threading
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import genmetrics
from genmetrics.errors import InputError, MetricError, StatsError
from genmetrics.features.extract import extract_features
from genmetrics.io.captions import read_prompt_file
from genmetrics.io import images
from genmetrics.io.images import open_source
from genmetrics.io.statsfile import Stats, save_stats
from genmetrics.metrics.fid import fid_from_features
from tests.helpers import TinyExtractor, random_images
from tests.reliability.harness import (
    TINY,
    assert_bad_file_policy,
    assert_decodes_and_scores,
    assert_one_line_error,
    encoded,
    good_folder,
    leftovers,
    load_entry,
    load_named,
    run,
    score_json,
)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(width: int, height: int, bit_depth: int, colour_type: int, rows: bytes) -> bytes:
    """A PNG from raw, unfiltered scanlines (no PIL: it writes neither 16-bit colour nor lying headers)."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows))
            + _chunk(b"IEND", b""))


def _png16(samples: np.ndarray) -> bytes:
    """A 16-bit PNG of (H, W) grayscale or (H, W, 3) RGB uint16 samples."""
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in samples)
    return _png(samples.shape[1], samples.shape[0], 16, 2 if samples.ndim == 3 else 0, rows)


def _stats_file(path: Path, dim: int = 16, **arrays: np.ndarray) -> Path:
    """A stats file of the stand-in extractor's spec (another ``dim`` if given), optionally with ``arrays`` replaced."""
    spec = dataclasses.replace(TinyExtractor().spec, dim=dim)
    feats = np.random.default_rng(0).normal(size=(40, dim))
    values = {"mu": feats.mean(0), "sigma": np.cov(feats, rowvar=False), **arrays}
    save_stats(path, Stats(mu=values["mu"], sigma=values["sigma"], n=40, extractor=spec, meta={"source": "test"}))
    return path


# --- bad files: strict error naming the file; --skip-bad skips and reports it --------------------------------------


def test_zero_byte_file(tmp_path):
    folder = good_folder(tmp_path / "imgs")
    (folder / "zero.png").write_bytes(b"")
    assert_bad_file_policy(folder, "zero.png", "empty file", tmp_path)


def test_truncated_png(tmp_path):
    folder = good_folder(tmp_path / "imgs")
    data = (folder / "img_0000.png").read_bytes()
    (folder / "cut.png").write_bytes(data[: len(data) // 2])
    assert_bad_file_policy(folder, "cut.png", "truncated", tmp_path)


def test_truncated_jpeg(tmp_path):
    folder = good_folder(tmp_path / "imgs")
    data = encoded(Image.fromarray(random_images(1, size=64)[0]), "JPEG")
    (folder / "cut.jpg").write_bytes(data[: len(data) // 2])
    assert_bad_file_policy(folder, "cut.jpg", "truncated", tmp_path)


def test_text_file_named_png(tmp_path):
    folder = good_folder(tmp_path / "imgs")
    (folder / "notes.png").write_text("these are my notes, not a picture\n")
    assert_bad_file_policy(folder, "notes.png", "not a PNG, JPEG, BMP, WebP, TIFF or GIF image", tmp_path)


def test_decompression_bomb_header(tmp_path):
    """A 20000x20000 header on a tiny file (400 Mpx, 1.2 GB as RGB) is refused from the header: no allocation."""
    folder = good_folder(tmp_path / "imgs")
    (folder / "bomb.png").write_bytes(_png(20000, 20000, 8, 2, b"\x00\x00\x00\x00"))  # one pixel of data
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert_bad_file_policy(folder, "bomb.png", "DecompressionBombError", tmp_path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 100_000  # KiB: far below 1.2 GB


def test_unreadable_file(tmp_path, monkeypatch):
    """Permission denied on open. The suite runs as root, which reads any file whatever its mode bits, so the
    denial is simulated: ``open`` in genmetrics.io.images raises PermissionError (EACCES) for that one path, as
    the OS does for a non-root user on a mode-000 file."""
    folder = good_folder(tmp_path / "imgs")
    (folder / "locked.png").write_bytes((folder / "img_0000.png").read_bytes())
    locked = str(folder / "locked.png")

    def guarded_open(path, *args, **kwargs):
        if os.fspath(path) == locked:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), locked)
        return open(path, *args, **kwargs)

    monkeypatch.setattr(images, "open", guarded_open, raising=False)
    assert_bad_file_policy(folder, "locked.png", "Permission denied", tmp_path)


def test_broken_symlink(tmp_path):
    folder = good_folder(tmp_path / "imgs")
    os.symlink(tmp_path / "gone.png", folder / "dangling.png")
    assert_bad_file_policy(folder, "dangling.png", "broken symbolic link", tmp_path)


def test_symlink_loop(tmp_path):
    """A file that links to itself is a bad file; a folder link back to an ancestor is listed once, never looped."""
    folder = good_folder(tmp_path / "imgs")
    os.symlink(folder / "loop.png", folder / "loop.png")
    os.symlink(folder, folder / "again")
    listed: list[int] = []
    thread = threading.Thread(target=lambda: listed.append(len(open_source(str(folder)))), daemon=True)
    thread.start()
    thread.join(timeout=30)
    assert listed == [5], "listing a folder with a symlink loop hangs or lists duplicates"
    assert_bad_file_policy(folder, "loop.png", "symbolic link loop", tmp_path)


def test_fifo_named_png(tmp_path):
    """A named pipe would block a reader forever: it is refused without being opened."""
    folder = good_folder(tmp_path / "imgs")
    os.mkfifo(folder / "pipe.png")
    assert_bad_file_policy(folder, "pipe.png", "not a regular file", tmp_path)


# --- documented conversions: decoded as stated, and scored -------------------------------------------------------


def test_16bit_png(tmp_path):
    """Grayscale: round(v / 257) (65535 -> 255, 257 -> 1). Colour: PIL keeps the high byte (v // 256)."""
    folder = good_folder(tmp_path / "imgs")
    gray = np.array([[0, 257, 511, 65535, 128, 129]], np.uint16)
    (folder / "gray16.png").write_bytes(_png16(gray))
    assert_decodes_and_scores(folder, "gray16.png", np.repeat(np.uint8([[0, 1, 2, 255, 0, 1]])[..., None], 3, 2))
    colour = np.array([[[0, 511, 65535], [257, 256, 255]]], np.uint16)
    (folder / "rgb16.png").write_bytes(_png16(colour))
    assert_decodes_and_scores(folder, "rgb16.png", np.uint8([[[0, 1, 255], [1, 1, 0]]]))


def test_cmyk_jpeg(tmp_path):
    folder = good_folder(tmp_path / "imgs")
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(folder / "cmyk.jpg", quality=100)
    decoded = load_named(folder, "cmyk.jpg")
    assert np.abs(decoded.astype(int) - [255, 0, 0]).max() <= 3  # cyan 0, magenta+yellow full: red
    assert_decodes_and_scores(folder, "cmyk.jpg", decoded)


def test_palette_png_with_transparency(tmp_path):
    """Alpha is dropped, not composited: a transparent pixel keeps its palette colour."""
    folder = good_folder(tmp_path / "imgs")
    image = Image.new("P", (2, 2), 0)
    image.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    image.putpixel((1, 1), 1)
    image.save(folder / "palette.png", transparency=0)
    assert_decodes_and_scores(folder, "palette.png", np.uint8([[[10, 20, 30]] * 2, [[10, 20, 30], [200, 100, 50]]]))


def test_rgba_png(tmp_path):
    folder = good_folder(tmp_path / "imgs")
    rgba = random_images(1, size=8, channels=4, seed=3)[0]
    rgba[0, :, 3] = 0
    Image.fromarray(rgba).save(folder / "rgba.png")
    assert_decodes_and_scores(folder, "rgba.png", rgba[..., :3])


def test_one_by_one_image(tmp_path, real_inception):
    """A 1x1 image is resized to 299x299 like any other: TF-Inception sees the same constant image as for a 32x32
    image of that colour."""
    folder = good_folder(tmp_path / "imgs", n=2)
    Image.new("RGB", (1, 1), (200, 30, 90)).save(folder / "dot.png")
    assert_decodes_and_scores(folder, "dot.png", np.uint8([[[200, 30, 90]]]))
    feats = extract_features(open_source(str(folder)), real_inception, progress=False).features
    flat = extract_features(open_source(np.full((1, 32, 32, 3), (200, 30, 90), np.uint8)), real_inception,
                            progress=False).features
    np.testing.assert_allclose(feats[0], flat[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animated_image(tmp_path, fmt):
    """Animated GIF / WebP: the first frame only."""
    folder = good_folder(tmp_path / "imgs")
    frames = [Image.new("RGB", (4, 4), colour) for colour in [(255, 0, 0), (0, 0, 255), (0, 255, 0)]]
    frames[0].save(folder / f"anim.{fmt.lower()}", fmt, save_all=True, append_images=frames[1:], duration=10,
                   **({"lossless": True} if fmt == "WEBP" else {}))
    with Image.open(folder / f"anim.{fmt.lower()}") as check:
        assert check.n_frames == 3
    assert_decodes_and_scores(folder, f"anim.{fmt.lower()}", np.broadcast_to(np.uint8([255, 0, 0]), (4, 4, 3)))


def test_exif_rotated_jpeg(tmp_path):
    """EXIF orientation is not applied (as torch-fidelity and clean-fid): pixels are used as stored."""
    folder = good_folder(tmp_path / "imgs")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    stored = np.zeros((8, 16, 3), np.uint8)
    stored[:, :8] = 255  # left half white as stored; a viewer shows the top half white
    Image.fromarray(stored).save(folder / "rotated.jpg", exif=exif, quality=100, subsampling=0)
    decoded = load_named(folder, "rotated.jpg")
    assert decoded.shape == (8, 16, 3)  # not (16, 8, 3)
    assert decoded[:, :6].min() >= 250 and decoded[:, 10:].max() <= 5
    assert_decodes_and_scores(folder, "rotated.jpg", decoded)


def test_mixed_sizes_in_one_folder(tmp_path, real_inception):
    """Images of different sizes and aspect ratios share batches (each is resized where it is decoded): the
    features equal those of each image alone."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name, (h, w) in {"a.png": (32, 32), "b.png": (17, 40), "c.jpg": (64, 20)}.items():
        Image.fromarray(random_images(1, size=max(h, w), seed=h)[0][:h, :w]).save(folder / name)
    source = open_source(str(folder))
    together = extract_features(source, real_inception, batch_size=3, progress=False).features
    alone = [extract_features(open_source(source.load(i)[None]), real_inception, progress=False).features[0]
             for i in range(3)]
    np.testing.assert_allclose(together, np.stack(alone), rtol=1e-4, atol=1e-4)
    assert score_json(folder, folder)["provenance"]["generated"]["n"] == 3


# --- sources -----------------------------------------------------------------------------------------------------


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    assert_one_line_error(run("score", tmp_path / "empty", tmp_path / "empty", *TINY), "empty", "(it is empty)",
                          "accepted extensions: .png")


def test_folder_with_only_non_images(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    for name in ("a.txt", "b.txt", "model.ckpt", "README"):
        (folder / name).write_text("x")
    assert_one_line_error(run("stats", folder, "-o", tmp_path / "out.npz", *TINY), "has no image files",
                          "found 4 other files: 2 .txt", "accepted extensions")
    assert leftovers(tmp_path) == []


def test_non_utf8_file_names(tmp_path):
    """Names that are not UTF-8 are read like any other; messages and reports show their bytes as \\xNN."""
    root = os.fsencode(tmp_path) + b"/caf\xe9"
    os.mkdir(root)
    for i, image in enumerate(random_images(3)):
        Image.fromarray(image).save(os.fsdecode(root + b"/\xff%d.png" % i))
    with open(root + b"/bad\xfe.png", "wb") as handle:
        handle.write(b"junk")
    folder = os.fsdecode(root)
    strict = run("score", folder, folder, "--metrics", "fid", *TINY)
    assert_one_line_error(strict, "bad", ".png")
    table = run("score", folder, folder, "--metrics", "fid", "--skip-bad", *TINY)
    assert table.exit_code == 0, table.output
    assert "caf\\xe9 (N=3, 1 skipped)" in table.stdout
    report = score_json(folder, folder, "--skip-bad")
    assert report["provenance"]["generated"]["skipped"] == [str(tmp_path / "caf\\xe9" / "bad\\xfe.png")]
    assert report["provenance"]["generated"]["source"].encode("utf-8")


def test_zip_with_path_traversal_name(tmp_path):
    """A member named ../x.png (or absolute) refuses the whole archive; nothing is ever extracted."""
    archive = tmp_path / "inner" / "images.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok.png", encoded(Image.new("RGB", (4, 4)), "PNG"))
        zf.writestr("../x.png", encoded(Image.new("RGB", (4, 4)), "PNG"))
    assert_one_line_error(run("score", archive, archive, *TINY), "images.zip", "'../x.png'", "path traversal")
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("array, fragment", [
    (np.zeros((3, 8, 8, 3), np.float32), "dtype float32"),
    (np.zeros((3, 8, 8, 3), np.int64), "dtype int64"),
    (np.zeros((64, 64), np.uint8), "shape (64, 64)"),
    (np.zeros((2, 3, 8, 8, 3), np.uint8), "shape (2, 3, 8, 8, 3)"),
    (np.zeros((8, 8, 3), np.uint8), "looks like one (H, W, C) image"),
], ids=["float32", "int64", "rank2", "rank5", "one-image"])
def test_npy_of_wrong_dtype_or_rank(tmp_path, array, fragment):
    np.save(tmp_path / "images.npy", array)
    assert_one_line_error(run("stats", tmp_path / "images.npy", "-o", tmp_path / "out.npz", *TINY), "images.npy",
                          fragment)
    assert leftovers(tmp_path) == []


def test_nan_or_inf_in_array_input(tmp_path, monkeypatch, tiny):
    """Images: float arrays (where NaN/inf can live) are refused with the uint8 conversion to use. Features: the
    metric functions refuse NaN/inf with its index; features that come out NaN/inf (broken weights) stop the run."""
    images_with_nan = random_images(4).astype(np.float32) / 255
    images_with_nan[0, 0, 0, 0] = np.nan
    np.save(tmp_path / "floats.npy", images_with_nan)
    assert_one_line_error(run("score", tmp_path / "floats.npy", tmp_path / "floats.npy", *TINY), "floats.npy",
                          "dtype float32", "astype(np.uint8)")
    with pytest.raises(InputError, match="dtype float32.*uint8"):
        genmetrics.score(images_with_nan, random_images(4), "fid", extractor="tiny", progress=False)
    feats = np.random.default_rng(0).normal(size=(10, 4))
    feats[3, 1] = np.inf
    with pytest.raises(MetricError, match=r"contains 1 NaN/inf value\(s\), first at index \(3, 1\)"):
        fid_from_features(feats, np.zeros((10, 4)))
    forward = TinyExtractor.forward
    monkeypatch.setattr(TinyExtractor, "forward",
                        lambda self, batch: {k: v * np.nan for k, v in forward(self, batch).items()})
    folder = good_folder(tmp_path / "imgs")
    assert_one_line_error(run("score", folder, folder, *TINY), "NaN/inf features for 'img_0000.png'",
                          "weights are broken")
    assert not list(tiny.glob("*/??/*.npz"))  # never cached


# --- captions and prompts ----------------------------------------------------------------------------------------


def _clip(tiny_clip: tuple[str, str]) -> tuple[str, ...]:
    return ("--clip-model", tiny_clip[0], "--clip-weights", tiny_clip[1], "--no-progress")


@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf\n  \n\t\r\n"], ids=["zero-byte", "blank-lines"])
def test_empty_prompt_file(tmp_path, content):
    """The prompts of `genmetrics sample --prompts` (read_prompt_file): no non-blank line is an error, not 0 samples."""
    (tmp_path / "prompts.txt").write_bytes(content)
    with pytest.raises(InputError, match=r"prompts file '.*prompts\.txt' has no prompts; put one prompt per line") \
            as caught:
        read_prompt_file(tmp_path / "prompts.txt")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("content, offset", [(b"a red square\ncaf\xe9\n", 16), ("one\ntwo".encode("utf-16"), 0)],
                         ids=["latin-1", "utf-16"])
def test_non_utf8_prompt_file(tmp_path, content, offset):
    (tmp_path / "prompts.txt").write_bytes(content)
    with pytest.raises(InputError, match=rf"prompts file '.*prompts\.txt' is not UTF-8 text \(byte {offset}\); save "
                                         "it as UTF-8") as caught:
        read_prompt_file(tmp_path / "prompts.txt")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("count", [2, 5])
def test_prompts_array_of_wrong_length_in_a_sample_npz(tmp_path, tiny_clip, count):
    np.savez(tmp_path / "samples.npz", images=random_images(4), prompts=np.array([f"p{i}" for i in range(count)]),
             labels=np.arange(4))
    out = tmp_path / "out.csv"
    assert_one_line_error(run("clipscore", tmp_path / "samples.npz", "--per-sample", out, *_clip(tiny_clip)),
                          f"array 'prompts' of '{tmp_path / 'samples.npz'}' holds {count} prompts for the file's 4 "
                          "images", "save one prompt per image")
    assert not out.exists()


def test_captions_omitted_on_a_folder(tmp_path, tiny_clip):
    folder = good_folder(tmp_path / "imgs")
    assert_one_line_error(run("clipscore", folder, *_clip(tiny_clip)), f"no captions for '{folder}'", "pass CAPTIONS",
                          "or a .npz of the images with a 'prompts' array")
    assert_one_line_error(run("score", folder, "--metrics", "clip_score", *_clip(tiny_clip)),
                          "'clip_score' needs captions: pass --captions CAPTIONS", "a 'prompts' array")


# --- counts --------------------------------------------------------------------------------------------------------


def test_single_image(tmp_path):
    """N = 1 (also after --skip-bad drops the others): an error, since no covariance exists."""
    one = good_folder(tmp_path / "one", n=1)
    assert_one_line_error(run("stats", one, "-o", tmp_path / "out.npz", *TINY), "1 usable image(s)", "at least 2")
    (one / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    assert_one_line_error(run("score", one, one, "--skip-bad", *TINY), "1 usable image(s)")
    assert leftovers(tmp_path) == []


def test_n_below_feature_dimension(tmp_path):
    """N <= D (16 for the stand-in, 2048 for TF-Inception): the covariance is singular; FID is computed and the
    result carries a warning (shown in the table and in the JSON provenance)."""
    folder = good_folder(tmp_path / "imgs", n=6)
    other = good_folder(tmp_path / "other", n=6, seed=1)
    report = score_json(folder, other)
    assert report["metrics"]["fid"] > 0
    assert [w.split(":")[0] for w in report["provenance"]["warnings"]] == ["generated", "reference"]
    assert "N=6 <= feature dimension 16" in report["provenance"]["warnings"][0]
    table = run("score", folder, other, "--metrics", "fid", *TINY)
    assert table.exit_code == 0 and "warning: generated: N=6 <= feature dimension 16" in table.stdout


# --- statistics files, weights, outputs, cache ------------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf], ids=["nan", "inf"])
def test_nan_or_inf_in_stats_file(tmp_path, bad):
    sigma = np.eye(16)
    sigma[2, 2] = bad
    path = _stats_file(tmp_path / "ref.npz", sigma=sigma)
    folder = good_folder(tmp_path / "imgs")
    assert_one_line_error(run("score", folder, path, "--metrics", "fid", *TINY), "ref.npz", "'sigma' contains NaN/inf")


def test_stats_with_another_feature_dimension(tmp_path):
    """Another extractor's dimension is refused by the spec check; a file whose arrays contradict its own metadata
    is refused when read."""
    folder = good_folder(tmp_path / "imgs")
    other = _stats_file(tmp_path / "dim8.npz", dim=8)
    assert_one_line_error(run("score", folder, other, "--metrics", "fid", *TINY), "dim8.npz", "dim 8 vs 16",
                          "rebuild it with the same options")
    lying = _stats_file(tmp_path / "lying.npz", mu=np.zeros(12))
    assert_one_line_error(run("score", folder, lying, "--metrics", "fid", *TINY), "lying.npz", "mu (12,)",
                          "do not match the extractor's dimension 16")


class _Payload:
    """Unpickling this creates a marker file: proof that the pickle was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def test_stats_file_containing_a_pickle(tmp_path):
    marker = tmp_path / "pickle-was-executed"
    folder = good_folder(tmp_path / "imgs")
    np.savez(tmp_path / "evil.npz", mu=np.array([_Payload(marker)], dtype=object), sigma=np.eye(16),
             meta=np.array("{}"))
    assert_one_line_error(run("score", folder, tmp_path / "evil.npz", "--metrics", "fid", *TINY), "evil.npz",
                          "cannot be read without pickle")
    with pytest.raises(StatsError, match="without pickle"):
        genmetrics.load_stats(tmp_path / "evil.npz")
    assert not marker.exists()


def test_truncated_stats_file(tmp_path):
    """A stats file cut short (e.g. by a copy killed midway) is refused; it never gives a number."""
    path = _stats_file(tmp_path / "ref.npz")
    path.write_bytes(path.read_bytes()[:-100])
    folder = good_folder(tmp_path / "imgs")
    assert_one_line_error(run("score", folder, path, "--metrics", "fid", *TINY), "ref.npz")


def _adm_batch(path: Path, **arrays: np.ndarray) -> Path:
    """An ADM reference batch: 4 images as ``arr_0`` and float32 statistics of ADM's dimensions (2048 pool3, 2023
    spatial), each replaced by ``arrays`` where given (None drops the key)."""
    values = {"arr_0": random_images(4, size=16), "mu": np.zeros(2048, np.float32),
              "sigma": np.eye(2048, dtype=np.float32), "mu_s": np.zeros(2023, np.float32),
              "sigma_s": np.eye(2023, dtype=np.float32), **arrays}
    np.savez(path, **{key: value for key, value in values.items() if value is not None})
    return path


@pytest.mark.parametrize("arrays, fragments", [
    ({"arr_0": np.zeros((4, 16, 16, 3), np.float32)}, ["'arr_0' is float32 of shape (4, 16, 16, 3)", "uint8"]),
    ({"arr_0": np.zeros((4, 16, 16), np.uint8)}, ["'arr_0' is uint8 of shape (4, 16, 16)", "(N, H, W, 3)"]),
    ({"mu": np.zeros(100, np.float32)}, ["mu (100,)", "2048"]),
    ({"sigma": np.eye(2047, dtype=np.float32)}, ["sigma (2047, 2047)", "2048"]),
    ({"mu_s": np.zeros(2048, np.float32)}, ["mu_s (2048,)", "2023"]),
    ({"mu": np.full(2048, np.nan, np.float32)}, ["'mu' contains NaN/inf"]),
    ({"sigma_s": np.full((2023, 2023), np.inf, np.float32)}, ["'sigma_s' contains NaN/inf"]),
    ({"sigma": None}, ["holds 'mu' without 'sigma'"]),
    ({"mu": np.array(["0.5"] * 2048)}, ["'mu' is not floating point"]),
], ids=["float-images", "rank-3-images", "mu-shape", "sigma-shape", "mu_s-shape", "nan", "inf", "mu-alone",
        "string-mu"])
def test_bad_adm_reference_batch(tmp_path, arrays, fragments):
    """An ADM batch is validated when read, whatever the extractor (its statistics are then used or not)."""
    batch = _adm_batch(tmp_path / "VIRTUAL_batch.npz", **arrays)
    folder = good_folder(tmp_path / "imgs")
    assert_one_line_error(run("score", folder, batch, "--metrics", "fid", *TINY), "ADM batch",
                          "VIRTUAL_batch.npz", *fragments)


def test_adm_batch_containing_a_pickle(tmp_path):
    marker = tmp_path / "pickle-was-executed"
    batch = _adm_batch(tmp_path / "evil.npz", mu=np.array([_Payload(marker)], dtype=object))
    folder = good_folder(tmp_path / "imgs")
    assert_one_line_error(run("score", folder, batch, "--metrics", "fid", *TINY), "evil.npz", "'mu'",
                          "pickled object array, which is never loaded")
    assert not marker.exists()


def test_weights_with_wrong_sha256(tmp_path):
    weights = tmp_path / "weights-inception-2015-12-05-6726825d.pth"  # the right name, other bytes
    torch.save({"fc.weight": torch.zeros(2)}, weights)
    folder = good_folder(tmp_path / "imgs")
    line = assert_one_line_error(run("score", folder, folder, "--inception-weights", weights, "--no-progress"),
                                 weights.name, "matches no known TF-Inception release", "--trust-weights")
    assert "7ff4a85c3a63" in line  # the expected digest is named


@pytest.mark.parametrize("case", ["missing-folder", "folder-as-output", "file-as-folder", "permission-denied"])
def test_unwritable_output_path(tmp_path, monkeypatch, case):
    """Refused before any extraction, with the path and the fix; nothing is written."""
    folder = good_folder(tmp_path / "imgs")
    (tmp_path / "dir.npz").mkdir()
    (tmp_path / "plain").write_text("x")
    target, fragment = {
        "missing-folder": (tmp_path / "nowhere" / "out.npz", "does not exist"),
        "folder-as-output": (tmp_path / "dir.npz", "it is a folder"),
        "file-as-folder": (tmp_path / "plain" / "out.npz", "is a file, not a folder"),
        "permission-denied": (tmp_path / "out.npz", "Permission denied"),
    }[case]
    if case == "permission-denied":  # root writes anywhere: simulate EACCES on creating the file
        def denied(*args, **kwargs):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        monkeypatch.setattr("genmetrics.io.atomic.tempfile.mkstemp", denied)
    monkeypatch.setattr(TinyExtractor, "forward", lambda *_: pytest.fail("extraction started before the check"))
    assert_one_line_error(run("stats", folder, "-o", target, *TINY), str(target), fragment,
                          "choose a writable output path")
    assert leftovers(tmp_path) == [] and os.listdir(tmp_path / "dir.npz") == []


def test_unwritable_cache_folder(tmp_path, monkeypatch):
    """The cache is an optimisation: if it cannot be written, a warning says so and the numbers are unchanged."""
    folder = good_folder(tmp_path / "imgs")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("GENMETRICS_CACHE_DIR", str(blocker / "cache"))
    with pytest.warns(UserWarning, match="not writable.*cache=False"):
        cached = genmetrics.compute_stats(str(folder), extractor="tiny", progress=False)
    fresh = genmetrics.compute_stats(str(folder), extractor="tiny", cache=False, progress=False)
    np.testing.assert_array_equal(cached.sigma, fresh.sigma)
    with pytest.warns(UserWarning, match="not writable"):
        assert score_json(folder, folder)["metrics"]["fid"] == pytest.approx(0, abs=1e-6)


def test_corrupt_cache_entry(tmp_path, tiny):
    """Truncated, emptied or foreign cache entries are misses: re-extracted and rewritten, same numbers."""
    folder = good_folder(tmp_path / "imgs")
    other = good_folder(tmp_path / "other", seed=1)
    first = score_json(folder, other)
    entries = sorted(tiny.glob("*/??/*.npz"))
    assert len(entries) == 8
    entries[0].write_bytes(entries[0].read_bytes()[:50])
    entries[1].write_bytes(b"")
    with open(entries[2], "wb") as handle:
        np.savez(handle, features=np.zeros(3, np.float32))
    assert score_json(folder, other)["metrics"] == first["metrics"]
    cached = [load_entry(p) for p in entries[:3]]
    assert all(entry["features"].shape == (16,) and entry["logits"].shape == (4,) for entry in cached)
