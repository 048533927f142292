"""What a run returns: ``Result`` (metric values) with its ``Provenance`` (everything needed to reproduce them).

``Provenance`` is typed; ``to_dict()`` gives the JSON object of ``--json`` (keys stable across releases), and it
reads like that dict too (``result.provenance["extractor"]``) for scripts written against earlier releases.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from genmetrics.config import ExtractorSpec
from genmetrics.io.images import printable

_SIDE_KEYS = ("name", "stats_file", "source", "content_hash", "n_skipped", "skipped")


def printable_tree(value: Any) -> Any:
    """``value`` (nested dicts, lists, strings) with every string :func:`printable`: non-UTF-8 file names would
    otherwise fail to print or to be written as UTF-8."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {key: printable_tree(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(printable_tree(item) for item in value)
    return value


@dataclass(frozen=True)
class SideRecord:
    """One side of a run: N, and where its images or statistics came from (None where it does not apply:
    ``name`` for a shipped reference, ``stats_file`` for a stats file, ``skipped`` the first 10 skipped files)."""

    n: int
    name: str | None = None
    stats_file: str | None = None
    source: str | None = None
    content_hash: str | None = None
    n_skipped: int | None = None
    skipped: list[str] | None = None

    @classmethod
    def of(cls, n: int, meta: Mapping[str, Any]) -> SideRecord:
        """The record of ``n`` samples from a stats/extraction ``meta`` dict."""
        return cls(n, **{key: printable_tree(meta.get(key)) for key in _SIDE_KEYS})

    @property
    def origin(self) -> str:
        """The shipped name, stats file or source, for one-line reports."""
        return self.name or self.stats_file or self.source or "(unknown)"

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, **{key: getattr(self, key) for key in _SIDE_KEYS if getattr(self, key) is not None}}


@dataclass(frozen=True)
class Provenance(Mapping):
    """Everything a number depends on.

    Attributes:
        extractor: the ``ExtractorSpec`` (name, weights sha256, resize, image size, dim, precision).
        weights_file: the weights file the extractor loaded.
        metrics: the metrics asked for, in order.
        seed: the run's seed.
        sides: role ("generated", "reference"; compare: "baseline", "candidate", "reference") -> SideRecord.
        settings: the metrics' settings (``kid``, ``pr_k``, ``dc_k``, ``is_splits``, ``is_order``, ``cmmd``).
        versions: package versions (``genmetrics.versions.versions()``).
        warnings: what a reader must know about these numbers.
        world_size: processes of a torchrun extraction (score only).
        bootstrap: compare's resampling settings.
        clip_score: captions, w, prefix and truncation of CLIPScore; clip: the CLIP model's record.
        notes: where the sides came from beyond their records (``reference_kind``: "adm-batch" and
            ``reference_keys_used``; ``reference_trusted_without_metadata``; ``generated_keys_ignored``).
    """

    extractor: ExtractorSpec
    weights_file: str
    metrics: tuple[str, ...]
    seed: int
    sides: Mapping[str, SideRecord]
    settings: Mapping[str, Any] = field(default_factory=dict)
    versions: Mapping[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    world_size: int | None = None
    bootstrap: Mapping[str, Any] | None = None
    clip_score: Mapping[str, Any] | None = None
    clip: Mapping[str, Any] | None = None
    notes: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "warnings", tuple(printable(warning) for warning in self.warnings))

    def side(self, role: str) -> SideRecord | None:
        return self.sides.get(role)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object: extractor, weights_file, metrics, seed, [world_size], [bootstrap], the settings, one
        object per side, [clip_score, clip], versions, warnings (entries that do not apply are absent)."""
        found = {"extractor": self.extractor.to_dict(), "weights_file": self.weights_file,
                 "metrics": list(self.metrics), "seed": self.seed, "world_size": self.world_size,
                 "bootstrap": self.bootstrap, **self.settings,
                 **{role: record.to_dict() for role, record in self.sides.items()},
                 "clip_score": self.clip_score, "clip": self.clip, **self.notes, "versions": dict(self.versions),
                 "warnings": list(self.warnings)}
        return printable_tree({key: value for key, value in found.items() if value is not None})

    # Read-only mapping over to_dict(), for scripts that index the provenance as a dict.
    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())


@dataclass
class Result:
    """Metric values and everything needed to reproduce them.

    Attributes:
        metrics: output key (``fid``, ``kid_mean``, ...) -> value, finite.
        provenance: the ``Provenance`` of the values.
        per_sample: clip_score's rows {file, caption, score[, ref_score]} and/or realism's {file, realism}.
    """

    metrics: dict[str, float]
    provenance: Provenance
    per_sample: list[dict[str, Any]] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        return list(self.provenance.warnings)

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` object: {"metrics": {...}, "provenance": {...}}."""
        return {"metrics": self.metrics, "provenance": self.provenance.to_dict()}
