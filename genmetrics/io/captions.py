"""Captions of images: read from a CSV / TSV / JSONL file or a folder of ``.txt`` files, and matched to images.

Formats (UTF-8, a byte-order mark is ignored):

* ``.csv`` / ``.tsv``: either a header row naming a file column (one of ``FILE_COLUMNS``) and a caption
  column (one of ``CAPTION_COLUMNS``), other columns ignored, or no header and exactly two columns,
  file then caption. CSV follows the usual quoting rules (captions may hold commas, quotes, newlines);
  TSV fields are split at tabs with no quoting, so quotes stay part of the caption.
* ``.jsonl``: one JSON object per line with a file key and a caption key (same names as the columns,
  e.g. Hugging Face's ``{"file_name": ..., "text": ...}``); blank lines are skipped.
* a folder: every ``*.txt`` file below it (recursively) holds the caption of the image with the same
  relative path and stem, e.g. ``imgs/cat.txt`` for ``imgs/cat.png``; the folder may be the image folder.

Matching: a caption's file name is compared with each image's name in its source (the relative POSIX path
inside a folder or zip), first as is, then without the image's extension; so ``cat.png`` and ``cat``
both name ``cat.png``. An image of a ``.npy``/``.npz`` array also answers to its index in the array: ``17`` names
``x.npz['images'][17]`` (``ImageSource.aliases``). Names are stripped, ``\\`` becomes ``/`` and a leading ``./``
is dropped.

Sample files: a ``.npz`` of images may carry their captions as a 1-D numpy string array under the key ``prompts``
(one per image, by index; :func:`read_prompts_array`), used when no captions are given.

Prompt files (``genmetrics sample --prompts``, :func:`read_prompt_file`): UTF-8 text, one prompt per non-blank line.

Reference captions (RefCLIPScore) use the same formats, with several captions per image: a file name may
repeat over rows, a JSONL caption may be a list of strings, and each non-empty line of a ``.txt`` file is
one reference.
"""
from __future__ import annotations

import csv
import io
import json
import os
import posixpath
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from genmetrics.errors import InputError
from genmetrics.io.images import open_source

FILE_COLUMNS = ("file", "filename", "file_name", "image", "image_file", "path", "name")
CAPTION_COLUMNS = ("caption", "text", "prompt")
FORMATS = ".csv, .tsv, .jsonl, or a folder of .txt files"
PROMPTS_KEY = "prompts"
"""The key of the captions array in a sample ``.npz`` (beside its ``images``)."""
_SHOWN = 5  # names listed in an error message


@dataclass(frozen=True)
class CaptionTable:
    """Captions by image name, as read from ``origin``; ``captions[name]`` holds one or more strings.
    ``exhaustive``: every caption must name an image (False for the prompts of a sample file, of which a subset of
    its images uses some)."""

    origin: str
    captions: dict[str, list[str]]
    exhaustive: bool = True


def first_names(names: Sequence[str]) -> str:
    """'a', 'b', 'c' for at most the first five names, then ', ... (N in all)' when there are more."""
    shown = ", ".join(repr(name) for name in names[:_SHOWN])
    return shown + (f", ... ({len(names)} in all)" if len(names) > _SHOWN else "")


def _clean_name(name: str) -> str:
    name = name.strip().replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    return name


def _read_text(path: Path, what: str = "captions file") -> str:
    """The UTF-8 text of ``path`` (a byte-order mark dropped); InputError naming ``what`` and the file otherwise."""
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{what} {str(path)!r} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise InputError(f"cannot read {what} {str(path)!r}: {exc.strerror or exc}") from None


def _pick(keys: Sequence[str], wanted: tuple[str, ...]) -> int | None:
    """Index of the first of ``keys`` (case-insensitive) that is one of ``wanted``, or None."""
    lowered = [key.strip().lower() for key in keys]
    return next((lowered.index(name) for name in wanted if name in lowered), None)


def _table_rows(path: Path, delimiter: str) -> Iterator[tuple[str, str, Any]]:
    """(where, file name, caption) for each data row of a CSV/TSV file."""
    quoting = csv.QUOTE_MINIMAL if delimiter == "," else csv.QUOTE_NONE
    try:
        rows = list(csv.reader(io.StringIO(_read_text(path), newline=""), delimiter=delimiter, quoting=quoting))
    except csv.Error as exc:
        raise InputError(f"captions file {str(path)!r} is not valid CSV: {exc}") from None
    rows = [(number, row) for number, row in enumerate(rows, start=1) if any(cell.strip() for cell in row)]
    if not rows:
        return
    header = rows[0][1]
    file_col, caption_col = _pick(header, FILE_COLUMNS), _pick(header, CAPTION_COLUMNS)
    if file_col is not None and caption_col is not None:
        rows = rows[1:]
    elif len(header) == 2:
        file_col, caption_col = 0, 1
    else:
        raise InputError(f"captions file {str(path)!r}: the first row {header!r} is neither a header naming a file "
                         f"column ({'/'.join(FILE_COLUMNS)}) and a caption column ({'/'.join(CAPTION_COLUMNS)}) nor "
                         "a two-column row 'file,caption'; add such a header")
    for number, row in rows:
        if len(row) <= max(file_col, caption_col):
            raise InputError(f"captions file {str(path)!r}, row {number}: {len(row)} column(s), expected at least "
                             f"{max(file_col, caption_col) + 1}; quote captions that contain the separator")
        yield f"row {number}", row[file_col], row[caption_col]


def _jsonl_rows(path: Path) -> Iterator[tuple[str, str, Any]]:
    """(where, file name, caption) for each line of a JSONL file."""
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"captions file {str(path)!r}, {where}: not valid JSON ({exc.msg})") from None
        keys = list(record) if isinstance(record, dict) else []
        file_key, caption_key = _pick(keys, FILE_COLUMNS), _pick(keys, CAPTION_COLUMNS)
        if file_key is None or caption_key is None:
            raise InputError(f"captions file {str(path)!r}, {where}: expected an object with a file key "
                             f"({'/'.join(FILE_COLUMNS)}) and a caption key ({'/'.join(CAPTION_COLUMNS)})")
        yield where, str(record[keys[file_key]]), record[keys[caption_key]]


def _txt_rows(folder: Path, multiple: bool) -> Iterator[tuple[str, str, Any]]:
    """(file, image name without extension, caption or list of lines) for each .txt file below ``folder``."""
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() == ".txt" and p.is_file())
    if not files:
        raise InputError(f"captions folder {str(folder)!r} has no .txt files; put one caption per image in "
                         "NAME.txt beside NAME.png, or pass a CSV/TSV/JSONL file")
    for path in files:
        text = _read_text(path)
        name = PurePosixPath(*path.relative_to(folder).with_suffix("").parts)
        yield str(path.relative_to(folder)), str(name), ([ln for ln in text.splitlines() if ln.strip()] if multiple
                                                         else text)


def read_captions(path: str | os.PathLike, *, multiple: bool = False) -> CaptionTable:
    """Read a captions file or folder (formats in the module docstring).

    ``multiple=False`` (captions to score): exactly one caption per name. ``multiple=True`` (references):
    a name may repeat and collects all its captions. Empty captions and repeated names are InputErrors
    naming the first few.
    """
    source = Path(path)
    suffix = source.suffix.lower()
    if source.is_dir():
        rows = _txt_rows(source, multiple)
    elif not source.exists():
        raise InputError(f"captions file {str(source)!r} does not exist; pass a {FORMATS}")
    elif suffix in (".csv", ".tsv"):
        rows = _table_rows(source, "," if suffix == ".csv" else "\t")
    elif suffix == ".jsonl":
        rows = _jsonl_rows(source)
    else:
        raise InputError(f"captions file {str(source)!r} has an unknown format; pass a {FORMATS}")
    captions: dict[str, list[str]] = {}
    empty: list[str] = []
    repeated: list[str] = []
    for where, name, value in rows:
        name = _clean_name(name)
        values = value if multiple and isinstance(value, list) else [value]
        if not all(isinstance(v, str) for v in values):
            raise InputError(f"captions file {str(source)!r}, {where}: the caption of {name!r} is not a string")
        if not name or not values or any(not v.strip() for v in values):
            empty.append(name or where)
        elif name in captions and not multiple:
            repeated.append(name)
        captions.setdefault(name, []).extend(v.strip() for v in values)
    if empty:
        raise InputError(f"captions {str(source)!r}: {len(empty)} empty caption(s) or file name(s): "
                         f"{first_names(empty)}; every image needs a non-empty caption")
    if repeated:
        raise InputError(f"captions {str(source)!r}: {len(repeated)} image name(s) given more than one caption: "
                         f"{first_names(repeated)}; keep one caption per image")
    if not captions:
        raise InputError(f"captions {str(source)!r} holds no captions; pass a {FORMATS}")
    return CaptionTable(origin=str(source), captions=captions)


def match_captions(names: Sequence[str], table: CaptionTable, images: str,
                   aliases: Sequence[Sequence[str]] | None = None) -> list[list[str]]:
    """The captions of each image name (in order), from ``table``; ``images`` describes the source in messages.
    A caption names an image by its name, its name without extension, or one of its ``aliases`` (per image, e.g.
    an array item's index, from ``ImageSource.aliases``).

    Images without a caption and, where ``table.exhaustive``, captions that name no image are InputErrors listing
    the first few.
    """
    used: set[str] = set()
    matched: list[list[str]] = []
    missing: list[str] = []
    for i, name in enumerate(names):
        keys = (name, posixpath.splitext(name)[0], *(aliases[i] if aliases is not None else ()))
        key = next((k for k in keys if k in table.captions), None)
        if key is None:
            missing.append(name)
        else:
            used.add(key)
            matched.append(table.captions[key])
    if missing:
        raise InputError(f"{len(missing)} image(s) in {images!r} have no caption in {table.origin!r}: "
                         f"{first_names(missing)}; add their captions or remove the images")
    unused = [key for key in table.captions if key not in used] if table.exhaustive else []
    if unused:
        raise InputError(f"{len(unused)} caption(s) in {table.origin!r} name no image in {images!r}: "
                         f"{first_names(unused)}; fix the file names (relative to the image folder) or remove "
                         "those captions")
    return matched


def as_caption_table(captions: Any, names: Sequence[str], what: str, *, multiple: bool = False) -> CaptionTable:
    """Captions given to the Python API: a path (read with ``read_captions``), a mapping name -> caption(s), or
    a sequence of captions (or, with ``multiple``, of lists of captions) in the images' order; a CaptionTable as is."""
    if isinstance(captions, CaptionTable):
        return captions
    if isinstance(captions, (str, os.PathLike)):
        return read_captions(captions, multiple=multiple)
    if isinstance(captions, Mapping):
        items = list(captions.items())
    elif isinstance(captions, Sequence):
        if len(captions) != len(names):
            raise InputError(f"{what} holds {len(captions)} captions for {len(names)} images; give one per image "
                             "in the images' order, or a mapping from image file name to caption")
        items = list(zip(names, captions))
    else:
        raise InputError(f"{what} must be a captions file/folder path, a mapping name -> caption, or a list of "
                         f"captions; got {type(captions).__name__}")
    table: dict[str, list[str]] = {}
    empty = []
    for name, value in items:
        values = list(value) if multiple and not isinstance(value, str) else [value]
        if not values or not all(isinstance(v, str) and v.strip() for v in values):
            empty.append(str(name))
        table[_clean_name(str(name))] = [str(v).strip() for v in values]
    if empty:
        raise InputError(f"{what}: {len(empty)} empty or non-string caption(s): {first_names(empty)}; every image "
                         "needs a non-empty caption")
    return CaptionTable(origin=what, captions=table)


def read_prompts_array(path: str | os.PathLike) -> list[str] | None:
    """The captions a sample ``.npz`` carries: its array ``prompts`` (one per image, by index), stripped; None when
    ``path`` is no .npz file or holds no such array. InputError naming the file and key unless it is a 1-D numpy
    unicode array (``<U..``) as long as the file's images, without empty strings."""
    path = os.fspath(path)
    if os.path.splitext(path)[1].lower() != ".npz" or not zipfile.is_zipfile(path):
        return None
    what = f"array {PROMPTS_KEY!r} of {path!r}"
    try:
        with np.load(path, allow_pickle=False) as npz:
            if PROMPTS_KEY not in npz.files:
                return None
            prompts = npz[PROMPTS_KEY]
    except ValueError as exc:
        if "pickle" not in str(exc):
            raise InputError(f"cannot read {what}: {exc}; check that it is a complete .npz file") from None
        raise InputError(f"{what} is an object array, never loaded (it would need pickle); save the prompts as a "
                         "string array, np.array(prompts, dtype=str)") from None
    except Exception as exc:  # a malformed member: BadZipFile, OSError, EOFError, ...
        raise InputError(f"cannot read {what}: {type(exc).__name__}: {exc}; check that it is a complete .npz file"
                         ) from None
    if prompts.ndim != 1 or prompts.dtype.kind != "U":
        raise InputError(f"{what} is {prompts.dtype} of shape {prompts.shape}; save the prompts as a 1-D string "
                         "array, np.array(prompts, dtype=str), one per image")
    count = len(open_source(path))
    if len(prompts) != count:
        raise InputError(f"{what} holds {len(prompts)} prompts for the file's {count} images; save one prompt per "
                         "image, in the images' order")
    texts = [text.strip() for text in prompts.tolist()]
    empty = [str(index) for index, text in enumerate(texts) if not text]
    if empty:
        raise InputError(f"{what}: {len(empty)} empty prompt(s), at index {first_names(empty)}; every image needs a "
                         "non-empty prompt")
    return texts


def sample_captions(images: Any) -> CaptionTable | None:
    """The captions a sample file ``images`` carries (:func:`read_prompts_array`), by image index (a table that a
    subset of the file's images may use in part); None for any other source."""
    prompts = read_prompts_array(images) if isinstance(images, (str, os.PathLike)) else None
    if prompts is None:
        return None
    return CaptionTable(f"{os.fspath(images)}[{PROMPTS_KEY!r}]", {str(i): [text] for i, text in enumerate(prompts)},
                        exhaustive=False)


def read_prompt_file(path: str | os.PathLike) -> list[str]:
    """The prompts of a text file: UTF-8 (a byte-order mark ignored), one prompt per non-blank line, stripped.
    InputError naming the file when it is missing, not UTF-8 (with the byte offset) or has no prompt."""
    source = Path(path)
    if not source.exists():
        raise InputError(f"prompts file {str(source)!r} does not exist; pass a UTF-8 text file with one prompt per "
                         "line")
    text = _read_text(source, "prompts file")
    prompts = [line.strip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    prompts = [prompt for prompt in prompts if prompt]
    if not prompts:
        raise InputError(f"prompts file {str(source)!r} has no prompts; put one prompt per line")
    return prompts
