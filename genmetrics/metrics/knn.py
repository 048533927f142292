"""Exact k-nearest-neighbour radii and ball membership of feature sets, tiled and error-bounded: the engine behind
precision/recall and density/coverage (``genmetrics.metrics.precision_recall``).

Interface
- ``knn_radii_sq(feats, ks)``: for each k, the squared distance (n,) of every row to its k-th nearest other row
  of the same set (a row's own zero distance does not count; duplicates of a row do).
- ``ball_membership(feats_a, feats_b, balls_of_a, balls_of_b)``: for ``Balls(k, strict)`` families around the rows
  of one set, which rows of the other set lie inside them (``Membership``: per query row, inside any ball; per
  ball, holds any query row; the number of inside pairs; optionally the pairs themselves). All families of both
  directions share one preparation and one pass over the cross tiles.

Exactness. Every squared distance is the canonical fp64 value D(x, y) = sum_t (x_t - y_t)^2 of the input values
(float32 input widens exactly): fp64 differences, squares and numpy's pairwise sum, as a brute-force evaluation
(``((x - y) ** 2).sum()`` in fp64) gives it. Every radius and every inside/outside decision equals the one of that
brute force on all pairs, whatever ``block_size``; ties are decided on exact equality.

Speed without giving up exactness (the steps of the code below):
1. Tiles. Both sets are centred on their common mean and augmented so that one float32 GEMM gives a tile
   h ~= D / 2: [x, |x|^2/2, 1] . [-y, 1, |y|^2/2] = |x - y|^2 / 2 (``_PreparedSet``, ``_TileBuffers``). Tiles are
   ``block_size`` x ``block_size``; memory never grows as n x m. Features too large for float32 are tiled in fp64.
2. Error bound. ``_TileErrorBound`` is a rigorous bound |2 h - D| <= c (|x|^2 + |y|^2) + eta (centred norms)
   covering every rounding: the GEMM, the inputs and norm column rounded to the tile dtype, the fp64 norms and
   the fp64 evaluation of D itself. A pair whose h lies farther than that from a threshold is decided from the
   tile; the few inside the band (border pairs) are recomputed exactly in fp64 (``_exact_sq_distances``).
3. Radii (``_exact_knn_radii_sq``). Each within-set pair is computed once (symmetric tiles, diagonal ones halved)
   and each row keeps its ``k + _CANDIDATE_MARGIN`` smallest h. When no dropped sample can come within the k-th
   smallest upper bound, the kept candidates hold every neighbour inside the radius and the radius is the k-th
   smallest of their exact D; where that check fails (a cluster within the bound), k exact zeros among the kept
   (duplicates) give radius 0 and other rows are rescanned against the whole set.
4. Membership (``_BallScan``). One pass over the cross tiles decides every (owner, query) pair of every family.
5. Duplicates. Exact distances of many pairs at once are computed once per distinct pair of row contents, so
   duplicated samples (ties) cost no more than distinct ones.

Conventions: ``strict`` balls hold a point when D < r^2, the others when D <= r^2. Density and coverage use
strict balls, as Naeem et al.'s reference code ``prdc.compute_prdc`` (parity, ties included); precision and
recall use ``<=``, as torch-fidelity's ``metric_prc.py``. The difference shows on ties: the k-th neighbour itself
lies on the boundary, and a row with k or more exact duplicates has radius 0, a strict ball that holds nothing.
"""
from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from genmetrics.errors import MetricError
from genmetrics.stats import as_features, check_same_dim

DEFAULT_BLOCK_SIZE = 2048  # rows per tile side: tiles are at most block_size x block_size
_CANDIDATE_MARGIN = 8  # candidates kept per row beyond the largest k
_CHUNK_ROWS = 1024  # rows per preparation chunk and pairs per exact-distance batch
_MIN_DIAGONAL_TILE = 256  # diagonal within-set tiles are halved down to this size
_RESCAN_BATCH_ROWS = 256  # rows rescanned together (their candidates are held at once)
_MAX_BORDER_PAIRS = 1 << 20  # border pairs held before they are resolved on exact distances
_DEDUP_MIN_PAIRS = 1 << 16  # from this many pairs on, exact distances are computed once per distinct row pair
_FLOAT32_MAX_NORM_SQ = 2.0 ** 100  # larger features are tiled in fp64, so that float32 cannot overflow
_MAX_ABS_VALUE = 2.0 ** 500  # larger feature values would overflow the fp64 squared distances


@dataclass(frozen=True)
class Balls:
    """A family of k-NN balls around every row of one set: the ball of row x_i has squared radius r_i^2 = D(x_i,
    k-th nearest other row). A row y of the other set is inside when D(x_i, y) < r_i^2 (``strict``) or <= r_i^2."""

    k: int
    strict: bool


@dataclass(frozen=True)
class Membership:
    """Which rows of the query set lie in which balls of the owner set, for one ``Balls`` family.

    ``radii_sq`` (n_owners,) fp64: the balls' squared radii; ``owner_hit`` (n_owners,) bool: the ball holds at
    least one query row; ``query_hit`` (n_queries,) bool: the row lies in at least one ball; ``inside_pairs``:
    the number of (owner, query) pairs with the query row inside the owner's ball; ``pairs``: those pairs as
    (owner (p,), query (p,)) int64 index arrays, only when recorded (else None).
    """

    balls: Balls
    radii_sq: np.ndarray
    owner_hit: np.ndarray
    query_hit: np.ndarray
    inside_pairs: int
    pairs: tuple[np.ndarray, np.ndarray] | None


Memberships = dict[Balls, Membership]  # one Membership per family of balls, in the order the families were given


def knn_radii_sq(feats: Any, ks: Sequence[int], *, block_size: int = DEFAULT_BLOCK_SIZE) -> dict[int, np.ndarray]:
    """Exact squared k-NN radii of ``feats`` (n, d): {k: (n,) fp64} for each distinct k in ``ks`` (1 <= k < n).

    Radius of row i for k: the k-th smallest D(x_i, x_j) over j != i (duplicates of x_i count, at distance 0).
    """
    ks = sorted(set(ks))
    _check_arguments(ks, block_size)
    if not ks:
        raise MetricError("ks must hold at least one k")
    x = as_features(feats, "feats", min_rows=1, keep_float32=True)
    _check_enough_rows(x, "feats", max(ks))
    (prepared,), bound = _prepare_sets(x)
    buffers = _TileBuffers(min(block_size, len(x)), prepared.augmented.shape[1], prepared.augmented.dtype)
    return _exact_knn_radii_sq(prepared, ks, bound, block_size, buffers)


def ball_membership(feats_a: Any, feats_b: Any, balls_of_a: Sequence[Balls] = (), balls_of_b: Sequence[Balls] = (),
                    *, block_size: int = DEFAULT_BLOCK_SIZE, record_pairs: bool = False,
                    names: tuple[str, str] = ("feats_a", "feats_b")) -> tuple[Memberships, Memberships]:
    """Membership of the rows of ``feats_b`` (m, d) in each family ``balls_of_a`` of balls around the rows of
    ``feats_a`` (n, d), and of the rows of ``feats_a`` in each family ``balls_of_b`` around ``feats_b``.

    Returns ({family: Membership} for ``balls_of_a``, the same for ``balls_of_b``). A set that owns balls needs
    more rows than its largest k. Radii are computed once per set for all its k, and one pass over the cross
    tiles serves every family; ``record_pairs`` keeps every inside pair (memory grows with their number).
    ``names`` name the two sets in error messages.
    """
    a, b = _validated_pair(feats_a, feats_b, balls_of_a, balls_of_b, block_size, names)
    (prepared_a, prepared_b), bound = _prepare_sets(a, b)
    buffers = _TileBuffers(min(block_size, max(len(a), len(b))), prepared_a.augmented.shape[1],
                           prepared_a.augmented.dtype)
    scans_a = _ball_scans(prepared_a, prepared_b, balls_of_a, bound, block_size, buffers, record_pairs)
    scans_b = _ball_scans(prepared_b, prepared_a, balls_of_b, bound, block_size, buffers, record_pairs)
    if scans_a or scans_b:
        _scan_cross_tiles(prepared_a, prepared_b, scans_a, scans_b, block_size, buffers)
    return ({balls: scan.result() for balls, scan in scans_a.items()},
            {balls: scan.result() for balls, scan in scans_b.items()})


def _check_arguments(ks: Sequence[int], block_size: int) -> None:
    """MetricError for a k below 1 or a block_size below 1."""
    for k in ks:
        if k < 1:
            raise MetricError(f"k must be >= 1, got {k}")
    if block_size < 1:
        raise MetricError(f"block_size must be >= 1, got {block_size}")


def _check_enough_rows(feats: np.ndarray, name: str, k: int) -> None:
    """A set with k-NN balls needs k other rows for each of its rows."""
    if len(feats) <= k:
        raise MetricError(f"{name} has {len(feats)} samples but k={k} needs at least k+1={k + 1}; "
                          "lower k or add samples")


def _validated_pair(feats_a: Any, feats_b: Any, balls_of_a: Sequence[Balls], balls_of_b: Sequence[Balls],
                    block_size: int, names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Both sets as finite (n, d) float32 or fp64 arrays (float32 stays float32, uncopied), after checking the
    k values and block_size; a set that owns balls must hold more rows than its largest k."""
    _check_arguments([balls.k for balls in [*balls_of_a, *balls_of_b]], block_size)
    a = as_features(feats_a, names[0], min_rows=1, keep_float32=True)
    b = as_features(feats_b, names[1], min_rows=1, keep_float32=True)
    check_same_dim(a, b, *names)
    for name, feats, balls in ((names[0], a, balls_of_a), (names[1], b, balls_of_b)):
        if balls:
            _check_enough_rows(feats, name, max(family.k for family in balls))
    return a, b


# --- Step 1 and 2: tiles and their error bound ------------------------------------------------------------------


@dataclass(frozen=True)
class _TileErrorBound:
    """|2 h - D| <= relative (n_x + n_y) + absolute for a tile value h of a pair with centred squared norms n_x,
    n_y (the constants c and eta of the module docstring)."""

    relative: float
    absolute: float

    @classmethod
    def for_tiles(cls, dtype: np.dtype, width: int, dim: int) -> _TileErrorBound:
        """Bound for tiles computed in ``dtype`` by a GEMM of inner ``width`` on ``dim``-dimensional features.

        GEMM terms with absolute values summing to <= (n_x + n_y) / 2, any summation order: 2 gamma_width; the
        centred inputs and the |x|^2/2 column rounded to ``dtype``: 7 u (8 u used); the fp64 norms, an fp64 step
        before that rounding, and D itself: (4 dim + 32) 2^-53. The factor 1.25 absorbs the fp64 arithmetic on
        bounds; the absolute term covers underflow (width terms, each losing at most half the smallest subnormal).
        """
        unit_roundoff = float(np.finfo(dtype).eps) / 2
        gamma = width * unit_roundoff / (1 - width * unit_roundoff)
        return cls(1.25 * (2 * gamma + 8 * unit_roundoff + (4 * dim + 32) * 2.0 ** -53), 2.0 ** -100)

    def half_width(self, norm_sq_x: np.ndarray | float, norm_sq_y: np.ndarray | float) -> np.ndarray:
        """Bound on |h - D / 2| (the broadcast shape of the two centred squared norms), fp64."""
        return (self.relative * (np.asarray(norm_sq_x) + norm_sq_y) + self.absolute) / 2


class _PreparedSet:
    """One feature set prepared for GEMM tiles.

    ``exact`` (n, d): the validated input (float32 or fp64), source of the canonical distances;
    ``augmented`` (n, p) torch: [x~, |x~|^2 / 2, 1, 0 ...], x~ = x - centre rounded to the tile dtype (``centre``
    (d,) is in that dtype, so float32 input is rounded once), p = d + 2 padded to a multiple of 16 (the left
    operand of a tile); ``centred_norm_sq`` (n,) fp64: |x~|^2.
    """

    def __init__(self, exact: np.ndarray, centre: np.ndarray, width: int) -> None:
        n, d = exact.shape
        self.exact = exact
        self.centred_norm_sq = np.empty(n)
        augmented = np.zeros((n, width), dtype=centre.dtype)
        for rows in _slices(n, _CHUNK_ROWS):
            centred = (exact[rows] - centre).astype(centre.dtype, copy=False)
            wide = centred.astype(np.float64)
            self.centred_norm_sq[rows] = np.einsum("ij,ij->i", wide, wide)
            augmented[rows, :d] = centred
            augmented[rows, d] = self.centred_norm_sq[rows] / 2
            augmented[rows, d + 1] = 1
        self.augmented = torch.from_numpy(augmented)

    def __len__(self) -> int:
        return len(self.exact)

    @functools.cached_property
    def content_ids(self) -> np.ndarray:
        """(n,) int64: equal ids for rows with the same bytes (duplicated samples), 0 .. distinct rows - 1."""
        rows = np.ascontiguousarray(self.exact)
        as_bytes = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()
        return np.unique(as_bytes, return_inverse=True)[1].astype(np.int64).ravel()


def _prepare_sets(*sets: np.ndarray) -> tuple[list[_PreparedSet], _TileErrorBound]:
    """The sets (n_i, d) prepared for tiles, centred on their common mean, and the error bound of their tiles."""
    largest = max(max(float(x.max()), -float(x.min())) for x in sets)
    if largest > _MAX_ABS_VALUE:
        raise MetricError(f"feature values up to {largest:.3g} overflow squared distances in fp64; "
                          "rescale the features")
    d = sets[0].shape[1]
    # float32 tiles unless a squared distance (at most d (2 largest)^2) could overflow float32.
    dtype = np.dtype(np.float32 if d * (2 * largest) ** 2 <= _FLOAT32_MAX_NORM_SQ else np.float64)
    # Centring on the common mean keeps the norms, and with them the error bound, small.
    total = sets[0].sum(axis=0, dtype=np.float64)
    for x in sets[1:]:
        total = total + x.sum(axis=0, dtype=np.float64)
    centre = (total / sum(len(x) for x in sets)).astype(dtype)
    width = -(-(d + 2) // 16) * 16
    return [_PreparedSet(x, centre, width) for x in sets], _TileErrorBound.for_tiles(dtype, width, d)


class _TileBuffers:
    """Buffers reused by every tile of a pass: allocating tiles of this size anew fragments the heap and
    inflates the resident memory."""

    def __init__(self, block_size: int, width: int, dtype: torch.dtype) -> None:
        self._right = torch.empty(block_size * width, dtype=dtype)
        self._tile = torch.empty(block_size * block_size, dtype=dtype)
        self._mask = np.empty(block_size * block_size, dtype=bool)

    def right_operand(self, prepared: _PreparedSet, rows: slice) -> torch.Tensor:
        """(b, p) [-x~, 1, |x~|^2 / 2, 0 ...] of ``rows``: augmented_i . right_j = |x~_i - x~_j|^2 / 2 up to
        rounding. Valid until the next call."""
        d = prepared.exact.shape[1]
        left = prepared.augmented[rows]
        out = torch.neg(left, out=self._right[:left.numel()].view(left.shape))
        out[:, d] = 1
        out[:, d + 1] = left[:, d]
        return out

    def product(self, left: torch.Tensor, right: torch.Tensor) -> np.ndarray:
        """Tile h = left (b, p) . right (c, p)^T ~= D / 2 as a (b, c) array, valid until the next call."""
        out = self._tile[:len(left) * len(right)].view(len(left), len(right))
        return torch.mm(left, right.T, out=out).numpy()

    def scratch_mask(self, shape: tuple[int, int]) -> np.ndarray:
        """A scratch boolean array of ``shape`` (at most block_size x block_size)."""
        return self._mask[:shape[0] * shape[1]].reshape(shape)


def _slices(n: int, size: int) -> Iterator[slice]:
    """Consecutive slices of at most ``size`` covering range(n) (the last one shorter when size does not divide n)."""
    return (slice(i, min(i + size, n)) for i in range(0, n, size))


def _entries_within_limits(tile: np.ndarray, limits: np.ndarray, owner_axis: int, scratch: np.ndarray,
                           compare: np.ufunc = np.less_equal) -> tuple[np.ndarray, np.ndarray]:
    """(owner, other) indices of the entries of ``tile`` (rows, cols) that are <= their owner's limit (or
    ``compare`` to it), the owners lying along ``owner_axis`` (0: rows, 1: columns); ``scratch``: a boolean
    array shaped like the tile."""
    per_owner = limits[:, None] if owner_axis == 0 else limits[None, :]
    flat = np.flatnonzero(compare(tile, per_owner, out=scratch))
    rows, cols = np.divmod(flat, tile.shape[1])
    return (rows, cols) if owner_axis == 0 else (cols, rows)


def _round_outward(values: np.ndarray, dtype: np.dtype, up: bool) -> np.ndarray:
    """fp64 ``values`` rounded to ``dtype`` toward +inf (``up``) or -inf, so that comparing tile values with them
    never errs on the unsafe side."""
    out = values.astype(dtype)
    off = out < values if up else out > values
    out[off] = np.nextafter(out[off], np.inf if up else -np.inf)
    return out


def _exact_sq_distances(x: _PreparedSet, y: _PreparedSet, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Canonical squared distances (p,) between x.exact[rows] and y.exact[cols] (index arrays (p,)): sums of
    squared fp64 differences.

    From _DEDUP_MIN_PAIRS pairs on, each distinct pair of row contents is computed once and shared by its copies
    (all-equal or duplicated samples would otherwise cost p * d each)."""
    inverse = None
    if len(rows) >= _DEDUP_MIN_PAIRS:
        # One key per (content of row, content of col): copies of a pair share a key.
        keys = x.content_ids[rows] * (int(y.content_ids.max()) + 1) + y.content_ids[cols]
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        rows, cols = rows[first], cols[first]
    out = np.empty(len(rows))
    for part in _slices(len(rows), _CHUNK_ROWS):
        diff = np.subtract(x.exact[rows[part]], y.exact[cols[part]], dtype=np.float64)
        np.square(diff, out=diff)
        diff.sum(axis=1, out=out[part])
    return out if inverse is None else out[inverse.ravel()]


# --- Step 3: exact k-NN radii -----------------------------------------------------------------------------------


def _within_set_tiles(n: int, size: int) -> Iterator[tuple[slice, slice]]:
    """Tiles (rows, cols), rows.start <= cols.start, holding every unordered pair of range(n) once: first the
    diagonal blocks of ``size``, halved (``_diagonal_block_tiles``), then the off-diagonal tiles grouped by cols."""
    for block in _slices(n, size):
        yield from _diagonal_block_tiles(block)
    for cols in _slices(n, size):
        yield from ((rows, cols) for rows in _slices(cols.start, size))


def _diagonal_block_tiles(block: slice) -> Iterator[tuple[slice, slice]]:
    """Tiles holding every unordered pair of ``block`` once. A diagonal tile computes its pairs twice, so the
    block is halved down to _MIN_DIAGONAL_TILE (n * size / 2 pairs computed twice become n * _MIN_DIAGONAL_TILE / 2),
    and each row's first tile is a small one, cheap to take candidates from."""
    if block.stop - block.start <= _MIN_DIAGONAL_TILE:
        yield block, block
        return
    middle = (block.start + block.stop + 1) // 2
    first, second = slice(block.start, middle), slice(middle, block.stop)
    yield from _diagonal_block_tiles(first)
    yield from _diagonal_block_tiles(second)
    yield first, second


def _exact_knn_radii_sq(prepared: _PreparedSet, ks: list[int], bound: _TileErrorBound, block_size: int,
                        buffers: _TileBuffers) -> dict[int, np.ndarray]:
    """Exact squared k-NN radii {k: (n,)} of one set for each k in the sorted ``ks`` (all < n)."""
    n = len(prepared)
    keep = min(max(ks) + _CANDIDATE_MARGIN, n - 1)
    kept_h = np.full((n, keep), np.inf, dtype=prepared.augmented.numpy().dtype)
    kept_j = np.zeros((n, keep), dtype=np.int64)
    block = -1
    for rows, cols in _within_set_tiles(n, block_size):
        if cols.start // block_size != block:  # a new column block: its sub-blocks slice one right operand
            block = cols.start // block_size
            right = buffers.right_operand(prepared, slice(block * block_size, min(n, (block + 1) * block_size)))
        offset = block * block_size
        tile = buffers.product(prepared.augmented[rows], right[cols.start - offset:cols.stop - offset])
        if rows == cols:
            np.fill_diagonal(tile, np.inf)  # a row is not its own neighbour
        # A within-set tile serves both its rows and (off the diagonal) its columns: each pair is computed once.
        _merge_tile_into_candidates(kept_h[rows], kept_j[rows], tile, 0, cols.start, buffers.scratch_mask(tile.shape))
        if rows != cols:
            _merge_tile_into_candidates(kept_h[cols], kept_j[cols], tile, 1, rows.start,
                                        buffers.scratch_mask(tile.shape))
    return _radii_from_candidates(prepared, ks, kept_h, kept_j, bound, block_size, buffers)


def _merge_tile_into_candidates(kept_h: np.ndarray, kept_j: np.ndarray, tile: np.ndarray, owner_axis: int,
                                first_other: int, scratch: np.ndarray) -> None:
    """Merge ``tile`` into its owners' smallest tile values ``kept_h`` (b, keep) and their indices ``kept_j``,
    in place.

    The owners lie along ``owner_axis`` of the tile (0: rows, 1: columns); the other axis holds samples
    first_other, first_other + 1, ...; ``scratch``: a boolean array shaped like the tile.
    """
    keep = kept_h.shape[1]
    worst = kept_h.max(axis=1)
    # Entries equal to a full row's largest kept value need not enter (ties would all enter otherwise): every
    # dropped entry stays >= the largest kept one, which only falls.
    compare = np.less
    if np.isinf(worst).all() and tile.shape[1 - owner_axis] >= keep:
        # The owners' first tile (a small diagonal one): its keep-th smallest bounds theirs.
        worst = np.partition(tile if owner_axis == 0 else tile.T, keep - 1, axis=1)[:, keep - 1]
        compare = np.less_equal
    owner, other = _entries_within_limits(tile, worst, owner_axis, scratch, compare)
    if len(owner) == 0:
        return
    # Group the entering entries by owner (a stable, mostly radix, sort) and lay them out one row per owner.
    order = np.argsort(owner.astype(np.min_scalar_type(len(kept_h))), kind="stable")
    owner, other = owner[order], other[order]
    counts = np.bincount(owner, minlength=len(kept_h))
    slot = np.arange(len(owner)) - (np.cumsum(counts) - counts)[owner]
    new_h = np.full((len(kept_h), counts.max()), np.inf, dtype=tile.dtype)
    new_j = np.zeros(new_h.shape, dtype=np.int64)
    new_h[owner, slot] = tile[(owner, other) if owner_axis == 0 else (other, owner)]
    new_j[owner, slot] = other + first_other
    # Keep the ``keep`` smallest of old and new per owner.
    both_h = np.concatenate([kept_h, new_h], axis=1)
    at = np.argpartition(both_h, keep - 1, axis=1)[:, :keep]
    both_j = np.concatenate([kept_j, new_j], axis=1)
    kept_j[:] = np.take_along_axis(both_j, at, axis=1)
    kept_h[:] = np.take_along_axis(both_h, at, axis=1)


def _classify_candidates(prepared: _PreparedSet, ks: list[int], kept_h: np.ndarray, kept_j: np.ndarray,
                         bound: _TileErrorBound) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray], np.ndarray,
                                                          np.ndarray]:
    """Which kept candidates (n, keep) decide each radius, from their bounds [h - err, h + err] on D / 2.

    Returns (needs_exact {k: (n, keep) bool}, rank {k: (n,)}, limit (n,), complete (n,) bool): on a complete row
    the k-th radius is the rank[k]-th smallest exact D among the candidates that need it; ``limit`` is an upper
    bound of the row's largest radius / 2.
    """
    n, keep = kept_h.shape
    h = kept_h.astype(np.float64)
    err = bound.half_width(prepared.centred_norm_sq[:, None], prepared.centred_norm_sq[kept_j])
    lower, upper = h - err, h + err
    needs_exact, rank = {}, {}
    for k in ks:
        # The radius / 2 lies between the k-th smallest lower and upper bounds. Candidates whose upper bound is
        # below the k-th lower one are surely nearer: only counted. Those whose lower bound reaches the k-th upper
        # one may be the k-th neighbour: their exact D decide (usually a single one).
        surely_nearer = upper < np.partition(lower, k - 1, axis=1)[:, k - 1, None]
        needs_exact[k] = (lower <= np.partition(upper, k - 1, axis=1)[:, k - 1, None]) & ~surely_nearer
        rank[k] = k - surely_nearer.sum(axis=1)
    limit = np.partition(upper, max(ks) - 1, axis=1)[:, max(ks) - 1]
    # A dropped sample has h >= the row's largest kept h: when even its lowest possible D / 2 exceeds the limit,
    # the kept candidates hold every neighbour within the radii (the row is complete).
    dropped_lower = (h.max(axis=1) - bound.half_width(prepared.centred_norm_sq, prepared.centred_norm_sq.max())
                     if keep < n - 1 else np.full(n, np.inf))
    return needs_exact, rank, limit, limit < dropped_lower


def _radii_from_candidates(prepared: _PreparedSet, ks: list[int], kept_h: np.ndarray, kept_j: np.ndarray,
                           bound: _TileErrorBound, block_size: int, buffers: _TileBuffers) -> dict[int, np.ndarray]:
    """Exact radii {k: (n,)} from each row's kept smallest tile values ``kept_h`` (n, keep) and their columns
    ``kept_j``.

    Complete rows (``_classify_candidates``) take the radius from the exact D of the few candidates that need it.
    An incomplete row (a cluster within the error bound) gets exact D for all its kept candidates: k exact zeros
    (duplicates) make its radius 0, else it is rescanned against the whole set.
    """
    n = len(kept_h)
    needs_exact, rank, limit, complete = _classify_candidates(prepared, ks, kept_h, kept_j, bound)
    # Exact D of the (row, slot) candidates that decide a radius of a complete row, and of every kept candidate
    # of an incomplete row.
    rows, slots = np.nonzero(np.logical_or.reduce(list(needs_exact.values())) | ~complete[:, None])
    dist = _exact_sq_distances(prepared, prepared, rows, kept_j[rows, slots])
    zeros = np.bincount(rows[dist == 0], minlength=n)
    # Incomplete rows with fewer exact zeros than the largest k need the whole set.
    rescan = np.flatnonzero(~complete & (zeros < max(ks)))
    rescanned = _rescan_rows(prepared, rescan, limit[rescan], ks, bound, block_size, buffers)
    radii = {}
    for k in ks:
        # Decided from the kept candidates: complete rows (rank[k]-th among those that need exact D) and rows
        # with k zeros (radius 0, the k-th of all their kept exact D).
        done = np.flatnonzero(complete | (zeros >= k))
        use = np.where(complete[rows], needs_exact[k][rows, slots], zeros[rows] >= k)
        radii[k] = np.empty(n)
        radii[k][done] = _kth_smallest_per_row(rows[use], dist[use], np.where(complete, rank[k], k)[done], done)
        radii[k][rescan] = rescanned[k]
    return radii


def _rescan_rows(prepared: _PreparedSet, rows: np.ndarray, limit: np.ndarray, ks: list[int],
                 bound: _TileErrorBound, block_size: int, buffers: _TileBuffers) -> dict[int, np.ndarray]:
    """Exact radii {k: (len(rows),)} of the sorted ``rows`` from all their samples whose lower bound of D / 2
    is <= the row's ``limit`` (an upper bound of its largest radius / 2)."""
    radii = {k: np.empty(len(rows)) for k in ks}
    for part in _slices(len(rows), min(_RESCAN_BATCH_ROWS, block_size)):
        owners = rows[part]
        left = prepared.augmented[torch.from_numpy(owners)]
        found_rows, found_cols = [], []
        for cols in _slices(len(prepared), block_size):
            h = buffers.product(left, buffers.right_operand(prepared, cols)).astype(np.float64)
            lower = h - bound.half_width(prepared.centred_norm_sq[owners, None], prepared.centred_norm_sq[None, cols])
            r, c = np.nonzero(lower <= limit[part, None])
            r, c = owners[r], c + cols.start
            found_rows.append(r[r != c])  # a row is not its own neighbour
            found_cols.append(c[r != c])
        r, c = np.concatenate(found_rows), np.concatenate(found_cols)
        dist = _exact_sq_distances(prepared, prepared, r, c)
        for k in ks:
            radii[k][part] = _kth_smallest_per_row(r, dist, np.full(len(owners), k), owners)
    return radii


def _kth_smallest_per_row(rows: np.ndarray, values: np.ndarray, kth: np.ndarray, owners: np.ndarray) -> np.ndarray:
    """For each of the sorted row indices ``owners``, the kth-th smallest of ``values`` (p,) where ``rows`` (p,)
    equals it (each owner has at least kth)."""
    order = np.lexsort((values, rows))
    starts = np.searchsorted(rows[order], owners)
    return values[order][starts + kth - 1]


# --- Step 4: ball membership ------------------------------------------------------------------------------------


class _BallScan:
    """Membership of the ``queries`` samples in one family of k-NN balls of the ``owners`` samples, tile by tile:
    inside when D <= radius^2, or D < radius^2 for strict balls.

    Pairs farther than the error bound from a ball's boundary are decided from the tile; the rest are kept as
    border pairs and decided on exact distances by ``resolve_border_pairs``.
    """

    def __init__(self, owners: _PreparedSet, queries: _PreparedSet, balls: Balls, radii_sq: np.ndarray,
                 bound: _TileErrorBound, record: bool) -> None:
        self.owners, self.queries, self.balls, self.radii_sq, self.bound = owners, queries, balls, radii_sq, bound
        # The only place the convention enters: strict (density/coverage, prdc) or not (precision/recall).
        self.inside_radius = np.less if balls.strict else np.less_equal
        self.owner_hit = np.zeros(len(owners), dtype=bool)
        self.query_hit = np.zeros(len(queries), dtype=bool)
        self.inside_pairs = 0
        self.pairs: list[tuple[np.ndarray, np.ndarray]] | None = [] if record else None
        self._border: list[tuple[np.ndarray, np.ndarray]] = []
        self._pending = 0

    def scan_tile(self, tile: np.ndarray, owners: slice, queries: slice, owner_axis: int,
                  buffers: _TileBuffers) -> None:
        """Decide the pairs of ``tile`` h ~= D / 2 whose owners lie along ``owner_axis`` (0: rows, 1: columns),
        keeping those within the error bound of the boundary as border pairs."""
        half_radius = self.radii_sq[owners] / 2
        # |h - D / 2| <= err for every pair of the owner's row of the tile (the largest query norm bounds them all).
        err = self.bound.half_width(self.owners.centred_norm_sq[owners], self.queries.centred_norm_sq[queries].max())
        err += half_radius * 2.0 ** -50  # the fp64 rounding of half_radius -/+ err
        # h above half_radius + err (rounded up) puts D / 2 >= h - err beyond the radius: outside, skipped.
        limit = _round_outward(half_radius + err, tile.dtype, up=True)
        if self.balls.strict:
            limit[half_radius == 0] = -np.inf  # no distance is < 0: a strict ball of radius 0 holds nothing
        owner, query = _entries_within_limits(tile, limit, owner_axis, buffers.scratch_mask(tile.shape))
        # D / 2 <= h + err, so h below (or, not strict, at) half_radius - err rounded down puts D inside the radius.
        sure = self.inside_radius(tile[(owner, query) if owner_axis == 0 else (query, owner)],
                                  _round_outward(half_radius - err, tile.dtype, up=False)[owner])
        owner, query = owner + owners.start, query + queries.start
        self._mark(owner[sure], query[sure])
        # The rest lie within the error bound of the boundary: decided later on exact distances.
        self._border.append((owner[~sure], query[~sure]))
        self._pending += len(owner) - int(sure.sum())
        if self._pending > _MAX_BORDER_PAIRS:
            self.resolve_border_pairs()

    def resolve_border_pairs(self) -> None:
        """Decide the border pairs held so far on exact distances, with the family's ``<`` or ``<=``."""
        if not self._border:
            return
        owner = np.concatenate([pair[0] for pair in self._border])
        query = np.concatenate([pair[1] for pair in self._border])
        inside = self.inside_radius(_exact_sq_distances(self.owners, self.queries, owner, query), self.radii_sq[owner])
        self._mark(owner[inside], query[inside])
        self._border, self._pending = [], 0

    def _mark(self, owner: np.ndarray, query: np.ndarray) -> None:
        """Record the (owner (p,), query (p,)) pairs as inside; each pair is marked once, by the tile or by its
        exact distance."""
        self.owner_hit[owner] = True
        self.query_hit[query] = True
        self.inside_pairs += len(owner)
        if self.pairs is not None:
            self.pairs.append((owner.astype(np.int64), query.astype(np.int64)))

    def result(self) -> Membership:
        """The resolved membership (call after every tile was scanned)."""
        self.resolve_border_pairs()
        pairs = None
        if self.pairs is not None:
            pairs = ((np.concatenate([p[0] for p in self.pairs]), np.concatenate([p[1] for p in self.pairs]))
                     if self.pairs else (np.zeros(0, np.int64), np.zeros(0, np.int64)))
        return Membership(balls=self.balls, radii_sq=self.radii_sq, owner_hit=self.owner_hit,
                          query_hit=self.query_hit, inside_pairs=self.inside_pairs, pairs=pairs)


def _ball_scans(owners: _PreparedSet, queries: _PreparedSet, families: Sequence[Balls], bound: _TileErrorBound,
                block_size: int, buffers: _TileBuffers, record: bool) -> dict[Balls, _BallScan]:
    """A scan per distinct family of balls around ``owners``, with radii computed once for all their k."""
    if not families:
        return {}
    radii = _exact_knn_radii_sq(owners, sorted({balls.k for balls in families}), bound, block_size, buffers)
    return {balls: _BallScan(owners, queries, balls, radii[balls.k], bound, record) for balls in families}


def _scan_cross_tiles(prepared_a: _PreparedSet, prepared_b: _PreparedSet, scans_a: dict[Balls, _BallScan],
                      scans_b: dict[Balls, _BallScan], block_size: int, buffers: _TileBuffers) -> None:
    """One pass over the tiles of all (a, b) pairs (rows of a, columns of b) feeding every scan: those of balls
    around a own the tile's rows, those around b its columns."""
    for cols in _slices(len(prepared_b), block_size):
        right = buffers.right_operand(prepared_b, cols)
        for rows in _slices(len(prepared_a), block_size):
            tile = buffers.product(prepared_a.augmented[rows], right)
            for scan in scans_a.values():
                scan.scan_tile(tile, rows, cols, 0, buffers)
            for scan in scans_b.values():
                scan.scan_tile(tile, cols, rows, 1, buffers)
