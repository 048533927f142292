"""Output files of the generators: PNG and array bytes, and image folders that appear complete or not at all.
Files and folders are written by genmetrics' atomic writers (``genmetrics.io.atomic``; ``write_bytes`` is
re-exported here); samples stream to disk chunk by chunk (``write_samples``).
"""
from __future__ import annotations

import io
import itertools
import os
import shutil
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
from PIL import Image

from genmetrics.errors import InputError, spell
from genmetrics.io.atomic import atomic_folder, atomic_write, check_parent, check_writable, write_bytes

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["check_sample_output", "npy_bytes", "png_bytes", "write_bytes", "write_figure", "write_samples"]


def png_bytes(image: np.ndarray) -> bytes:
    """(H, W) or (H, W, 1) uint8 -> PNG file bytes (8-bit grayscale)."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image.reshape(image.shape[:2]))).save(buffer, format="PNG")
    return buffer.getvalue()


def write_figure(path: str | os.PathLike, figure: "Figure", dpi: int) -> None:
    """A matplotlib ``figure`` written atomically to ``path`` as a PNG at ``dpi``."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    write_bytes(path, buffer.getvalue())


def check_sample_output(output: str | os.PathLike, inputs: Iterable[str | os.PathLike]) -> None:
    """InputError now, before sampling, unless samples can be written to ``output``: a ``.npz``/``.npy`` file
    (a regular file or a new name, not one of ``inputs``) or a new or empty folder."""
    target = Path(output)
    if target.suffix in (".npz", ".npy"):
        check_writable(target, inputs)
    elif target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InputError(f"cannot write images to {str(target)!r}: it exists and is not an empty folder "
                         "(choose a new folder, or a file name ending in .npz)")
    else:
        check_parent(target)


def write_samples(output: str | os.PathLike, n: int, chunks: Iterable[tuple[np.ndarray, np.ndarray | None]],
                  prompts: Sequence[str] | None = None) -> tuple[int, ...]:
    """Stream ``n`` samples, given as chunks of (B, H, W, C) uint8 images and (B,) int64 labels or None, to
    ``output``: a ``.npz`` ('images' (n, H, W, C) [+ 'labels' (n,)] [+ 'prompts' (n,) unicode]), a ``.npy`` (the
    images) or a new folder of PNGs (with ``prompts``: ``000000.txt`` beside ``000000.png``, the captions-folder
    format ``genmetrics clipscore`` reads). Only one chunk is held at a time; the output appears complete or not
    at all. InputError before the first write if the output's file system lacks the room the images need, or for
    ``prompts`` with a ``.npy`` output. Returns one image's shape (H, W, C)."""
    if prompts is not None and (len(prompts) != n or Path(output).suffix == ".npy"):
        raise InputError(f"the prompts of {n} samples need one prompt per sample and a .npz or folder output (a "
                         f".npy holds images only); got {len(prompts)} prompts, output {str(output)!r}")
    chunks = iter(chunks)
    first = next(chunks)
    needed = n * first[0][0].nbytes
    target = Path(output)
    free = shutil.disk_usage(target.parent if str(target.parent) else ".").free
    if needed > free:
        raise InputError(f"{spell('n', str(n))} samples need {needed / 2**30:.1f} GiB on disk, "
                         f"{str(target.parent)!r} has {free / 2**30:.1f} GiB free; lower {spell('n', 'N')} or "
                         "choose another output")
    everything = itertools.chain([first], chunks)
    if target.suffix in (".npz", ".npy"):
        with atomic_write(target) as handle:
            if target.suffix == ".npy":
                _write_npy_rows(handle, n, first[0], (images for images, _ in everything))
            else:
                _write_npz_rows(handle, n, first[0], everything, prompts)
    else:
        _write_png_folder(target, (image for images, _ in everything for image in images), prompts)
    return first[0].shape[1:]


def _npy_header(n: int, like: np.ndarray) -> dict:
    """The .npy header of an (n, *like.shape[1:]) array of like's dtype."""
    return {"descr": np.lib.format.dtype_to_descr(like.dtype), "fortran_order": False, "shape": (n, *like.shape[1:])}


def _write_npy_rows(handle: BinaryIO, n: int, like: np.ndarray, batches: Iterable[np.ndarray]) -> None:
    """A .npy of ``n`` rows shaped like ``like``'s, written batch by batch."""
    np.lib.format.write_array_header_2_0(handle, _npy_header(n, like))
    written = 0
    for batch in batches:
        handle.write(np.ascontiguousarray(batch, like.dtype).tobytes())
        written += len(batch)
    if written != n:
        raise InputError(f"expected {n} samples, the sampler gave {written}")


def _write_npz_rows(handle: BinaryIO, n: int, like: np.ndarray, chunks: Iterable[tuple[np.ndarray, np.ndarray | None]],
                    prompts: Sequence[str] | None = None) -> None:
    """An uncompressed .npz with 'images' streamed chunk by chunk, 'labels' (when given) and 'prompts' after them."""
    labels: list[np.ndarray] = []

    def images() -> Iterator[np.ndarray]:
        for batch, batch_labels in chunks:
            if batch_labels is not None:
                labels.append(batch_labels)
            yield batch

    with zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED) as archive:
        with archive.open("images.npy", "w", force_zip64=True) as member:
            _write_npy_rows(member, n, like, images())
        if labels:
            archive.writestr("labels.npy", npy_bytes(np.concatenate(labels)))
        if prompts is not None:
            archive.writestr("prompts.npy", npy_bytes(np.array(list(prompts), dtype=str)))


def _write_png_folder(target: Path, images: Iterable[np.ndarray], prompts: Sequence[str] | None = None) -> None:
    """Write (H, W, 1) uint8 images as ``target/000000.png``, ... (and each prompt as ``000000.txt``, UTF-8); the
    folder appears complete or not at all (:func:`genmetrics.io.atomic.atomic_folder`)."""
    with atomic_folder(target) as tmp:
        for i, image in enumerate(images):
            (tmp / f"{i:06d}.png").write_bytes(png_bytes(image))
            if prompts is not None:
                (tmp / f"{i:06d}.txt").write_text(prompts[i] + "\n", encoding="utf-8")


def npy_bytes(array: np.ndarray) -> bytes:
    """A ``.npy`` file holding ``array`` (no pickled objects)."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()
