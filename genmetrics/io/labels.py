"""Class labels of images (for per-class metrics such as per-class Vendi): a sequence of integers in the source's
order, a mapping image name -> integer, or a ``.csv`` / ``.tsv`` file whose header names a file column (one of the
captions' ``FILE_COLUMNS``) and a label column (``label`` or ``class``), or without a header two columns, file then
label. Names match as captions do: as given, or without the image's extension."""
from __future__ import annotations

import csv
import io
import os
import posixpath
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from genmetrics.errors import InputError
from genmetrics.io.captions import FILE_COLUMNS, first_names

LABEL_COLUMNS = ("label", "class", "class_label", "y")


def _integer(value: Any, where: str) -> int:
    try:
        number = float(str(value).strip())
    except ValueError:
        number = float("nan")
    if not number.is_integer():
        raise InputError(f"labels {where}: {value!r} is not an integer class label")
    return int(number)


def _file_rows(path: Path) -> dict[str, int]:
    """Image name -> label from a CSV/TSV file."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read labels file {str(path)!r} as UTF-8 text: {exc}") from None
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    rows = [row for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter) if any(c.strip() for c in row)]
    if not rows:
        raise InputError(f"labels file {str(path)!r} holds no labels")
    header = [cell.strip().lower() for cell in rows[0]]
    columns = (next((header.index(c) for c in FILE_COLUMNS if c in header), None),
               next((header.index(c) for c in LABEL_COLUMNS if c in header), None))
    if None in columns:
        if len(header) != 2:
            raise InputError(f"labels file {str(path)!r}: the first row {rows[0]!r} names no file and label columns "
                             f"({'/'.join(FILE_COLUMNS)}, {'/'.join(LABEL_COLUMNS)}); add such a header")
        columns = (0, 1)
    else:
        rows = rows[1:]
    found: dict[str, int] = {}
    for row in rows:
        if len(row) <= max(columns):
            raise InputError(f"labels file {str(path)!r}: the row {row!r} has no label column")
        name = row[columns[0]].strip().replace("\\", "/").removeprefix("./")
        found[name] = _integer(row[columns[1]], f"{str(path)!r}, row of {name!r}")
    return found


def read_labels(labels: Any, names: Sequence[str], description: str) -> np.ndarray:
    """The label (N,) int64 of each of the images ``names`` of source ``description``; InputError for an image
    without a label, a label naming no image, a length mismatch or a non-integer."""
    if isinstance(labels, (str, os.PathLike)):
        if not Path(labels).is_file():
            raise InputError(f"labels file {str(labels)!r} does not exist; pass a CSV/TSV file (file,label)")
        labels = _file_rows(Path(labels))
    if not isinstance(labels, Mapping):
        values = list(labels) if isinstance(labels, (Sequence, np.ndarray)) else None
        if values is None or len(values) != len(names):
            raise InputError(f"labels hold {'?' if values is None else len(values)} entries for the {len(names)} "
                             f"images of {description!r}; give one integer per image in their order, a mapping "
                             "name -> label or a CSV file")
        return np.array([_integer(value, f"entry {i}") for i, value in enumerate(values)], np.int64)
    table = {str(name): _integer(value, repr(name)) for name, value in labels.items()}
    keys = [next((k for k in (name, posixpath.splitext(name)[0]) if k in table), None) for name in names]
    missing = [name for name, key in zip(names, keys) if key is None]
    if missing:
        raise InputError(f"{len(missing)} image(s) of {description!r} have no label: {first_names(missing)}")
    unused = sorted(set(table) - set(keys))
    if unused:
        raise InputError(f"{len(unused)} label(s) name no image of {description!r}: {first_names(unused)}")
    return np.array([table[key] for key in keys], np.int64)
