"""k-NN manifold metrics: precision/recall (Kynkäänniemi et al. 2019), density/coverage (Naeem et al. 2020).

Definitions. The ball of a sample has squared radius = squared distance to its k-th nearest other sample
of its own set (torch-fidelity's ``kthvalue(k + 1)`` over a row holding the zero self-distance). For precision
and recall a point is inside a ball when its squared distance is ``<=`` that radius, as in torch-fidelity's
``metric_prc.py`` (where features_1 = generated, features_2 = real); for density and coverage when it is
``<`` the radius, as in Naeem et al.'s reference code (``prdc.compute_prdc``), so a point on a ball's boundary
counts for precision but not for density: two identical sets of distinct points have density 1, and samples
with k or more exact duplicates have radius 0 and hold no point for density/coverage. Every squared distance is
the canonical fp64 value D(x, y) = sum_t (x_t - y_t)^2 evaluated from the input values (float32 input widens
exactly): fp64 differences, squares and numpy's pairwise sum. Every radius and decision equals the one a brute-force
evaluation of D on all pairs gives, whatever ``block_size``.

Speed without giving up exactness. Tiles of h ~= D/2 come from one float32 GEMM each, on copies centred on
the common mean and augmented so that [x, |x|^2/2, 1] . [-y, 1, |y|^2/2] = |x - y|^2 / 2. ``_ErrorBound``
is a rigorous bound |2 h - D| <= c (|x|^2 + |y|^2) + eta (centred float32 norms) covering every rounding:
the GEMM of width p (any summation order: 2 gamma_p), the centred inputs and the norm column rounded to
float32, the fp64 norms and the fp64 evaluation of D itself (features too large for float32 are tiled in
fp64 with the same bound in fp64's unit). A pair whose h lies outside that band around a threshold is
decided from the tile; the few inside it (border pairs) are recomputed exactly in fp64. Radii: each row
keeps its ``k + _MARGIN`` smallest h with their indices; when no dropped sample can come within the k-th
smallest upper bound, the kept candidates whose lower bound reaches it hold every neighbour inside the
radius, and the k-th smallest of their exact D is the radius; where that check fails (clusters within
the bound), k exact zeros among the kept (duplicates) give radius 0 and other rows are rescanned. Exact
distances of many pairs at once are computed once per distinct pair of row contents, so duplicated samples
(ties) cost no more than distinct ones. Each
within-set pair is computed once (symmetric tiles, diagonal ones halved) and one pass over the cross
tiles serves precision, recall, density and coverage (``manifold_metrics`` shares it between them).

Memory: the validated inputs (float32 stays float32), one augmented float32 copy of each set and
``block_size`` x ``block_size`` tiles; never n x m. Fractions are exact counts / n; torch-fidelity returns
the same fraction rounded to float32.
"""
from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from genmetrics.errors import MetricError
from genmetrics.stats import as_features, check_same_dim

DEFAULT_BLOCK_SIZE = 2048
_MARGIN = 8  # candidates kept per row beyond the largest k
_CHUNK = 1024  # rows per preparation chunk and pairs per exact recomputation batch
_MIN_DIAGONAL = 256  # diagonal within-set tiles are halved down to this size
_RESCAN_ROWS = 256  # rows rescanned together (their candidates are held at once)
_MAX_BORDER = 1 << 20  # border pairs held before they are resolved
_DEDUP_PAIRS = 1 << 16  # exact distances of at least this many pairs are computed once per distinct row pair
_FLOAT32_MAX_NORM_SQ = 2.0 ** 100  # larger features are tiled in fp64, so that float32 cannot overflow
_MAX_ABS = 2.0 ** 500  # larger feature values would overflow the fp64 squared distances


@dataclass(frozen=True)
class ManifoldMetrics:
    """Precision, recall, density and coverage of a generated set against a reference set."""

    precision: float
    recall: float
    density: float
    coverage: float


@dataclass(frozen=True)
class _ErrorBound:
    """|2 h - D| <= c (n_x + n_y) + eta for a tile value h of a pair with centred squared norms n_x, n_y."""

    c: float
    eta: float

    @classmethod
    def for_tiles(cls, dtype: np.dtype, width: int, dim: int) -> _ErrorBound:
        """Bound for tiles computed in ``dtype`` by a GEMM of inner ``width`` on ``dim``-dimensional features.

        GEMM terms with absolute values summing to <= (n_x + n_y) / 2, any order: 2 gamma_width; the
        centred inputs and the |x|^2/2 column rounded to ``dtype``: 7 u; the fp64 norms, an fp64 step before
        that rounding, and D itself: (4 dim + 32) 2^-53.
        The factor 1.25 absorbs the fp64 arithmetic on bounds; eta covers underflow (width terms, each
        losing at most half the smallest subnormal).
        """
        u = float(np.finfo(dtype).eps) / 2
        gamma = width * u / (1 - width * u)
        return cls(1.25 * (2 * gamma + 8 * u + (4 * dim + 32) * 2.0 ** -53), 2.0 ** -100)

    def half(self, n_x: np.ndarray | float, n_y: np.ndarray | float) -> np.ndarray:
        """Bound on |h - D / 2| (broadcast shape of n_x and n_y), fp64."""
        return (self.c * (np.asarray(n_x) + n_y) + self.eta) / 2


class _Tiles:
    """One feature set prepared for GEMM tiles.

    ``exact`` (n, d): the validated input (float32 or fp64), source of the canonical distances;
    ``left`` (n, p): [x~, |x~|^2 / 2, 1, 0 ...], x~ = x - centre rounded to the tile dtype (``centre`` (d,)
    is in that dtype, so float32 input is rounded once), p = d + 2 padded to a multiple of 16;
    ``norm_sq`` (n,) fp64: |x~|^2.
    """

    def __init__(self, exact: np.ndarray, centre: np.ndarray, width: int) -> None:
        n, d = exact.shape
        self.exact = exact
        self.norm_sq = np.empty(n)
        left = np.zeros((n, width), dtype=centre.dtype)
        for rows in _blocks(n, _CHUNK):
            x = (exact[rows] - centre).astype(centre.dtype, copy=False)
            wide = x.astype(np.float64)
            self.norm_sq[rows] = np.einsum("ij,ij->i", wide, wide)
            left[rows, :d] = x
            left[rows, d] = self.norm_sq[rows] / 2
            left[rows, d + 1] = 1
        self.left = torch.from_numpy(left)

    def __len__(self) -> int:
        return len(self.exact)

    @functools.cached_property
    def groups(self) -> np.ndarray:
        """(n,) int64: equal ids for rows with the same bytes (duplicated samples), from 0 to the number of
        distinct rows - 1."""
        rows = np.ascontiguousarray(self.exact)
        as_bytes = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()
        return np.unique(as_bytes, return_inverse=True)[1].astype(np.int64).ravel()


class _Workspace:
    """Buffers reused by every tile of a pass: allocating tiles of this size anew fragments the heap and
    inflates the resident memory."""

    def __init__(self, block_size: int, width: int, dtype: torch.dtype) -> None:
        self._right = torch.empty(block_size * width, dtype=dtype)
        self._tile = torch.empty(block_size * block_size, dtype=dtype)
        self._mask = np.empty(block_size * block_size, dtype=bool)

    def right(self, tiles: _Tiles, rows: slice) -> torch.Tensor:
        """(b, p) [-x~, 1, |x~|^2 / 2, 0 ...] of ``rows``: left_i . right_j = |x~_i - x~_j|^2 / 2 up to rounding.

        Valid until the next call.
        """
        d = tiles.exact.shape[1]
        left = tiles.left[rows]
        out = torch.neg(left, out=self._right[:left.numel()].view(left.shape))
        out[:, d] = 1
        out[:, d + 1] = left[:, d]
        return out

    def product(self, left: torch.Tensor, right: torch.Tensor) -> np.ndarray:
        """Tile left (b, p) . right (c, p)^T as a (b, c) array, valid until the next call."""
        out = self._tile[:len(left) * len(right)].view(len(left), len(right))
        return torch.mm(left, right.T, out=out).numpy()

    def mask(self, shape: tuple[int, int]) -> np.ndarray:
        """A scratch boolean array of ``shape`` (at most block_size x block_size)."""
        return self._mask[:shape[0] * shape[1]].reshape(shape)


class _BallTest:
    """Membership of the ``others`` samples in the k-NN balls of the ``owners`` samples, tile by tile: inside
    when D <= radius^2, or D < radius^2 if ``strict`` (density/coverage).

    Pairs farther than the error bound from a ball's boundary are decided from the tile; the rest are kept
    as border pairs and decided on exact distances by ``resolve``.
    """

    def __init__(self, owners: _Tiles, others: _Tiles, k: int, radii_sq: np.ndarray, bound: _ErrorBound,
                 strict: bool, record: bool = False) -> None:
        self.owners, self.others, self.k, self.radii_sq, self.bound = owners, others, k, radii_sq, bound
        self.inside_radius = np.less if strict else np.less_equal
        self.owner_hit = np.zeros(len(owners), dtype=bool)  # the ball holds at least one other sample
        self.other_hit = np.zeros(len(others), dtype=bool)  # the sample is inside at least one ball
        self.inside = 0  # (owner, other) pairs with the other sample inside the owner's ball
        self.pairs: list[tuple[np.ndarray, np.ndarray]] | None = [] if record else None  # those pairs, recorded
        self._border: list[tuple[np.ndarray, np.ndarray]] = []
        self._pending = 0

    def scan(self, h: np.ndarray, owners: slice, others: slice, owner_axis: int, work: _Workspace) -> None:
        """Decide the pairs of tile ``h`` ~= D / 2 whose owners lie along ``owner_axis`` (0: rows, 1: columns),
        keeping those within the error bound of the boundary as border pairs."""
        half_r = self.radii_sq[owners] / 2
        err = self.bound.half(self.owners.norm_sq[owners], self.others.norm_sq[others].max())
        err += half_r * 2.0 ** -50  # the fp64 rounding of half_r -/+ err
        limit = _outward(half_r + err, h.dtype, up=True)
        if self.inside_radius is np.less:
            limit[half_r == 0] = -np.inf  # no distance is < 0: a strict ball of radius 0 holds nothing
        o, x = _hits(h, limit, owner_axis, work.mask(h.shape))
        # D / 2 <= h + err, so h below (or, not strict, at) half_r - err rounded down puts D inside the radius.
        sure = self.inside_radius(h[(o, x) if owner_axis == 0 else (x, o)],
                                  _outward(half_r - err, h.dtype, up=False)[o])
        o, x = o + owners.start, x + others.start
        self._mark(o[sure], x[sure])
        self._border.append((o[~sure], x[~sure]))
        self._pending += len(o) - int(sure.sum())
        if self._pending > _MAX_BORDER:
            self.resolve()

    def resolve(self) -> None:
        """Decide the border pairs held so far on exact distances."""
        if not self._border:
            return
        o = np.concatenate([pair[0] for pair in self._border])
        x = np.concatenate([pair[1] for pair in self._border])
        inside = self.inside_radius(_exact_sq_dist(self.owners, self.others, o, x), self.radii_sq[o])
        self._mark(o[inside], x[inside])
        self._border, self._pending = [], 0

    @property
    def density(self) -> float:
        """Pairs inside / (k * number of other samples)."""
        return self.inside / (self.k * len(self.others))

    def _mark(self, owners: np.ndarray, others: np.ndarray) -> None:
        self.owner_hit[owners] = True
        self.other_hit[others] = True
        self.inside += len(owners)
        if self.pairs is not None:
            self.pairs.append((owners.astype(np.int64), others.astype(np.int64)))

    def recorded_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """(owner, other) index arrays of every pair with the other sample inside the owner's ball."""
        if not self.pairs:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate([p[0] for p in self.pairs]), np.concatenate([p[1] for p in self.pairs])


def _blocks(n: int, size: int) -> Iterator[slice]:
    """Consecutive slices of at most ``size`` covering range(n)."""
    return (slice(i, min(i + size, n)) for i in range(0, n, size))


def _pair_tiles(n: int, size: int) -> Iterator[tuple[slice, slice]]:
    """Tiles (rows, cols), rows.start <= cols.start, holding every unordered pair of range(n) once: first the
    diagonal blocks of ``size``, halved (``_diagonal_tiles``), then the off-diagonal tiles grouped by cols."""
    for block in _blocks(n, size):
        yield from _diagonal_tiles(block)
    for cols in _blocks(n, size):
        yield from ((rows, cols) for rows in _blocks(cols.start, size))


def _diagonal_tiles(block: slice) -> Iterator[tuple[slice, slice]]:
    """Tiles holding every unordered pair of ``block`` once. A diagonal tile computes its pairs twice, so the
    block is halved down to _MIN_DIAGONAL (n * size / 2 pairs computed twice become n * _MIN_DIAGONAL / 2),
    and each row's first tile is a small one, cheap to take candidates from."""
    if block.stop - block.start <= _MIN_DIAGONAL:
        yield block, block
        return
    middle = (block.start + block.stop + 1) // 2
    first, second = slice(block.start, middle), slice(middle, block.stop)
    yield from _diagonal_tiles(first)
    yield from _diagonal_tiles(second)
    yield first, second


def _hits(h: np.ndarray, limits: np.ndarray, owner_axis: int, scratch: np.ndarray,
          compare: np.ufunc = np.less_equal) -> tuple[np.ndarray, np.ndarray]:
    """(owner, other) indices of the entries of tile ``h`` (rows, cols) that are <= their owner's limit (or
    ``compare`` to it), the owners lying along ``owner_axis`` (0: rows, 1: columns); ``scratch``: a boolean
    array shaped like h."""
    flat = np.flatnonzero(compare(h, limits[:, None] if owner_axis == 0 else limits[None, :], out=scratch))
    rows, cols = np.divmod(flat, h.shape[1])
    return (rows, cols) if owner_axis == 0 else (cols, rows)


def _outward(values: np.ndarray, dtype: np.dtype, up: bool) -> np.ndarray:
    """fp64 ``values`` rounded to ``dtype`` toward +inf (``up``) or -inf."""
    out = values.astype(dtype)
    off = out < values if up else out > values
    out[off] = np.nextafter(out[off], np.inf if up else -np.inf)
    return out


def _exact_sq_dist(x: _Tiles, y: _Tiles, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Canonical squared distances (p,) between x.exact[rows] and y.exact[cols]: sums of squared fp64 differences.

    From _DEDUP_PAIRS pairs on, each distinct pair of row contents is computed once and shared by its copies
    (all-equal or duplicated samples would otherwise cost p * d each)."""
    inverse = None
    if len(rows) >= _DEDUP_PAIRS:
        keys = x.groups[rows] * (int(y.groups.max()) + 1) + y.groups[cols]
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        rows, cols = rows[first], cols[first]
    out = np.empty(len(rows))
    for part in _blocks(len(rows), _CHUNK):
        diff = np.subtract(x.exact[rows[part]], y.exact[cols[part]], dtype=np.float64)
        np.square(diff, out=diff)
        diff.sum(axis=1, out=out[part])
    return out if inverse is None else out[inverse.ravel()]


def _checked(feats_ref: Any, feats_gen: Any, ref_ks: list[int], gen_k: int | None, block_size: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """Validate both sets, the k values and block_size; a set with radii must hold more than its k samples."""
    for k in [*ref_ks, *([] if gen_k is None else [gen_k])]:
        if k < 1:
            raise MetricError(f"k must be >= 1, got {k}")
    if block_size < 1:
        raise MetricError(f"block_size must be >= 1, got {block_size}")
    ref = as_features(feats_ref, "feats_ref", keep_float32=True)
    gen = as_features(feats_gen, "feats_gen", min_rows=1, keep_float32=True)
    check_same_dim(ref, gen, "feats_ref", "feats_gen")
    with_radii = [("feats_ref", ref, max(ref_ks))] + ([] if gen_k is None else [("feats_gen", gen, gen_k)])
    for name, feats, k in with_radii:
        if len(feats) <= k:
            raise MetricError(f"{name} has {len(feats)} samples but k={k} needs at least k+1={k + 1}; "
                              "lower k or add samples")
    return ref, gen


def _prepare(ref: np.ndarray, gen: np.ndarray) -> tuple[_Tiles, _Tiles, _ErrorBound]:
    """Tiles of both sets, centred on their common mean, and the error bound of their products."""
    n, d = len(ref) + len(gen), ref.shape[1]
    largest = max(max(float(x.max()), -float(x.min())) for x in (ref, gen))
    if largest > _MAX_ABS:
        raise MetricError(f"feature values up to {largest:.3g} overflow squared distances in fp64; rescale the features")
    dtype = np.dtype(np.float32 if d * (2 * largest) ** 2 <= _FLOAT32_MAX_NORM_SQ else np.float64)
    centre = ((ref.sum(axis=0, dtype=np.float64) + gen.sum(axis=0, dtype=np.float64)) / n).astype(dtype)
    width = -(-(d + 2) // 16) * 16
    return (_Tiles(ref, centre, width), _Tiles(gen, centre, width),
            _ErrorBound.for_tiles(dtype, width, d))


def _offer(kept_h: np.ndarray, kept_j: np.ndarray, h: np.ndarray, owner_axis: int, other0: int,
           scratch: np.ndarray) -> None:
    """Merge tile ``h`` into its owners' smallest values ``kept_h`` (b, keep) and their indices ``kept_j``, in place.

    The owners lie along ``owner_axis`` of ``h`` (0: rows, 1: columns); the other axis holds samples
    other0, other0 + 1, ...; ``scratch``: a boolean array shaped like h.
    """
    keep = kept_h.shape[1]
    worst = kept_h.max(axis=1)
    # Entries equal to a full row's largest kept value need not enter (ties would all enter otherwise): every
    # dropped entry stays >= the largest kept one, which only falls.
    compare = np.less
    if np.isinf(worst).all() and h.shape[1 - owner_axis] >= keep:
        # The owners' first tile (a small diagonal one): its keep-th smallest bounds theirs.
        worst = np.partition(h if owner_axis == 0 else h.T, keep - 1, axis=1)[:, keep - 1]
        compare = np.less_equal
    owner, other = _hits(h, worst, owner_axis, scratch, compare)
    if len(owner) == 0:
        return
    order = np.argsort(owner.astype(np.min_scalar_type(len(kept_h))), kind="stable")  # a radix sort, mostly
    owner, other = owner[order], other[order]
    counts = np.bincount(owner, minlength=len(kept_h))
    slot = np.arange(len(owner)) - (np.cumsum(counts) - counts)[owner]
    new_h = np.full((len(kept_h), counts.max()), np.inf, dtype=h.dtype)
    new_j = np.zeros(new_h.shape, dtype=np.int64)
    new_h[owner, slot] = h[(owner, other) if owner_axis == 0 else (other, owner)]
    new_j[owner, slot] = other + other0
    both_h = np.concatenate([kept_h, new_h], axis=1)
    at = np.argpartition(both_h, keep - 1, axis=1)[:, :keep]
    both_j = np.concatenate([kept_j, new_j], axis=1)
    kept_j[:] = np.take_along_axis(both_j, at, axis=1)
    kept_h[:] = np.take_along_axis(both_h, at, axis=1)


def _knn_radii_sq(tiles: _Tiles, ks: list[int], bound: _ErrorBound, block_size: int, work: _Workspace
                  ) -> dict[int, np.ndarray]:
    """Exact squared k-NN radii (n,) of one set for each k in ``ks`` (all < n)."""
    n = len(tiles)
    keep = min(max(ks) + _MARGIN, n - 1)
    best_h = np.full((n, keep), np.inf, dtype=tiles.left.numpy().dtype)
    best_j = np.zeros((n, keep), dtype=np.int64)
    block = -1
    for rows, cols in _pair_tiles(n, block_size):
        if cols.start // block_size != block:  # a new column block: sub-blocks of it slice its operand
            block = cols.start // block_size
            right = work.right(tiles, slice(block * block_size, min(n, (block + 1) * block_size)))
        offset = block * block_size
        h = work.product(tiles.left[rows], right[cols.start - offset:cols.stop - offset])
        if rows == cols:
            np.fill_diagonal(h, np.inf)
        _offer(best_h[rows], best_j[rows], h, 0, cols.start, work.mask(h.shape))
        if rows != cols:
            _offer(best_h[cols], best_j[cols], h, 1, rows.start, work.mask(h.shape))
    return _radii_from_candidates(tiles, ks, best_h, best_j, bound, block_size, work)


def _radii_from_candidates(tiles: _Tiles, ks: list[int], kept_h: np.ndarray, kept_j: np.ndarray,
                           bound: _ErrorBound, block_size: int, work: _Workspace) -> dict[int, np.ndarray]:
    """Exact radii from each row's kept smallest tile values ``kept_h`` (n, keep) and their columns ``kept_j``.

    [lower, upper] = h -/+ err holds each kept sample's D / 2, so the radius / 2 lies between the k-th
    smallest lower and upper bounds. A dropped sample has h >= the largest kept h; when even its lowest
    possible bound exceeds the largest k's upper limit, the row is complete: its kept samples hold every
    neighbour within the radii. There, samples whose upper bound is below the k-th lower bound are surely
    nearer and only counted; the radius is the (k - count)-th smallest exact D of the samples whose bounds
    reach the k-th upper bound, usually a single one. An incomplete row (a cluster within the bound) gets
    exact D for all its kept samples: k exact zeros (duplicates) make its radius 0, else it is rescanned.
    """
    n, keep = kept_h.shape
    h = kept_h.astype(np.float64)
    err = bound.half(tiles.norm_sq[:, None], tiles.norm_sq[kept_j])
    lower, upper = h - err, h + err
    ambiguous, kth = {}, {}
    for k in ks:
        below = upper < np.partition(lower, k - 1, axis=1)[:, k - 1, None]
        ambiguous[k] = (lower <= np.partition(upper, k - 1, axis=1)[:, k - 1, None]) & ~below
        kth[k] = k - below.sum(axis=1)
    limit = np.partition(upper, max(ks) - 1, axis=1)[:, max(ks) - 1]
    dropped_lower = (h.max(axis=1) - bound.half(tiles.norm_sq, tiles.norm_sq.max()) if keep < n - 1
                     else np.full(n, np.inf))
    complete = limit < dropped_lower
    rows, slots = np.nonzero(np.logical_or.reduce(list(ambiguous.values())) | ~complete[:, None])
    dist = _exact_sq_dist(tiles, tiles, rows, kept_j[rows, slots])
    zeros = np.bincount(rows[dist == 0], minlength=n)
    rescan = np.flatnonzero(~complete & (zeros < max(ks)))
    rescanned = _rescan(tiles, rescan, limit[rescan], ks, bound, block_size, work)
    radii = {}
    for k in ks:
        done = np.flatnonzero(complete | (zeros >= k))
        use = np.where(complete[rows], ambiguous[k][rows, slots], zeros[rows] >= k)
        radii[k] = np.empty(n)
        radii[k][done] = _kth_smallest_per_row(rows[use], dist[use], np.where(complete, kth[k], k)[done], done)
        radii[k][rescan] = rescanned[k]
    return radii


def _rescan(tiles: _Tiles, rows: np.ndarray, limit: np.ndarray, ks: list[int], bound: _ErrorBound,
            block_size: int, work: _Workspace) -> dict[int, np.ndarray]:
    """Exact radii {k: (len(rows),)} of the sorted ``rows`` from all their samples whose lower bound of D / 2
    is <= the row's ``limit`` (an upper bound of its largest radius / 2)."""
    radii = {k: np.empty(len(rows)) for k in ks}
    for part in _blocks(len(rows), min(_RESCAN_ROWS, block_size)):
        owners = rows[part]
        left = tiles.left[torch.from_numpy(owners)]
        found_rows, found_cols = [], []
        for cols in _blocks(len(tiles), block_size):
            h = work.product(left, work.right(tiles, cols)).astype(np.float64)
            lower = h - bound.half(tiles.norm_sq[owners, None], tiles.norm_sq[None, cols])
            r, c = np.nonzero(lower <= limit[part, None])
            r, c = owners[r], c + cols.start
            found_rows.append(r[r != c])
            found_cols.append(c[r != c])
        r, c = np.concatenate(found_rows), np.concatenate(found_cols)
        dist = _exact_sq_dist(tiles, tiles, r, c)
        for k in ks:
            radii[k][part] = _kth_smallest_per_row(r, dist, np.full(len(owners), k), owners)
    return radii


def _kth_smallest_per_row(rows: np.ndarray, values: np.ndarray, kth: np.ndarray, owners: np.ndarray) -> np.ndarray:
    """For each of the sorted row indices ``owners``, the kth-th smallest of ``values`` (p,) where ``rows`` (p,)
    equals it (each owner has at least kth)."""
    order = np.lexsort((values, rows))
    starts = np.searchsorted(rows[order], owners)
    return values[order][starts + kth - 1]


PR, DC = False, True  # strictness of the ball tests of precision/recall (<=) and density/coverage (<)


def _ball_tests(feats_ref: Any, feats_gen: Any, ref_balls: list[tuple[int, bool]], gen_k: int | None,
                block_size: int, record: bool = False) -> tuple[dict[tuple[int, bool], _BallTest], _BallTest | None]:
    """Resolved membership tests: {(k, strict): generated samples in reference k-NN balls} for each of
    ``ref_balls``, reference samples in generated ``gen_k``-NN balls (precision/recall's ``<=``; None without
    ``gen_k``). Radii are computed once per set for all its k; ``record`` keeps every inside pair."""
    ref_ks = sorted({k for k, _ in ref_balls})
    ref, gen = _checked(feats_ref, feats_gen, ref_ks, gen_k, block_size)
    tiles_ref, tiles_gen, bound = _prepare(ref, gen)
    work = _Workspace(min(block_size, max(len(ref), len(gen))), tiles_ref.left.shape[1], tiles_ref.left.dtype)
    radii = _knn_radii_sq(tiles_ref, ref_ks, bound, block_size, work)
    in_ref = {(k, strict): _BallTest(tiles_ref, tiles_gen, k, radii[k], bound, strict, record)
              for k, strict in ref_balls}
    in_gen = None
    if gen_k is not None:
        gen_radii = _knn_radii_sq(tiles_gen, [gen_k], bound, block_size, work)[gen_k]
        in_gen = _BallTest(tiles_gen, tiles_ref, gen_k, gen_radii, bound, PR, record)
    for cols in _blocks(len(gen), block_size):
        right = work.right(tiles_gen, cols)
        for rows in _blocks(len(ref), block_size):
            h = work.product(tiles_ref.left[rows], right)
            for test in in_ref.values():
                test.scan(h, rows, cols, 0, work)
            if in_gen is not None:
                in_gen.scan(h, cols, rows, 1, work)
    for test in [*in_ref.values(), *([] if in_gen is None else [in_gen])]:
        test.resolve()
    return in_ref, in_gen


def precision_recall(feats_ref: Any, feats_gen: Any, k: int = 3, *,
                     block_size: int = DEFAULT_BLOCK_SIZE) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) of ``feats_gen`` (m, d) vs ``feats_ref`` (n, d).

    precision = fraction of generated samples inside at least one real ball; recall = fraction of
    real samples inside at least one generated ball. Both sets need more than k samples. Equal to
    torch-fidelity's ``prc_features_to_metric(feats_gen, feats_ref, prc_neighborhood=k)`` up to
    its float32 rounding of the fractions (and of distances within float32 rounding of a boundary).
    """
    in_ref, in_gen = _ball_tests(feats_ref, feats_gen, [(k, PR)], k, block_size)
    return float(in_ref[k, PR].other_hit.mean()), float(in_gen.other_hit.mean())


def density_coverage(feats_ref: Any, feats_gen: Any, k: int = 5, *,
                     block_size: int = DEFAULT_BLOCK_SIZE) -> tuple[float, float]:
    """Density and coverage (Naeem et al. 2020) of ``feats_gen`` Y (m, d) vs ``feats_ref`` X (n, d).

    density = 1/(k m) sum_j sum_i 1[|Y_j - X_i| < NND_k(X_i)] (can exceed 1);
    coverage = 1/n sum_i 1[exists j: |Y_j - X_i| < NND_k(X_i)]. X needs more than k samples. The strict ``<``
    of the authors' ``prdc.compute_prdc``: equal to it, ties included.
    """
    in_ref, _ = _ball_tests(feats_ref, feats_gen, [(k, DC)], None, block_size)
    return in_ref[k, DC].density, float(in_ref[k, DC].owner_hit.mean())


def manifold_metrics(feats_ref: Any, feats_gen: Any, *, k_pr: int = 3, k_dc: int = 5,
                     block_size: int = DEFAULT_BLOCK_SIZE) -> ManifoldMetrics:
    """``precision_recall(k=k_pr)`` and ``density_coverage(k=k_dc)`` of ``feats_gen`` (m, d) vs ``feats_ref``
    (n, d) from shared passes: reference radii for both k in one pass, one pass over the cross pairs."""
    in_ref, in_gen = _ball_tests(feats_ref, feats_gen, [(k_pr, PR), (k_dc, DC)], k_pr, block_size)
    dc = in_ref[k_dc, DC]
    return ManifoldMetrics(precision=float(in_ref[k_pr, PR].other_hit.mean()), recall=float(in_gen.other_hit.mean()),
                           density=dc.density, coverage=float(dc.owner_hit.mean()))


@dataclass(frozen=True)
class ManifoldIncidence:
    """Which sample lies in which k-NN ball, with the radii of the full sets: enough to evaluate precision,
    recall, density and coverage for any re-weighting of the generated samples (bootstrap replicates).

    ``ref_balls`` (ref owner, gen) and ``gen_balls`` (gen owner, ref): index pairs (p,) with the second
    sample inside the first's ball; reference balls have k = ``k_dc``, generated ones k = ``k_pr``.
    """

    n_ref: int
    n_gen: int
    k_pr: int
    k_dc: int
    gen_in_ref: np.ndarray  # (n_gen,) bool: inside at least one reference k_pr-ball (precision)
    ref_balls: tuple[np.ndarray, np.ndarray]
    gen_balls: tuple[np.ndarray, np.ndarray]

    def metrics(self) -> ManifoldMetrics:
        """The four metrics of the full sets: equal to ``manifold_metrics``."""
        covered = np.zeros(self.n_ref, dtype=bool)
        covered[self.gen_balls[1]] = True
        owning = np.zeros(self.n_ref, dtype=bool)
        owning[self.ref_balls[0]] = True
        return ManifoldMetrics(precision=float(self.gen_in_ref.mean()), recall=float(covered.mean()),
                               density=len(self.ref_balls[0]) / (self.k_dc * self.n_gen),
                               coverage=float(owning.mean()))


def manifold_incidence(feats_ref: Any, feats_gen: Any, *, k_pr: int = 3, k_dc: int = 5,
                       block_size: int = DEFAULT_BLOCK_SIZE) -> ManifoldIncidence:
    """The ball memberships behind ``manifold_metrics`` of ``feats_gen`` (m, d) vs ``feats_ref`` (n, d).

    Memory grows with the number of inside pairs (about k_dc m + k_pr n for similar sets; up to n m when one
    set's balls swallow the other)."""
    in_ref, in_gen = _ball_tests(feats_ref, feats_gen, [(k_pr, PR), (k_dc, DC)], k_pr, block_size, record=True)
    return ManifoldIncidence(n_ref=len(in_gen.other_hit), n_gen=len(in_gen.owner_hit), k_pr=k_pr, k_dc=k_dc,
                             gen_in_ref=in_ref[k_pr, PR].other_hit.copy(), ref_balls=in_ref[k_dc, DC].recorded_pairs(),
                             gen_balls=in_gen.recorded_pairs())
