"""The bad-file policy: strict by default (first bad file stops the run with one line), --skip-bad skips and
reports, --debug shows the traceback."""
from __future__ import annotations

import pytest

import genmetrics
from genmetrics.errors import DecodeError
from tests.reliability.harness import (
    TINY,
    assert_one_line_error,
    good_folder,
    run,
    score_json,
)


@pytest.fixture
def messy(tmp_path):
    """4 good images and 12 bad files whose names sort between them."""
    folder = good_folder(tmp_path / "imgs")
    for i in range(12):
        (folder / f"img_0001_bad{i:02d}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(i))
    return folder


def test_strict_stops_at_the_first_bad_file(messy, tmp_path):
    assert_one_line_error(run("stats", messy, "-o", tmp_path / "out.npz", *TINY), "img_0001_bad00.png", "--skip-bad")
    with pytest.raises(DecodeError, match="img_0001_bad00.png") as caught:
        genmetrics.compute_stats(str(messy), extractor="tiny", progress=False)
    assert caught.value.path.endswith("img_0001_bad00.png")
    assert not (tmp_path / "out.npz").exists()


def test_skip_bad_counts_all_and_names_the_first_ten(messy):
    side = score_json(messy, messy, "--skip-bad")["provenance"]["generated"]
    assert side["n"] == 4 and side["n_skipped"] == 12
    assert [name.rsplit("/", 1)[-1] for name in side["skipped"]] == [f"img_0001_bad{i:02d}.png" for i in range(10)]
    table = run("score", messy, messy, "--metrics", "fid", "--skip-bad", *TINY)
    assert table.exit_code == 0 and "(N=4, 12 skipped)" in table.stdout
    stats = genmetrics.compute_stats(str(messy), extractor="tiny", skip_bad=True, progress=False)
    assert stats.n == 4 and stats.meta["n_skipped"] == 12 and len(stats.meta["skipped"]) == 10


def test_debug_shows_the_traceback(messy, tmp_path):
    result = run("--debug", "stats", messy, "-o", tmp_path / "out.npz", *TINY)
    assert isinstance(result.exception, DecodeError) and result.exit_code == 1
    assert not (tmp_path / "out.npz").exists()
