"""Image sources: folders, zip files, ``.npy``/``.npz`` arrays, in-memory arrays and generator callables.

Every source is a map-style, random-access :class:`ImageSource` whose :meth:`~ImageSource.load`
returns one image as a ``(H, W, 3)`` ``uint8`` RGB numpy array. :func:`open_source` picks the
source kind; :func:`to_rgb_uint8` is the single conversion rule used everywhere.

Sources are picklable and cheap to pickle (they hold paths and names, not decoded pixels), so the
extraction engine can hand them to DataLoader worker processes: zip files are reopened once per
process, ``.npy`` files are memory-mapped again and ``.npz`` files reloaded in each process. An
in-memory array is pickled with its data. The generator source is deterministic but caches its
last chunk in the process that draws it, so it reports ``supports_workers = False``.

Conversion rules (:func:`to_rgb_uint8`)
---------------------------------------
* Pixels are taken as stored: EXIF orientation is *not* applied (as in torch-fidelity and clean-fid).
* Animated images (GIF, APNG, WebP): the first frame only.
* ``'1'``, ``'L'``, ``'LA'``, ``'RGB'``, ``'RGBA'``, ``'RGBX'``, ``'RGBa'``, ``'CMYK'``, ``'YCbCr'``,
  ``'HSV'``: PIL's ``convert('RGB')``.
* Alpha is dropped, never composited onto a background: RGBA/LA pixels keep their stored colour;
  palette images (``'P'``/``'PA'``, with or without transparency) are expanded through RGBA, so a
  transparent pixel keeps its palette colour.
* 16-bit and 32-bit integer grayscale (``'I;16*'``, ``'I'``): values are clipped to 0..65535 and
  mapped to ``round(v / 257)`` (65535 -> 255, exactly inverting the 8 -> 16 bit ``v * 257``; PIL's
  own conversion would clip everything above 255 to white). 16-bit *colour* PNGs are opened by PIL
  as 8-bit RGB already, keeping the high byte of each sample.
* Float grayscale (``'F'``): values are taken as 0..1 (NaN as 0), clipped and mapped to
  ``round(v * 255)``.
* Other modes (e.g. ``'LAB'``, which PIL cannot convert faithfully) are refused.
* Arrays: ``(H, W)`` and ``(H, W, 1)`` are repeated to 3 channels, ``(H, W, 4)`` drops alpha; the
  dtype must be ``uint8``.

File decoding accepts the content formats PNG, JPEG (incl. MPO), BMP, WebP, TIFF and GIF, whatever the
file's extension; any other content (e.g. PostScript, which PIL would hand to Ghostscript) is a
decode error. PIL's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``) is enforced from the
header, before any pixel memory is allocated. Every failure to read or decode one file is a
:class:`~genmetrics.errors.DecodeError` naming it, so the engine can skip it with ``skip_bad`` (``--skip-bad``).

Hashes
------
* :meth:`ImageSource.raw_bytes_hash`: sha256 of one file's bytes (``sha256sum``-compatible); for
  arrays, sha256 of the item's ``(H, W[, C])`` shape followed by its bytes in HWC order.
* :meth:`ImageSource.content_hash`: folders and zips hash, in order, each item's relative name and
  the sha256 of its bytes (an unreadable item contributes a fixed marker); arrays hash their
  shape, dtype and bytes; the generator source hashes its description (the function's qualified
  name), ``num_samples`` and ``seed`` -- it cannot see the function's code or weights.
"""
from __future__ import annotations

import abc
import collections
import errno
import hashlib
import io
import mmap
import os
import stat
import sys
import warnings
import zipfile
from pathlib import PurePosixPath
from typing import Any, Callable

import numpy as np
from PIL import Image, UnidentifiedImageError

from genmetrics.errors import ConfigError, DecodeError, InputError, phrase, spell
from genmetrics.seeding import CHUNK, chunk_generator

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif")

_PIL_FORMATS = ("PNG", "JPEG", "BMP", "DIB", "WEBP", "TIFF", "GIF")  # JPEG includes MPO
_MAX_ZIP_MEMBER_BYTES = 1 << 30  # refuse zip members that inflate beyond 1 GiB (zip bombs)
MAX_FOLDER_DEPTH = 256  # folders nested deeper than this are refused (the walk is iterative either way)
MAX_ASPECT_RATIO = 256
"""Longest side / shortest side of an image at most: resizing the shortest side of a longer one to an extractor's
input (up to 512 px) would need gigabytes for one image, so it is a bad file (read from the header)."""
_HASH_CHUNK_BYTES = 64 << 20


def _accepted() -> str:
    """The sources the caller can pass: files to CLI users, also arrays and callables to Python callers."""
    files = "a folder of images, a .zip of images"
    return phrase(f"{files}, a .npy/.npz uint8 array, a uint8 numpy array or torch tensor, or a generator callable "
                  f"fn(n, generator) with {spell('num_samples', 'N')}", f"{files} or a .npy/.npz uint8 array")
_RELEASE_BYTES = 64 << 20  # images decoded from a memory-mapped array between releases of its resident pages
_UNREADABLE = hashlib.sha256(b"genmetrics: unreadable item").digest()
_RGB_MODES = frozenset({"1", "L", "LA", "RGB", "RGBA", "RGBX", "RGBa", "CMYK", "YCbCr", "HSV"})


def to_rgb_uint8(img: Image.Image | np.ndarray) -> np.ndarray:
    """Convert a PIL image or one uint8 array image to a new ``(H, W, 3)`` uint8 RGB array.

    The rules are listed in the module docstring. Raises :class:`InputError` for arrays of the wrong
    dtype/shape and for image modes that have no faithful RGB conversion.
    """
    if isinstance(img, Image.Image):
        return _pil_to_rgb(img)
    if not isinstance(img, np.ndarray):
        raise InputError(f"cannot convert {type(img).__name__} to an image; pass a PIL image or a uint8 numpy array")
    if img.dtype != np.uint8:
        raise InputError(f"image array has dtype {img.dtype}; convert it to uint8 with values 0..255")
    arr = img[..., None] if img.ndim == 2 else img
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or 0 in arr.shape:
        raise InputError(f"image array has shape {img.shape}; expected (H, W) or (H, W, C) with C in 1, 3, 4")
    out = np.empty(arr.shape[:2] + (3,), dtype=np.uint8)
    out[...] = arr[..., :3]  # C=1 broadcasts to 3 channels, C=4 drops alpha
    return out


def _pil_to_rgb(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode == "I" or mode.startswith("I;16"):
        gray = np.rint(np.clip(np.asarray(img, dtype=np.float64), 0, 65535) / 257.0)
    elif mode == "F":
        gray = np.rint(np.clip(np.nan_to_num(np.asarray(img, dtype=np.float64)), 0.0, 1.0) * 255.0)
    elif mode in ("P", "PA"):
        return np.array(img.convert("RGBA").convert("RGB"), dtype=np.uint8)
    elif mode in _RGB_MODES:
        return np.array(img.convert("RGB"), dtype=np.uint8)
    else:
        raise InputError(f"unsupported image mode {mode!r}; convert the image to RGB")
    return to_rgb_uint8(gray.astype(np.uint8))


def _decode(data: bytes, path: str) -> np.ndarray:
    """Decode one image file's bytes; every failure becomes a DecodeError naming ``path``."""
    if not data:
        raise DecodeError(path, "empty file")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=_PIL_FORMATS) as img:  # checks the size from the header
                _check_aspect_ratio(*img.size)
                img.load()
                rgb = to_rgb_uint8(img)
        for warning in caught:  # PIL's (e.g. "Corrupt EXIF data") do not say which file
            warnings.warn(f"{path!r}: {warning.message}", warning.category, stacklevel=2)
        return rgb
    except UnidentifiedImageError:
        raise DecodeError(path, "not a PNG, JPEG, BMP, WebP, TIFF or GIF image") from None
    except InputError as e:
        raise DecodeError(path, str(e)) from None
    except Exception as e:  # PIL plugins raise many exception types on malformed data
        raise DecodeError(path, f"{type(e).__name__}: {e}" if str(e) else type(e).__name__) from e


def _check_aspect_ratio(width: int, height: int) -> None:
    """InputError for an image more than MAX_ASPECT_RATIO times longer than wide (or vice versa)."""
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise InputError(f"its {width}x{height} pixels are more than {MAX_ASPECT_RATIO} times longer than wide: "
                         "resizing it for an extractor would need gigabytes")


def printable(text: str) -> str:
    """``text`` safe to print and to encode as UTF-8: the bytes of a non-UTF-8 file name, which Python decodes
    to surrogate escapes, are shown as ``\\xNN``."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that no file name decodes to
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _hash_array_item(item: np.ndarray) -> str:
    h = hashlib.sha256(repr(tuple(item.shape)).encode())
    h.update(np.ascontiguousarray(item).data)
    return h.hexdigest()


class ImageSource(abc.ABC):
    """A map-style, random-access collection of RGB images."""

    description: str
    """Human-readable origin: the path, ``"array (N, H, W, C)"``, or ``"generator fn <name>"``."""
    supports_workers: bool = True
    """Whether the source may be loaded from DataLoader worker processes."""
    content_addressed: bool = True
    """Whether items are stored content (files, arrays) worth caching features of; False for generators,
    whose samples are usually new at every evaluation."""

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of images."""

    @abc.abstractmethod
    def name(self, index: int) -> str:
        """A short name of image ``index`` for messages and per-sample reports."""

    def aliases(self, index: int) -> tuple[str, ...]:
        """Other names a captions file may give image ``index`` (besides :meth:`name`); none by default."""
        return ()

    @abc.abstractmethod
    def load(self, index: int) -> np.ndarray:
        """Image ``index`` as a new ``(H, W, 3)`` uint8 RGB array; raises DecodeError naming the file."""

    @abc.abstractmethod
    def content_hash(self) -> str:
        """sha256 hex digest over the whole source's content (see the module docstring)."""

    @abc.abstractmethod
    def raw_bytes_hash(self, index: int) -> str:
        """sha256 hex digest of image ``index``'s raw bytes (see the module docstring)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.description!r}, n={len(self)})"


class _FileSource(ImageSource):
    """Images stored as encoded files, each named by a relative POSIX path."""

    def __init__(self, description: str, names: list[str]) -> None:
        self.description = description
        self._names = names

    def __len__(self) -> int:
        return len(self._names)

    def name(self, index: int) -> str:
        return self._names[index]

    @abc.abstractmethod
    def _read(self, index: int) -> bytes:
        """The raw bytes of item ``index``; raises DecodeError if they cannot be read."""

    @abc.abstractmethod
    def _display(self, index: int) -> str:
        """The item's location for error messages."""

    def load(self, index: int) -> np.ndarray:
        return _decode(self._read(index), self._display(index))

    def raw_bytes_hash(self, index: int) -> str:
        return hashlib.sha256(self._read(index)).hexdigest()

    def content_hash(self) -> str:
        h = hashlib.sha256(b"genmetrics.files.v1\0")
        for index, name in enumerate(self._names):
            try:
                digest = hashlib.sha256(self._read(index)).digest()
            except DecodeError:
                digest = _UNREADABLE
            encoded = name.encode("utf-8", "surrogateescape")
            h.update(len(encoded).to_bytes(8, "little") + encoded + digest)
        return h.hexdigest()


class FolderSource(_FileSource):
    """Image files under a folder, listed recursively; build it with :func:`open_source`."""

    def __init__(self, root: str, names: list[str], description: str) -> None:
        super().__init__(description, names)
        self.root = root

    def _display(self, index: int) -> str:
        return os.path.join(self.root, *self._names[index].split("/"))

    def _read(self, index: int) -> bytes:
        path = self._display(index)
        try:
            if not stat.S_ISREG(os.stat(path).st_mode):
                raise DecodeError(path, "not a regular file")
            with open(path, "rb") as f:
                return f.read()
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise DecodeError(path, "symbolic link loop (too many levels of symbolic links)") from None
            if os.path.islink(path) and not os.path.exists(path):
                raise DecodeError(path, f"broken symbolic link to {os.readlink(path)!r}") from None
            raise DecodeError(path, e.strerror or str(e)) from None


class ZipSource(_FileSource):
    """Image members of a zip file, opened lazily once per process; build it with :func:`open_source`."""

    def __init__(self, path: str, names: list[str], description: str) -> None:
        super().__init__(description, names)
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        self._zip_pid: int | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_zip": None, "_zip_pid": None}

    def _display(self, index: int) -> str:
        return f"{self.path}:{self._names[index]}"

    def _read(self, index: int) -> bytes:
        try:
            if self._zip is None or self._zip_pid != os.getpid():
                self._zip = zipfile.ZipFile(self.path)
                self._zip_pid = os.getpid()
            info = self._zip.getinfo(self._names[index])
            if info.file_size > _MAX_ZIP_MEMBER_BYTES:
                raise DecodeError(self._display(index), f"member inflates to {info.file_size} bytes, "
                                                        "too large for an image")
            return self._zip.read(info)
        except DecodeError:
            raise
        except Exception as e:  # BadZipFile (CRC), KeyError (zip changed), RuntimeError (encrypted), OSError, ...
            raise DecodeError(self._display(index), f"cannot read zip member: {type(e).__name__}: {e}") from None


class ArraySource(ImageSource):
    """Images in a uint8 array: ``(N, H, W)``, ``(N, H, W, C)`` or ``(N, C, H, W)``, C in 1, 3, 4.

    Built by :func:`open_source` from an in-memory numpy array / torch tensor (pickled with its
    data) or from a ``.npy``/``.npz`` file (pickled as its path; ``.npy`` is memory-mapped).
    """

    def __init__(self, array: np.ndarray, layout: str, description: str, *, item_label: str = "array",
                 path: str | None = None, indices: np.ndarray | None = None) -> None:
        self.description = description
        self._array: np.ndarray | None = array
        self._layout = layout
        self._label = item_label
        self._path = path
        self._indices = indices
        self._shape = array.shape
        self._n = array.shape[0] if indices is None else len(indices)
        self._read_bytes = 0  # decoded since the mapped pages were last released

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if self._path is not None:
            state["_array"] = None
        return state

    def _get_array(self) -> np.ndarray:
        if self._array is None:
            assert self._path is not None
            array = _read_array_file(self._path)[0]
            if array.shape != self._shape:
                raise InputError(f"{self._path!r} changed while in use (shape {self._shape} -> {array.shape}); "
                                 "run again on a file that is not being rewritten")
            self._array = array
        return self._array

    def _source_index(self, index: int) -> int:
        if not -self._n <= index < self._n:
            raise IndexError(f"index {index} out of range for {self._n} images")
        index %= self._n
        return index if self._indices is None else int(self._indices[index])

    def _item(self, index: int) -> np.ndarray:
        return _layout_item(self._get_array()[self._source_index(index)], self._layout)

    def __len__(self) -> int:
        return self._n

    def name(self, index: int) -> str:
        return f"{self._label}[{self._source_index(index)}]"

    def aliases(self, index: int) -> tuple[str, ...]:
        """The item's index in its array as a decimal string ("17" for ``name`` "x.npz['images'][17]")."""
        return (str(self._source_index(index)),)

    def load(self, index: int) -> np.ndarray:
        rgb = to_rgb_uint8(self._item(index))
        self._read_bytes += rgb.nbytes
        if self._read_bytes > _RELEASE_BYTES:  # a mapped file: keep one stretch of it resident, not all
            _release_pages(self._get_array())
            self._read_bytes = 0
        return rgb

    def raw_bytes_hash(self, index: int) -> str:
        return _hash_array_item(self._item(index))

    def content_hash(self) -> str:
        arr = self._get_array()
        h = hashlib.sha256(b"genmetrics.array.v1\0")
        h.update(repr(((self._n,) + arr.shape[1:], str(arr.dtype))).encode())
        per_chunk = max(1, _HASH_CHUNK_BYTES // max(1, arr[:1].nbytes))
        for start in range(0, self._n, per_chunk):
            stop = min(start + per_chunk, self._n)
            chunk = arr[start:stop] if self._indices is None else arr[self._indices[start:stop]]
            h.update(np.ascontiguousarray(chunk).data)
            _release_pages(arr)
        return h.hexdigest()


class GeneratorSource(ImageSource):
    """``num_samples`` images drawn from ``fn(n, generator) -> uint8 NHWC array/tensor``.

    Sample ``i`` belongs to chunk ``k = i // CHUNK`` (64); chunk ``k`` is drawn by one call
    ``fn(m, chunk_generator(seed, k))`` under ``torch.no_grad()`` (the rule of :mod:`genmetrics.seeding`), with
    ``m = CHUNK`` except for a shorter last chunk. Samples therefore never
    depend on how or in which order they are accessed. The most recent chunk is cached, so
    sequential access calls ``fn`` once per chunk. Not for worker processes
    (``supports_workers = False``): each process would redraw the chunks it touches.
    """

    supports_workers = False
    content_addressed = False

    def __init__(self, fn: Callable[..., Any], num_samples: int, seed: int) -> None:
        qualname = getattr(fn, "__qualname__", type(fn).__qualname__)
        module = getattr(fn, "__module__", None) or type(fn).__module__
        self.description = f"generator fn {module}.{qualname}"
        self.fn = fn
        self.num_samples = num_samples
        self.seed = seed
        self._chunk: tuple[int, np.ndarray, str] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_chunk": None}

    def _item(self, index: int) -> np.ndarray:
        if not -self.num_samples <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for {self.num_samples} samples")
        k, offset = divmod(index % self.num_samples, CHUNK)
        if self._chunk is None or self._chunk[0] != k:
            self._chunk = (k, *self._draw(k))
        return _layout_item(self._chunk[1][offset], self._chunk[2])

    def _draw(self, k: int) -> tuple[np.ndarray, str]:
        import torch

        n = min(CHUNK, self.num_samples - k * CHUNK)
        generator = chunk_generator(self.seed, k)
        with torch.no_grad():
            out = self.fn(n, generator)
        what = f"the output of {self.description}"
        arr, layout = _check_batch(_as_numpy(out, what), what)
        if arr.shape[0] != n:
            raise InputError(f"{what} has {arr.shape[0]} samples but {n} were requested; return exactly n images")
        return arr, layout

    def __len__(self) -> int:
        return self.num_samples

    def name(self, index: int) -> str:
        return f"sample[{index}]"

    def load(self, index: int) -> np.ndarray:
        return to_rgb_uint8(self._item(index))

    def raw_bytes_hash(self, index: int) -> str:
        return _hash_array_item(self._item(index))

    def content_hash(self) -> str:
        return hashlib.sha256(repr((self.description, self.num_samples, self.seed)).encode()).hexdigest()


def _layout_item(item: np.ndarray, layout: str) -> np.ndarray:
    return item.transpose(1, 2, 0) if layout == "NCHW" else item


def _as_numpy(obj: Any, what: str) -> Any:
    """A torch tensor as a numpy array (checking the dtype first); anything else unchanged."""
    torch = sys.modules.get("torch")  # a tensor cannot exist unless torch is imported
    if torch is not None and isinstance(obj, torch.Tensor):
        if obj.dtype != torch.uint8:
            raise InputError(f"{what} is a tensor of dtype {obj.dtype}; convert it to torch.uint8 with values 0..255")
        return obj.detach().cpu().numpy()
    return obj


def _check_batch(arr: Any, what: str) -> tuple[np.ndarray, str]:
    """Validate a batch of images and detect its layout: ``'NHW'``, ``'NHWC'`` or ``'NCHW'``."""
    if not isinstance(arr, np.ndarray):
        raise InputError(f"{what} is a {type(arr).__name__}; expected a uint8 numpy array or torch tensor")
    if arr.dtype != np.uint8:
        raise InputError(f"{what} has dtype {arr.dtype}; convert it to uint8 with values 0..255 "
                         "(e.g. (x * 255).round().clip(0, 255).astype(np.uint8) for floats in 0..1)")
    shapes = "(N, H, W), (N, H, W, C) or (N, C, H, W) with C in 1, 3, 4"
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        raise InputError(f"{what} has shape {arr.shape}, which looks like one (H, W, C) image; "
                         f"add a batch axis (x[None]) -- expected {shapes}")
    if arr.ndim == 3:
        layout = "NHW"
    elif arr.ndim == 4 and arr.shape[-1] in (1, 3, 4):
        layout = "NHWC"
    elif arr.ndim == 4 and arr.shape[1] in (1, 3, 4):
        layout = "NCHW"
    else:
        raise InputError(f"{what} has shape {arr.shape}; expected {shapes}")
    if arr.shape[0] == 0:
        raise InputError(f"{what} holds 0 images; pass at least one")
    if 0 in arr.shape:
        raise InputError(f"{what} has shape {arr.shape} with an empty image axis; images must be at least 1x1")
    height, width = arr.shape[2:] if layout == "NCHW" else arr.shape[1:3]
    try:
        _check_aspect_ratio(width, height)
    except InputError as error:
        raise InputError(f"{what}: {error}") from None
    return arr, layout


def _map_npy(path: str, start: int) -> np.ndarray | None:
    """The array of the .npy data that begins at byte ``start`` of ``path`` (a .npy file, or an uncompressed .npz
    member), memory-mapped read-only: a read-only ndarray over an ``mmap.mmap``. None where numpy's own reader must
    decide (a newer format, object arrays, no data)."""
    with open(path, "rb") as handle:
        handle.seek(start)
        version = np.lib.format.read_magic(handle)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                       (2, 0): np.lib.format.read_array_header_2_0}.get(version)
        if read_header is None:
            return None
        shape, fortran_order, dtype = read_header(handle)
        data = handle.tell()
        count = int(np.prod(shape))
        if dtype.hasobject or count == 0:
            return None
        aligned = data - data % mmap.ALLOCATIONGRANULARITY
        mapped = mmap.mmap(handle.fileno(), data - aligned + count * dtype.itemsize, access=mmap.ACCESS_READ,
                           offset=aligned)
    array = np.frombuffer(mapped, dtype, count, offset=data - aligned)
    return array.reshape(shape, order="F" if fortran_order else "C")


def mapped_file(array: np.ndarray) -> mmap.mmap | None:
    """The ``mmap.mmap`` under ``array`` (from :func:`_map_npy`), or None for an array in memory."""
    base: Any = array
    while base is not None and not isinstance(base, mmap.mmap):
        base = base.obj if isinstance(base, memoryview) else getattr(base, "base", None)
    return base


def _release_pages(array: np.ndarray) -> None:
    """Drop the resident pages of the mmap under ``array`` (if any): they are clean file pages, read again on the
    next access, so reading a large file item by item keeps the resident memory of one stretch of it."""
    mapped = mapped_file(array)
    if mapped is not None and hasattr(mmap, "MADV_DONTNEED"):
        mapped.madvise(mmap.MADV_DONTNEED)


def _npz_member(path: str, npz: np.lib.npyio.NpzFile, key: str) -> np.ndarray:
    """The array ``key`` of the open .npz ``npz``: memory-mapped when stored uncompressed (np.savez), so its size
    costs no memory; read whole when compressed (np.savez_compressed) up to _MAX_ZIP_MEMBER_BYTES inflated."""
    info = npz.zip.getinfo(f"{key}.npy") if f"{key}.npy" in npz.zip.namelist() else npz.zip.getinfo(key)
    if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
        if info.file_size > _MAX_ZIP_MEMBER_BYTES:
            raise InputError(f"array {key!r} of {path!r} is compressed and inflates to {info.file_size / 2**30:.1f} "
                             f"GiB, over the {_MAX_ZIP_MEMBER_BYTES >> 30} GiB limit for compressed members; save "
                             "it uncompressed (np.save or np.savez, which are memory-mapped)")
        return npz[key]
    with open(path, "rb") as handle:  # the member's data follow its local header (30 bytes, name, extra field)
        handle.seek(info.header_offset)
        local = handle.read(30)
    start = info.header_offset + 30 + int.from_bytes(local[26:28], "little") + int.from_bytes(local[28:30], "little")
    mapped = _map_npy(path, start)
    return npz[key] if mapped is None else mapped


def _read_array_file(path: str) -> tuple[np.ndarray, str, str]:
    """Load a ``.npy`` (memory-mapped) or ``.npz`` file: ``(array, layout, item label)``."""
    base = os.path.basename(path)
    try:
        loaded = _map_npy(path, 0) if not zipfile.is_zipfile(path) else None
        loaded = np.load(path, allow_pickle=False) if loaded is None else loaded
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                keys = list(loaded.files)
                if len(keys) == 1:
                    key = keys[0]
                elif "images" in keys or "arr_0" in keys:
                    key = "images" if "images" in keys else "arr_0"
                else:
                    raise InputError(f"{path!r} holds arrays {keys}; it must hold exactly one array, "
                                     "or the images under the key 'images' or 'arr_0'")
                arr, label, what = _npz_member(path, loaded, key), f"{base}[{key!r}]", f"array {key!r} of {path!r}"
        else:
            arr, label, what = loaded, base, repr(path)
    except InputError:
        raise
    except ValueError as e:
        if "pickle" in str(e) or "Python objects" in str(e):
            raise InputError(f"{path!r} is not a plain array file (numpy reads it as pickled data or an object "
                             "array, which is never loaded since it could run code); save the images with "
                             "np.save/np.savez as a uint8 array") from None
        raise InputError(f"{path!r} is not a valid .npy/.npz file: {e}") from None
    except Exception as e:  # a malformed header or zip raises OSError, EOFError, BadZipFile, TokenError, TypeError, ...
        raise InputError(f"cannot read {path!r}: {type(e).__name__}: {e}; check that it is a complete .npy/.npz "
                         "file") from None
    return (*_check_batch(arr, what), label)


def _scan(folder: str, root: str) -> list[os.DirEntry]:
    """The entries of ``folder``; InputError naming it when it cannot be listed."""
    try:
        with os.scandir(folder) as entries:
            return list(entries)
    except OSError as e:
        raise InputError(f"cannot list folder {folder!r}: {e.strerror or e}; fix its permissions "
                         f"or move it out of {root!r}") from None


def _list_folder(root: str) -> list[str]:
    """Relative POSIX paths of the image files under ``root``, sorted.

    An iterative walk, at most MAX_FOLDER_DEPTH folders deep (InputError deeper). Symlinked files are listed (a
    broken one fails later, in ``load``); symlinked folders are followed, but each real folder (device, inode)
    is visited once, so symlink loops and duplicates are cut.
    """
    images: list[str] = []
    others: collections.Counter[str] = collections.Counter()
    root_stat = os.stat(root)
    visited = {(root_stat.st_dev, root_stat.st_ino)}
    pending = [(root, PurePosixPath(), 0)]
    while pending:
        folder, rel, depth = pending.pop()
        subfolders = []
        for entry in sorted(_scan(folder, root), key=lambda e: e.name):
            try:
                real = entry.stat() if entry.is_dir() else None  # both follow symlinks
            except OSError:  # a broken or looping link: listed as a file, it fails when read
                real = None
            if real is not None:
                if (real.st_dev, real.st_ino) not in visited:
                    visited.add((real.st_dev, real.st_ino))
                    subfolders.append(entry)
                continue
            ext = os.path.splitext(entry.name)[1].lower()
            if ext in IMAGE_EXTENSIONS:
                images.append(str(rel / entry.name))
            else:
                others[ext or "(no extension)"] += 1
        if subfolders and depth == MAX_FOLDER_DEPTH:
            raise InputError(f"folder {root!r} nests folders deeper than {MAX_FOLDER_DEPTH} levels (at "
                             f"{subfolders[0].path!r}); move the images into a shallower folder")
        pending.extend((entry.path, rel / entry.name, depth + 1) for entry in reversed(subfolders))
    if not images:
        raise InputError(f"folder {root!r} has no image files{_others_note(others)}; "
                         f"accepted extensions: {', '.join(IMAGE_EXTENSIONS)}")
    return sorted(images)


def _others_note(others: collections.Counter[str]) -> str:
    if not others:
        return " (it is empty)"
    top = ", ".join(f"{n} {ext}" for ext, n in others.most_common(5))
    return f" (found {sum(others.values())} other files: {top})"


def _list_zip(path: str) -> list[str]:
    """Names of the image members of a zip file, sorted; refuses unsafe member names."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except Exception as e:  # BadZipFile, OSError, EOFError, NotImplementedError (unknown zip version), ...
        raise InputError(f"cannot open zip file {path!r}: {type(e).__name__}: {e}; check that it is a complete, "
                         "valid zip") from None
    images: list[str] = []
    others: collections.Counter[str] = collections.Counter()
    for info in infos:
        if info.filename.endswith("/"):  # a folder; not info.is_dir(), which fails on an empty member name
            continue
        parts = info.filename.replace("\\", "/").split("/")
        drive = len(parts[0]) == 2 and parts[0][1] == ":"  # C:/...
        if info.filename.startswith(("/", "\\")) or drive or ".." in parts:
            raise InputError(f"zip file {path!r} has member {info.filename!r} with an absolute or '..' path "
                             "(path traversal); refusing the archive -- rebuild it with relative member names")
        if parts[0] == "__MACOSX":  # macOS resource forks, not images
            continue
        ext = os.path.splitext(info.filename)[1].lower()
        if ext in IMAGE_EXTENSIONS:
            images.append(info.filename)
        else:
            others[ext or "(no extension)"] += 1
    if not images:
        raise InputError(f"zip file {path!r} has no image members{_others_note(others)}; "
                         f"accepted extensions: {', '.join(IMAGE_EXTENSIONS)}")
    duplicates = sorted(n for n, c in collections.Counter(images).items() if c > 1)
    if duplicates:
        raise InputError(f"zip file {path!r} has several members named {duplicates[0]!r}; rebuild it with unique names")
    return sorted(images)


def _choose(total: int, num_samples: int | None, seed: int, description: str) -> np.ndarray | None:
    """Sorted indices of a seeded random subset of ``num_samples`` of ``total`` items, or None for all."""
    if num_samples is None or num_samples == total:
        return None
    if num_samples > total:
        raise InputError(f"{description} has only {total} images but {spell('num_samples', str(num_samples))} were "
                         f"requested; pass {spell('num_samples', str(total))} or fewer, or add images")
    return np.sort(np.random.default_rng(seed).choice(total, size=num_samples, replace=False))


def _subset_note(indices: np.ndarray | None, total: int, seed: int) -> str:
    return "" if indices is None else f" (random subset of {len(indices)} of {total}, seed {seed})"


def open_source(source: Any, *, num_samples: int | None = None, seed: int = 0) -> ImageSource:
    """Open ``source`` as an :class:`ImageSource`.

    ``source`` is a folder (searched recursively for ``IMAGE_EXTENSIONS``, case-insensitive, sorted
    by relative POSIX path), a ``.zip`` file, a ``.npy``/``.npz`` file, a uint8 numpy array or
    torch tensor, or a callable ``fn(n, generator)``. For a callable, ``num_samples`` (required) is
    the number of samples and ``seed`` seeds them (see :class:`GeneratorSource`). For every other
    source, ``num_samples`` picks a random subset of that many images with
    ``numpy.random.default_rng(seed)``, kept in source order; None takes all of them.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"{spell('seed', repr(seed))}: the seed must be a non-negative integer")
    if num_samples is not None and (not isinstance(num_samples, (int, np.integer)) or isinstance(num_samples, bool)
                                    or num_samples < 1):
        raise ConfigError(f"{spell('num_samples', repr(num_samples))}: num_samples must be a positive integer")
    seed = int(seed)
    num_samples = None if num_samples is None else int(num_samples)

    array = _as_numpy(source, "the input")
    if isinstance(array, np.ndarray):
        kind = "array" if array is source else "tensor"
        arr, layout = _check_batch(array, f"the input {kind}")
        indices = _choose(arr.shape[0], num_samples, seed, f"the input {kind}")
        return ArraySource(arr, layout, f"{kind} {arr.shape}{_subset_note(indices, arr.shape[0], seed)}",
                           indices=indices)
    if isinstance(source, (str, os.PathLike)):
        return _open_path(os.fspath(source), num_samples, seed)
    if callable(source):
        if num_samples is None:
            raise InputError(f"a generator callable needs {spell('num_samples', 'N')}: how many images to draw from it")
        return GeneratorSource(source, num_samples, seed)
    raise InputError(f"cannot read images from a {type(source).__name__}; pass {_accepted()}")


def _open_path(path: str, num_samples: int | None, seed: int) -> ImageSource:
    if os.path.isdir(path):
        names = _list_folder(path)
        indices = _choose(len(names), num_samples, seed, f"folder {path!r}")
        picked = names if indices is None else [names[i] for i in indices]
        return FolderSource(path, picked, path + _subset_note(indices, len(names), seed))
    if not os.path.exists(path):
        if os.path.islink(path):
            raise InputError(f"no such file or folder: {path!r} is a broken symbolic link to {os.readlink(path)!r}")
        raise InputError(f"no such file or folder: {path!r}; check the path")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".zip":
        names = _list_zip(path)
        indices = _choose(len(names), num_samples, seed, f"zip file {path!r}")
        picked = names if indices is None else [names[i] for i in indices]
        return ZipSource(path, picked, path + _subset_note(indices, len(names), seed))
    if ext in (".npy", ".npz"):
        arr, layout, label = _read_array_file(path)
        indices = _choose(arr.shape[0], num_samples, seed, repr(path))
        return ArraySource(arr, layout, path + _subset_note(indices, arr.shape[0], seed), item_label=label,
                           path=path, indices=indices)
    hint = "; put single images in a folder" if ext in IMAGE_EXTENSIONS else ""
    raise InputError(f"cannot read images from {path!r}{hint}; pass {_accepted()}")
