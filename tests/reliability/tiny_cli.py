"""``python -m tests.reliability.tiny_cli ARGS``: the genmetrics CLI with the stand-in extractor (``--extractor tiny``)
for child processes (the crash tests, benchmarks/load_20k.py --stand-in). Two knobs, from the environment:

* ``TINY_DELAY``: seconds each forward pass sleeps (not computes), so a run is long enough to kill or overlap;
* ``TINY_KILL_AT_SAVEZ``: on the N-th ``np.savez`` (cache entries, then the stats file) write half of the bytes,
  then SIGKILL this process: a kill at the worst moment of an atomic write.
"""
from __future__ import annotations

import io
import os
import signal
import time
from typing import Any

import numpy as np
import torch

from genmetrics_cli.main import cli
from genmetrics.features.registry import EXTRACTORS
from tests.helpers import TinyExtractor, stand_in


class _SlowTiny(TinyExtractor):
    def forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        time.sleep(float(os.environ.get("TINY_DELAY", "0")))
        return super().forward(batch)


def _dying_savez(kill_at: int) -> Any:
    real, calls = np.savez, [0]

    def savez(file: Any, *args: Any, **kwargs: Any) -> None:
        calls[0] += 1
        if calls[0] == kill_at:
            buffer = io.BytesIO()
            real(buffer, *args, **kwargs)
            file.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
            file.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        real(file, *args, **kwargs)

    return savez


if __name__ == "__main__":
    EXTRACTORS["tiny"] = stand_in(_SlowTiny)
    if os.environ.get("TINY_KILL_AT_SAVEZ"):
        np.savez = _dying_savez(int(os.environ["TINY_KILL_AT_SAVEZ"]))
    cli(prog_name="genmetrics")
