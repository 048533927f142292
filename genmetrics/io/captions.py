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
both name ``cat.png``. Names are stripped, ``\\`` becomes ``/`` and a leading ``./`` is dropped.

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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from genmetrics.errors import InputError

FILE_COLUMNS = ("file", "filename", "file_name", "image", "image_file", "path", "name")
CAPTION_COLUMNS = ("caption", "text", "prompt")
FORMATS = ".csv, .tsv, .jsonl, or a folder of .txt files"
_SHOWN = 5  # names listed in an error message


@dataclass(frozen=True)
class CaptionTable:
    """Captions by image name, as read from ``origin``; ``captions[name]`` holds one or more strings."""

    origin: str
    captions: dict[str, list[str]]


def first_names(names: Sequence[str]) -> str:
    """'a', 'b', 'c' for at most the first five names, then ', ... (N in all)' when there are more."""
    shown = ", ".join(repr(name) for name in names[:_SHOWN])
    return shown + (f", ... ({len(names)} in all)" if len(names) > _SHOWN else "")


def _clean_name(name: str) -> str:
    name = name.strip().replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    return name


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"captions file {str(path)!r} is not UTF-8 text (byte {exc.start}); save it as UTF-8"
                         ) from None
    except OSError as exc:
        raise InputError(f"cannot read captions file {str(path)!r}: {exc.strerror or exc}") from None


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


def match_captions(names: Sequence[str], table: CaptionTable, images: str) -> list[list[str]]:
    """The captions of each image name (in order), from ``table``; ``images`` describes the source in messages.

    Images without a caption and captions that name no image are InputErrors listing the first few.
    """
    used: set[str] = set()
    matched: list[list[str]] = []
    missing: list[str] = []
    for name in names:
        key = next((k for k in (name, posixpath.splitext(name)[0]) if k in table.captions), None)
        if key is None:
            missing.append(name)
        else:
            used.add(key)
            matched.append(table.captions[key])
    if missing:
        raise InputError(f"{len(missing)} image(s) in {images!r} have no caption in {table.origin!r}: "
                         f"{first_names(missing)}; add their captions or remove the images")
    unused = [key for key in table.captions if key not in used]
    if unused:
        raise InputError(f"{len(unused)} caption(s) in {table.origin!r} name no image in {images!r}: "
                         f"{first_names(unused)}; fix the file names (relative to the image folder) or remove "
                         "those captions")
    return matched


def as_caption_table(captions: Any, names: Sequence[str], what: str, *, multiple: bool = False) -> CaptionTable:
    """Captions given to the Python API: a path (read with ``read_captions``), a mapping name -> caption(s), or
    a sequence of captions (or, with ``multiple``, of lists of captions) in the images' order."""
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
