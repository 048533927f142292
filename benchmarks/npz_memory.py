"""Peak memory of `genmetrics score` on `.npz` inputs: bounded by what is read, not by the file's inflated size.

``python benchmarks/npz_memory.py`` (about a minute on 2 CPU cores, 2.3 GB of temp disk) writes three `.npz` files
of seeded random SIDE x SIDE RGB images (default 600) and scores each against itself in a child process with the
tests' stand-in extractor (``--extractor tiny``: the real decoding, engine and statistics), printing each child's
peak RSS (benchmarks/load_20k.py's ``score_in_child``):

* ``small.npz``: ``--n-small`` images (default 100), stored uncompressed (``np.savez``);
* ``large.npz``: ``--n`` images (default 2,000, 2.2 GB), stored uncompressed: memory-mapped, read item by item;
* ``bomb.npz``: ``--n`` all-zero images compressed (``np.savez_compressed``, 2 MB on disk, 2.2 GB inflated):
  refused before inflating (compressed members are capped at 1 GiB).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_20k import score_in_child  # noqa: E402


def write_npz(path: Path, n: int, side: int, compressed: bool) -> None:
    """An .npz whose member 'images' (n, side, side, 3) uint8 is streamed in chunks: random (stored) or zeros
    (deflated)."""
    rng = np.random.default_rng(0)
    header = {"descr": "|u1", "fortran_order": False, "shape": (n, side, side, 3)}
    method = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", method) as archive, archive.open("images.npy", "w", force_zip64=True) as member:
        np.lib.format.write_array_header_2_0(member, header)
        for start in range(0, n, 100):
            size = min(100, n - start)
            chunk = (np.zeros if compressed else lambda s: rng.integers(0, 256, s, dtype=np.uint8))(
                (size, side, side, 3))
            member.write(np.asarray(chunk, np.uint8).tobytes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--n-small", type=int, default=100)
    parser.add_argument("--side", type=int, default=600)
    args = parser.parse_args()
    child = argparse.Namespace(stand_in=True, metrics="fid", batch_size=32, workers=0)
    with tempfile.TemporaryDirectory(prefix="genmetrics-npz-") as tmp:
        for name, n, compressed in (("small", args.n_small, False), ("large", args.n, False), ("bomb", args.n, True)):
            path = Path(tmp) / f"{name}.npz"
            write_npz(path, n, args.side, compressed)
            inflated = n * args.side * args.side * 3
            try:
                peak, wall, out = score_in_child(path, child)
                outcome = out.splitlines()[0] if out else ""
            except SystemExit as refused:  # the child's one-line error
                peak, wall, outcome = float("nan"), float("nan"), str(refused).split(": ", 1)[-1][:110]
            print(f"{name:5s} N={n:5d}: {path.stat().st_size / 2**20:8.1f} MiB on disk, {inflated / 2**20:8.1f} MiB "
                  f"inflated; peak RSS {peak:7.1f} MiB, {wall:5.1f} s; {outcome}")


if __name__ == "__main__":
    main()
