"""Tests of genmetrics.io.images: every source kind, decoding rules, hashing and failure messages."""
from __future__ import annotations

import hashlib
import io
import os
import pathlib
import pickle
import re
import resource
import shutil
import struct
import threading
import zipfile
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from genmetrics.errors import ConfigError, DecodeError, InputError
from genmetrics.io import images
from genmetrics.io.images import (
    IMAGE_EXTENSIONS,
    ImageSource,
    open_source,
    to_rgb_uint8,
)
from tests.helpers import with_zip_extract_version


def _rgb(seed: int, h: int = 8, w: int = 6) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def _save(path: pathlib.Path, arr: np.ndarray) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return arr


@pytest.fixture
def folder(tmp_path: pathlib.Path) -> tuple[pathlib.Path, dict[str, np.ndarray]]:
    root = tmp_path / "imgs"
    arrays = {
        "b.png": _save(root / "b.png", _rgb(1)),
        "a.PNG": _save(root / "a.PNG", _rgb(2)),
        "sub/c.bmp": _save(root / "sub" / "c.bmp", _rgb(3)),
        "sub/deeper/d.tiff": _save(root / "sub" / "deeper" / "d.tiff", _rgb(4)),
    }
    (root / "notes.txt").write_text("not an image")
    return root, arrays


def _all(src: ImageSource) -> list[np.ndarray]:
    return [src.load(i) for i in range(len(src))]


# --- folders -------------------------------------------------------------------------------------


def test_folder_lists_recursively_sorted_and_decodes_lossless(folder):
    root, arrays = folder
    src = open_source(root)
    assert [src.name(i) for i in range(len(src))] == ["a.PNG", "b.png", "sub/c.bmp", "sub/deeper/d.tiff"]
    assert src.description == str(root) and src.supports_workers
    for i in range(len(src)):
        img = src.load(i)
        assert img.dtype == np.uint8 and img.shape == (8, 6, 3) and img.flags.writeable
        np.testing.assert_array_equal(img, arrays[src.name(i)])
    assert open_source(str(root)).content_hash() == src.content_hash()


def test_folder_raw_bytes_hash_is_sha256_of_the_file(folder):
    root, _ = folder
    src = open_source(root)
    assert src.raw_bytes_hash(1) == hashlib.sha256((root / "b.png").read_bytes()).hexdigest()


def test_empty_folder_is_input_error(tmp_path):
    with pytest.raises(InputError, match=r"no image files \(it is empty\).*accepted extensions: \.png"):
        open_source(tmp_path)


def test_folder_without_images_names_what_it_saw(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    (tmp_path / "b.txt").write_text("x")
    (tmp_path / "c.svg").write_bytes(b"<svg/>")
    with pytest.raises(InputError, match=r"found 3 other files: 2 \.txt, 1 \.svg\).*\.jpeg.*\.tiff"):
        open_source(tmp_path)


def test_missing_path_and_unsupported_inputs(tmp_path):
    with pytest.raises(InputError, match="no such file or folder: .*nope"):
        open_source(tmp_path / "nope")
    single = tmp_path / "one.png"
    _save(single, _rgb(0))
    with pytest.raises(InputError, match="put single images in a folder"):
        open_source(single)
    (tmp_path / "x.csv").write_text("1,2")
    with pytest.raises(InputError, match=r"x\.csv.*a folder of images, a \.zip"):
        open_source(tmp_path / "x.csv")
    with pytest.raises(InputError, match="cannot read images from a int"):
        open_source(42)
    with pytest.raises(InputError, match="cannot read images from a list"):
        open_source([_rgb(0)])


def test_content_hash_tracks_one_changed_file_and_names(folder, tmp_path):
    root, arrays = folder
    before = open_source(root).content_hash()
    changed = arrays["b.png"].copy()
    changed[0, 0, 0] ^= 1
    _save(root / "b.png", changed)
    after = open_source(root).content_hash()
    assert after != before
    (root / "b.png").rename(root / "b2.png")
    assert open_source(root).content_hash() not in (before, after)


def test_content_hash_does_not_depend_on_location(folder, tmp_path):
    root, _ = folder
    copy = tmp_path / "elsewhere"
    shutil.copytree(root, copy)
    assert open_source(copy).content_hash() == open_source(root).content_hash()


# --- decode failures -----------------------------------------------------------------------------


def test_bad_files_raise_decode_error_naming_the_file(tmp_path):
    good = _png_bytes(_rgb(0, 64, 64))
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello, I am not a png")
    (tmp_path / "trunc.png").write_bytes(good[: len(good) // 2])
    (tmp_path / "ok.png").write_bytes(good)
    src = open_source(tmp_path)
    by_name = {src.name(i): i for i in range(len(src))}
    assert set(by_name) == {"empty.png", "text.png", "trunc.png", "ok.png"}
    with pytest.raises(DecodeError, match=r"empty\.png.*empty file.*skip_bad=True"):
        src.load(by_name["empty.png"])
    with pytest.raises(DecodeError, match=r"text\.png.*not a PNG, JPEG"):
        src.load(by_name["text.png"])
    with pytest.raises(DecodeError, match=r"trunc\.png.*truncated"):
        src.load(by_name["trunc.png"])
    assert src.load(by_name["ok.png"]).shape == (64, 64, 3)
    assert len(src.content_hash()) == 64  # hashing reads bytes only, bad images do not matter


def _png_with_size(width: int, height: int) -> bytes:
    """A valid 1x1 PNG whose IHDR claims width x height (CRC recomputed)."""
    data = bytearray(_png_bytes(np.zeros((1, 1, 3), np.uint8)))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


@pytest.mark.parametrize("side", [20000, 10000])  # above 2x the limit (PIL error), and between 1x and 2x (warning)
def test_decompression_bomb_header_is_refused_without_allocating(tmp_path, side):
    (tmp_path / "bomb.png").write_bytes(_png_with_size(side, side))
    src = open_source(tmp_path)
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(DecodeError, match=r"bomb\.png.*DecompressionBomb.*exceeds limit"):
        src.load(0)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 100_000  # KiB


def test_postscript_content_is_not_handed_to_ghostscript(tmp_path):
    (tmp_path / "x.png").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 1 1\n")
    with pytest.raises(DecodeError, match=r"x\.png.*not a PNG"):
        open_source(tmp_path).load(0)


def test_broken_symlink_is_listed_and_fails_on_load(tmp_path):
    _save(tmp_path / "a.png", _rgb(0))
    os.symlink(tmp_path / "missing.png", tmp_path / "b.png")
    src = open_source(tmp_path)
    assert [src.name(i) for i in range(len(src))] == ["a.png", "b.png"]
    with pytest.raises(DecodeError, match=r"b\.png.*broken symbolic link to .*missing\.png"):
        src.load(1)
    with pytest.raises(DecodeError, match=r"b\.png"):
        src.raw_bytes_hash(1)
    assert len(src.content_hash()) == 64


def test_symlinked_file_and_folder_are_followed(tmp_path):
    outside = tmp_path / "outside"
    arr = _save(outside / "x.png", _rgb(5))
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(outside / "x.png", root / "file.png")
    os.symlink(outside, root / "linked")
    src = open_source(root)
    assert [src.name(i) for i in range(len(src))] == ["file.png", "linked/x.png"]
    np.testing.assert_array_equal(src.load(0), arr)


def test_symlink_loops_do_not_hang(tmp_path):
    root = tmp_path / "root"
    _save(root / "sub" / "a.png", _rgb(0))
    os.symlink(root, root / "sub" / "up")  # directory loop
    os.symlink(root / "self.png", root / "self.png")  # file loop
    result: list[ImageSource] = []
    thread = threading.Thread(target=lambda: result.append(open_source(root)), daemon=True)
    thread.start()
    thread.join(timeout=20)
    assert not thread.is_alive(), "listing a folder with a symlink loop hangs"
    src = result[0]
    assert [src.name(i) for i in range(len(src))] == ["self.png", "sub/a.png"]
    with pytest.raises(DecodeError, match=r"self\.png.*symbolic link loop"):
        src.load(0)


def test_fifo_is_not_read(tmp_path):
    _save(tmp_path / "a.png", _rgb(0))
    os.mkfifo(tmp_path / "pipe.png")
    with pytest.raises(DecodeError, match=r"pipe\.png.*not a regular file"):
        open_source(tmp_path).load(1)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read files without read permission")
def test_unreadable_file_is_listed_and_fails_on_load(tmp_path):
    _save(tmp_path / "a.png", _rgb(0))
    (tmp_path / "a.png").chmod(0)
    src = open_source(tmp_path)
    with pytest.raises(DecodeError, match=r"a\.png.*Permission denied"):
        src.load(0)


# --- conversion rules ----------------------------------------------------------------------------


def _roundtrip(img: Image.Image, fmt: str, tmp_path: pathlib.Path, **save_args) -> np.ndarray:
    """Save ``img`` as the only file of a folder and load it back through a folder source."""
    img.save(tmp_path / f"x.{fmt.lower()}", fmt, **save_args)
    return open_source(tmp_path).load(0)


def test_16bit_png_scales_by_257(tmp_path):
    values = np.array([[0, 257, 65535, 1000, 128, 129]], dtype=np.uint16)
    out = _roundtrip(Image.fromarray(values), "PNG", tmp_path)
    expected = np.array([0, 1, 255, 4, 0, 1], np.uint8)  # round(v / 257)
    assert out.shape == (1, 6, 3)
    np.testing.assert_array_equal(out, np.repeat(expected[None, :, None], 3, axis=2))


def test_int32_and_float_modes():
    i32 = Image.fromarray(np.array([[-5, 257 * 10, 70000]], dtype=np.int32))
    assert i32.mode == "I"
    np.testing.assert_array_equal(to_rgb_uint8(i32)[0, :, 0], [0, 10, 255])
    f = Image.fromarray(np.array([[0.0, 0.5, 1.0, 2.0, np.nan]], dtype=np.float32))
    assert f.mode == "F"
    np.testing.assert_array_equal(to_rgb_uint8(f)[0, :, 0], [0, 128, 255, 255, 0])


def test_palette_with_transparency_keeps_palette_colour(tmp_path):
    img = Image.new("P", (2, 2), 0)
    img.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    img.putpixel((1, 1), 1)
    out = _roundtrip(img, "PNG", tmp_path, transparency=0)
    np.testing.assert_array_equal(out[0, 0], [10, 20, 30])  # transparent: alpha dropped, colour kept
    np.testing.assert_array_equal(out[1, 1], [200, 100, 50])


def test_rgba_drops_alpha(tmp_path):
    rgba = np.zeros((3, 4, 4), np.uint8)
    rgba[..., :3] = _rgb(7, 3, 4)
    rgba[0, 0, 3] = 0
    rgba[1:, :, 3] = 255
    out = _roundtrip(Image.fromarray(rgba), "PNG", tmp_path)
    np.testing.assert_array_equal(out, rgba[..., :3])


def test_grayscale_and_bilevel(tmp_path):
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    np.testing.assert_array_equal(_roundtrip(Image.fromarray(gray), "PNG", tmp_path), np.stack([gray] * 3, -1))
    bilevel = Image.new("1", (3, 2), 1)
    np.testing.assert_array_equal(to_rgb_uint8(bilevel), np.full((2, 3, 3), 255, np.uint8))


def test_cmyk_jpeg(tmp_path):
    out = _roundtrip(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", tmp_path, quality=100)
    assert out.dtype == np.uint8 and out.shape == (16, 16, 3)
    assert np.abs(out.astype(int) - [255, 0, 0]).max() <= 3


def test_one_by_one(tmp_path):
    np.testing.assert_array_equal(_roundtrip(Image.new("RGB", (1, 1), (1, 2, 3)), "PNG", tmp_path), [[[1, 2, 3]]])


def test_animated_gif_first_frame():
    frames = [Image.new("RGB", (4, 4), c) for c in [(255, 0, 0), (0, 0, 255)]]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=10)
    img = Image.open(io.BytesIO(buf.getvalue()))
    assert img.n_frames == 2
    np.testing.assert_array_equal(to_rgb_uint8(img), np.broadcast_to(np.uint8([255, 0, 0]), (4, 4, 3)))


def test_animated_webp_first_frame(tmp_path):
    frames = [Image.new("RGB", (4, 4), c) for c in [(0, 255, 0), (0, 0, 255)]]
    out = _roundtrip(frames[0], "WEBP", tmp_path, save_all=True, append_images=frames[1:], lossless=True)
    np.testing.assert_array_equal(out, np.broadcast_to(np.uint8([0, 255, 0]), (4, 4, 3)))


def test_exif_orientation_is_not_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    out = _roundtrip(Image.new("RGB", (4, 2), (9, 9, 9)), "JPEG", tmp_path, exif=exif)
    assert out.shape == (2, 4, 3)


def test_to_rgb_uint8_arrays():
    gray = np.arange(6, dtype=np.uint8).reshape(2, 3)
    np.testing.assert_array_equal(to_rgb_uint8(gray), np.stack([gray] * 3, -1))
    np.testing.assert_array_equal(to_rgb_uint8(gray[..., None]), np.stack([gray] * 3, -1))
    rgba = np.random.default_rng(0).integers(0, 256, (2, 3, 4), dtype=np.uint8)
    out = to_rgb_uint8(rgba)
    np.testing.assert_array_equal(out, rgba[..., :3])
    assert out.flags.c_contiguous and out.base is None
    with pytest.raises(InputError, match="dtype uint16.*uint8"):
        to_rgb_uint8(gray.astype(np.uint16))
    with pytest.raises(InputError, match=r"shape \(2, 3, 5\)"):
        to_rgb_uint8(np.zeros((2, 3, 5), np.uint8))
    with pytest.raises(InputError, match="unsupported image mode 'LAB'"):
        to_rgb_uint8(Image.new("LAB", (2, 2)))


# --- arrays --------------------------------------------------------------------------------------


def _batch(n: int = 5) -> np.ndarray:
    return np.random.default_rng(42).integers(0, 256, (n, 7, 9, 3), dtype=np.uint8)


def test_nhwc_nchw_and_tensor_agree():
    nhwc = _batch()
    expected = list(nhwc)
    for src in [open_source(nhwc), open_source(np.ascontiguousarray(nhwc.transpose(0, 3, 1, 2))),
                open_source(torch.from_numpy(nhwc)), open_source(torch.from_numpy(nhwc).permute(0, 3, 1, 2))]:
        assert len(src) == 5 and src.supports_workers
        for got, want in zip(_all(src), expected):
            np.testing.assert_array_equal(got, want)
    assert open_source(nhwc).description == "array (5, 7, 9, 3)"
    assert open_source(torch.from_numpy(nhwc)).description == "tensor (5, 7, 9, 3)"
    assert open_source(nhwc).name(3) == "array[3]"
    # per-item hashes do not depend on the stored layout
    assert open_source(nhwc.transpose(0, 3, 1, 2)).raw_bytes_hash(2) == open_source(nhwc).raw_bytes_hash(2)


def test_grayscale_one_and_four_channel_arrays():
    gray = _batch()[..., 0]
    for arr in [gray, gray[..., None], gray[:, None]]:
        np.testing.assert_array_equal(open_source(arr).load(1), np.stack([gray[1]] * 3, -1))
    rgba = np.concatenate([_batch(), np.zeros((5, 7, 9, 1), np.uint8)], axis=-1)
    np.testing.assert_array_equal(open_source(rgba).load(4), _batch()[4])


@pytest.mark.parametrize(
    ("arr", "match"),
    [
        (np.zeros((2, 4, 4, 3), np.uint16), "dtype uint16; convert it to uint8 with values 0..255"),
        (np.zeros((2, 4, 4, 3), np.float32), "dtype float32"),
        (np.zeros((2, 4, 4, 3), object), "dtype object"),
        (np.zeros((2, 5, 6, 7), np.uint8), r"shape \(2, 5, 6, 7\); expected \(N, H, W\)"),
        (np.zeros((2, 1, 4, 4, 3), np.uint8), r"shape \(2, 1, 4, 4, 3\)"),
        (np.zeros((32, 32, 3), np.uint8), r"looks like one \(H, W, C\) image; add a batch axis"),
        (np.zeros((0, 4, 4, 3), np.uint8), "holds 0 images"),
        (np.zeros((2, 0, 4, 3), np.uint8), "at least 1x1"),
    ],
)
def test_bad_arrays_are_refused(arr, match):
    with pytest.raises(InputError, match=match):
        open_source(arr)


def test_float_tensor_is_refused_naming_torch_dtype():
    with pytest.raises(InputError, match=r"torch\.float32.*torch\.uint8"):
        open_source(torch.zeros(2, 3, 4, 4))


def test_npy_is_memory_mapped_and_hash_matches_in_memory(tmp_path):
    arr = _batch(6)
    np.save(tmp_path / "x.npy", arr)
    src = open_source(tmp_path / "x.npy")
    assert images.mapped_file(src._array) is not None
    assert src.description == str(tmp_path / "x.npy") and src.name(2) == "x.npy[2]"
    np.testing.assert_array_equal(src.load(5), arr[5])
    assert src.content_hash() == open_source(arr).content_hash()
    assert src.raw_bytes_hash(1) == open_source(arr).raw_bytes_hash(1)
    changed = arr.copy()
    changed[3, 0, 0, 0] ^= 1
    assert open_source(changed).content_hash() != src.content_hash()


def test_content_hash_streams_in_chunks(monkeypatch):
    arr = _batch(7)
    full = open_source(arr).content_hash()
    monkeypatch.setattr(images, "_HASH_CHUNK_BYTES", arr[0].nbytes * 2)
    assert open_source(arr).content_hash() == full


class _Evil:
    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_object_npy_and_npz_are_refused_without_executing(tmp_path):
    marker = tmp_path / "pwned"
    evil = np.array([_Evil(marker)], dtype=object)
    np.save(tmp_path / "evil.npy", evil, allow_pickle=True)
    np.savez(tmp_path / "evil.npz", images=evil)
    for name in ["evil.npy", "evil.npz"]:
        with pytest.raises(InputError, match=rf"{name}.*never loaded.*uint8 array"):
            open_source(tmp_path / name)
    assert not marker.exists()


def test_npz_key_rules(tmp_path):
    arr = _batch(3)
    np.savez(tmp_path / "one.npz", whatever=arr)
    np.savez(tmp_path / "images.npz", labels=np.arange(3), images=arr)
    np.savez(tmp_path / "arr0.npz", arr, np.arange(3))
    np.savez(tmp_path / "two.npz", a=arr, b=arr)
    np.savez_compressed(tmp_path / "compressed.npz", images=arr)
    for name in ["one.npz", "images.npz", "arr0.npz", "compressed.npz"]:
        src = open_source(tmp_path / name)
        np.testing.assert_array_equal(src.load(2), arr[2])
        assert src.content_hash() == open_source(arr).content_hash()
    assert open_source(tmp_path / "images.npz").name(1) == "images.npz['images'][1]"
    with pytest.raises(InputError, match=r"two\.npz.*holds arrays \['a', 'b'\].*'images' or 'arr_0'"):
        open_source(tmp_path / "two.npz")
    np.savez(tmp_path / "bad.npz", images=arr.astype(np.uint16))
    with pytest.raises(InputError, match=r"array 'images' of .*bad\.npz.*dtype uint16"):
        open_source(tmp_path / "bad.npz")


def test_corrupt_array_files(tmp_path):
    (tmp_path / "junk.npy").write_bytes(b"\x93NUMPY\x01\x00garbage")
    with pytest.raises(InputError, match=r"junk\.npy"):
        open_source(tmp_path / "junk.npy")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(InputError, match=r"junk\.npz"):
        open_source(tmp_path / "junk.npz")


@pytest.mark.parametrize("header", [
    "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 4, 4, 3 }",  # tokenize.TokenError in numpy
    "{'descr': '|u1', b'fortran_order': False, 'shape': (2, 4, 4, 3), }",  # TypeError sorting the keys
])
def test_malformed_npy_headers_are_input_errors(tmp_path, header):
    """Regression: numpy's header parser let TokenError and TypeError escape as tracebacks."""
    padded = header.encode("latin1").ljust(118) + b"\n"
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY\x01\x00" + len(padded).to_bytes(2, "little") + padded
                                       + bytes(96))
    with pytest.raises(InputError, match=r"cannot read .*bad\.npy.*complete \.npy/\.npz"):
        open_source(tmp_path / "bad.npy")


def test_zip_of_an_unsupported_version_is_an_input_error(tmp_path):
    """Regression: zipfile's NotImplementedError (unknown extract version) escaped from .zip and .npz sources."""
    buffer = io.BytesIO()
    np.savez(buffer, images=np.zeros((2, 4, 4, 3), np.uint8))
    (tmp_path / "v.npz").write_bytes(with_zip_extract_version(buffer.getvalue()))
    with pytest.raises(InputError, match=r"v\.npz.*NotImplementedError"):
        open_source(tmp_path / "v.npz")
    _make_zip(tmp_path / "plain.zip", {"a.png": _png_bytes(_rgb(0))})
    (tmp_path / "v.zip").write_bytes(with_zip_extract_version((tmp_path / "plain.zip").read_bytes()))
    with pytest.raises(InputError, match=r"cannot open zip file .*v\.zip.*NotImplementedError"):
        open_source(tmp_path / "v.zip")


# --- zip -----------------------------------------------------------------------------------------


def _make_zip(path: pathlib.Path, members: dict[str, bytes]) -> pathlib.Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_zip_source(tmp_path):
    a, b = _rgb(1), _rgb(2)
    path = _make_zip(tmp_path / "d.zip", {
        "imgs/b.png": _png_bytes(b), "imgs/a.JPG": _png_bytes(a), "imgs/": b"",
        "readme.txt": b"x", "__MACOSX/imgs/._a.png": b"junk",
    })
    src = open_source(path)
    assert [src.name(i) for i in range(len(src))] == ["imgs/a.JPG", "imgs/b.png"]
    np.testing.assert_array_equal(src.load(0), a)
    np.testing.assert_array_equal(src.load(1), b)
    # the same files in a folder hash the same
    _save(tmp_path / "f" / "imgs" / "b.png", b)
    (tmp_path / "f" / "imgs" / "a.JPG").write_bytes(_png_bytes(a))
    assert src.content_hash() == open_source(tmp_path / "f").content_hash()


@pytest.mark.parametrize("member", ["../x.png", "a/../../x.png", "/abs/x.png", "C:/x.png", "a\\..\\x.png"])
def test_zip_path_traversal_is_refused(tmp_path, member):
    path = _make_zip(tmp_path / "evil.zip", {"ok.png": _png_bytes(_rgb(0)), member: _png_bytes(_rgb(1))})
    with pytest.raises(InputError, match=rf"evil\.zip.*{re.escape(repr(member))}.*path traversal"):
        open_source(path)


def test_corrupt_and_empty_zips(tmp_path):
    (tmp_path / "bad.zip").write_bytes(b"this is not a zip")
    with pytest.raises(InputError, match=r"cannot open zip file .*bad\.zip"):
        open_source(tmp_path / "bad.zip")
    _make_zip(tmp_path / "none.zip", {"a.txt": b"x"})
    with pytest.raises(InputError, match=r"none\.zip.*no image members.*1 \.txt"):
        open_source(tmp_path / "none.zip")


def test_zip_member_with_an_empty_name_is_not_an_image(tmp_path):
    """Regression (found by test_fuzz): a member named '' raised IndexError from ZipInfo.is_dir()."""
    with zipfile.ZipFile(tmp_path / "d.zip", "w") as archive:
        archive.writestr("a.png", _png_bytes(_rgb(0)))
        archive.writestr(zipfile.ZipInfo(""), b"x")
    assert [open_source(tmp_path / "d.zip").name(0)] == ["a.png"] and len(open_source(tmp_path / "d.zip")) == 1
    with zipfile.ZipFile(tmp_path / "e.zip", "w") as archive:
        archive.writestr(zipfile.ZipInfo(""), b"x")
    with pytest.raises(InputError, match=r"e\.zip.*no image members.*1 \(no extension\)"):
        open_source(tmp_path / "e.zip")


def test_zip_bad_member_raises_decode_error(tmp_path, monkeypatch):
    path = _make_zip(tmp_path / "d.zip", {"bad.png": b"nope", "big.png": _png_bytes(_rgb(0))})
    src = open_source(path)
    with pytest.raises(DecodeError, match=r"d\.zip:bad\.png"):
        src.load(0)
    monkeypatch.setattr(images, "_MAX_ZIP_MEMBER_BYTES", 10)
    with pytest.raises(DecodeError, match=r"d\.zip:big\.png.*too large"):
        src.load(1)


def test_zip_in_dataloader_workers(tmp_path):
    arrays = [_rgb(i) for i in range(6)]
    path = _make_zip(tmp_path / "d.zip", {f"{i}.png": _png_bytes(a) for i, a in enumerate(arrays)})
    src = open_source(path)
    src.load(0)  # opens the zip handle in this process; forked workers must not share it

    class DS(torch.utils.data.Dataset):
        def __len__(self):
            return len(src)

        def __getitem__(self, i):
            return torch.from_numpy(src.load(i))

    loader = torch.utils.data.DataLoader(DS(), batch_size=2, num_workers=2, multiprocessing_context="fork")
    got = torch.cat(list(loader)).numpy()
    np.testing.assert_array_equal(got, np.stack(arrays))


# --- generator -----------------------------------------------------------------------------------

CALLS: list[int] = []


def _sampler(n: int, generator: torch.Generator) -> torch.Tensor:
    CALLS.append(n)
    return torch.randint(0, 256, (n, 4, 5, 3), generator=generator, dtype=torch.uint8)


def test_generator_is_deterministic_and_order_independent():
    CALLS.clear()
    src = open_source(_sampler, num_samples=150, seed=3)
    assert len(src) == 150 and not src.supports_workers
    assert src.description == f"generator fn {__name__}._sampler"
    forward = _all(src)
    assert CALLS == [64, 64, 22]  # one call per chunk when read in order
    order = np.random.default_rng(0).permutation(150)
    shuffled = {int(i): open_source(_sampler, num_samples=150, seed=3).load(int(i)) for i in order}
    for i in range(150):
        np.testing.assert_array_equal(forward[i], shuffled[i])
    # chunk k is seeded with seed * 1_000_003 + k
    chunk1 = _sampler(64, torch.Generator().manual_seed(3 * 1_000_003 + 1)).numpy()
    np.testing.assert_array_equal(forward[64 + 5], chunk1[5])
    # full chunks do not depend on num_samples; another seed gives other samples
    other_n = open_source(_sampler, num_samples=64, seed=3)
    np.testing.assert_array_equal(other_n.load(10), forward[10])
    assert not np.array_equal(open_source(_sampler, num_samples=150, seed=4).load(10), forward[10])


def test_generator_hash_and_errors():
    a = open_source(_sampler, num_samples=10, seed=0)
    assert a.content_hash() == open_source(_sampler, num_samples=10, seed=0).content_hash()
    assert a.content_hash() != open_source(_sampler, num_samples=10, seed=1).content_hash()
    assert a.content_hash() != open_source(_sampler, num_samples=11, seed=0).content_hash()
    assert a.raw_bytes_hash(3) == images._hash_array_item(a._item(3))
    with pytest.raises(InputError, match="needs num_samples"):
        open_source(_sampler)
    with pytest.raises(InputError, match=r"output of generator fn .*<lambda>.*dtype float32"):
        open_source(lambda n, g: np.zeros((n, 4, 4, 3), np.float32), num_samples=2).load(0)
    with pytest.raises(InputError, match="has 1 samples but 2 were requested"):
        open_source(lambda n, g: np.zeros((1, 4, 4, 3), np.uint8), num_samples=2).load(0)


def test_argument_validation():
    with pytest.raises(ConfigError, match="seed must be a non-negative integer"):
        open_source(_batch(), seed=-1)
    with pytest.raises(ConfigError, match="num_samples must be a positive integer"):
        open_source(_sampler, num_samples=0)


# --- subsets -------------------------------------------------------------------------------------


def test_num_samples_picks_a_seeded_subset(folder):
    root, _ = folder
    full = open_source(root)
    names = [full.name(i) for i in range(len(full))]
    sub = open_source(root, num_samples=2, seed=7)
    picked = [sub.name(i) for i in range(2)]
    assert picked == sorted(picked, key=names.index) and set(picked) <= set(names)
    assert picked == [open_source(root, num_samples=2, seed=7).name(i) for i in range(2)]
    assert "random subset of 2 of 4, seed 7" in sub.description
    assert open_source(root, num_samples=4).content_hash() == full.content_hash()
    with pytest.raises(InputError, match="has only 4 images but num_samples=5"):
        open_source(root, num_samples=5)

    arr = _batch(20)
    asub = open_source(arr, num_samples=5, seed=1)
    idx = [int(asub.name(i)[6:-1]) for i in range(5)]
    assert idx == sorted(idx)
    np.testing.assert_array_equal(np.stack(_all(asub)), arr[idx])
    assert asub.content_hash() == open_source(arr[idx]).content_hash()


# --- pickling ------------------------------------------------------------------------------------


def test_sources_pickle_cheaply(folder, tmp_path):
    root, _ = folder
    big = np.random.default_rng(0).integers(0, 256, (50, 64, 64, 3), dtype=np.uint8)
    np.save(tmp_path / "big.npy", big)
    np.savez(tmp_path / "big.npz", images=big)
    _make_zip(tmp_path / "d.zip", {f"{i}.png": _png_bytes(big[i]) for i in range(3)})
    sources = [open_source(root), open_source(tmp_path / "d.zip"), open_source(tmp_path / "big.npy"),
               open_source(tmp_path / "big.npz", num_samples=10), open_source(big[:4]),
               open_source(_sampler, num_samples=70, seed=1)]
    for src in sources:
        first = src.load(len(src) - 1)  # warm any per-process state (zip handle, generator chunk)
        blob = pickle.dumps(src)
        if src.supports_workers and not src.description.startswith("array"):
            assert len(blob) < 4096, src.description
        copy = pickle.loads(blob)
        assert len(copy) == len(src) and copy.description == src.description
        np.testing.assert_array_equal(copy.load(len(src) - 1), first)
        assert copy.content_hash() == src.content_hash()


def test_npy_rewritten_with_another_shape_is_detected_on_reload(tmp_path):
    np.save(tmp_path / "x.npy", _batch(4))
    copy = pickle.loads(pickle.dumps(open_source(tmp_path / "x.npy")))
    np.save(tmp_path / "x.npy", _batch(3))
    with pytest.raises(InputError, match=r"x\.npy.*changed while in use"):
        copy.load(0)


def test_gif_files_are_listed(tmp_path):
    """Regression: GIF content was decoded, but files named .gif were not listed from folders and zips."""
    Image.new("RGB", (4, 4), (1, 2, 3)).save(tmp_path / "a.GIF")
    src = open_source(tmp_path)
    assert [src.name(0)] == ["a.GIF"] and len(src) == 1
    np.testing.assert_array_equal(src.load(0), np.full((4, 4, 3), (1, 2, 3), np.uint8))


def test_image_extensions_constant():
    assert IMAGE_EXTENSIONS == (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif")


def test_printable_shows_the_bytes_of_non_utf8_names():
    """Regression: a non-UTF-8 file name (surrogate escapes) crashed the table output with UnicodeEncodeError."""
    name = os.fsdecode(b"caf\xe9/\xff.png")
    assert images.printable(name) == "caf\\xe9/\\xff.png"
    assert images.printable("café/日本.png") == "café/日本.png"
    assert images.printable("\ud800") == "\\ud800"
    assert images.printable(name).encode("utf-8")
