"""Messages name arguments as their reader writes them: Python spellings for callers of the API, flags for CLI
users (``genmetrics.errors.spell`` / ``cli_spelling``)."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import genmetrics
from genmetrics.errors import CLI_NAMES, DecodeError, cli_spelling, phrase, spell
from genmetrics_cli.main import cli


def test_python_callers_see_keyword_arguments():
    assert spell("skip_bad") == "skip_bad=True"  # a flag
    assert spell("batch_size", "0") == "batch_size=0"
    assert spell("inception_weights", "PATH") == "inception_weights=PATH"
    assert spell("cache", "False") == "cache=False"
    assert spell("bootstrap_replicates", "200") == "bootstrap_replicates=200"
    assert phrase("python words", "cli words") == "python words"


def test_cli_users_see_flags():
    with cli_spelling():
        assert spell("skip_bad") == "--skip-bad"
        assert spell("batch_size", "0") == "--batch-size 0"
        assert spell("inception_weights", "PATH") == "--inception-weights PATH"
        assert spell("clip_model", "'ViT-B-32'") == "--clip-model 'ViT-B-32'"
        assert spell("n", "5") == "-n 5"  # one-letter options take one dash
        assert phrase("python words", "cli words") == "cli words"


def test_flags_spelled_otherwise_come_from_cli_names():
    with cli_spelling():
        assert spell("bootstrap_replicates", "200") == "--bootstrap 200"
        assert spell("cache", "False") == "--no-cache"  # a value with a flag of its own
        assert spell("progress", "False") == "--no-progress"
        assert spell("cache", "True") == "--cache True"  # other values keep the plain flag
        assert spell("hparams", "lr=1e-4") == "-p lr=1e-4"
    assert all(flag.startswith("-") for flag in CLI_NAMES.values())


def test_cli_spelling_ends_with_its_block_even_on_errors():
    with pytest.raises(RuntimeError):
        with cli_spelling():
            with cli_spelling():
                assert spell("skip_bad") == "--skip-bad"
            assert spell("skip_bad") == "--skip-bad"  # the inner block restores the outer state
            raise RuntimeError
    assert spell("skip_bad") == "skip_bad=True"


def test_a_decode_error_from_a_worker_is_spelled_where_it_is_raised():
    """DataLoader workers pickle a DecodeError to the main process, which rebuilds it (and its message)."""
    error = DecodeError("a.png", "truncated")
    assert str(error).endswith("(fix or remove the file, or pass skip_bad=True)")
    with cli_spelling():
        rebuilt = pickle.loads(pickle.dumps(error))
    assert str(rebuilt).endswith("(fix or remove the file, or pass --skip-bad)") and rebuilt.path == "a.png"


@pytest.fixture
def folder_with_a_bad_image(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(folder / f"ok_{i}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))
    return folder


def test_the_skip_bad_hint_through_the_python_api(folder_with_a_bad_image):
    with pytest.raises(DecodeError) as caught:
        genmetrics.score(str(folder_with_a_bad_image), str(folder_with_a_bad_image), "fid", extractor="fashion-cnn",
                         progress=False, cache=False)
    message = str(caught.value)
    assert "broken.png" in message and message.endswith("or pass skip_bad=True)") and "--skip-bad" not in message


def test_the_skip_bad_hint_through_the_cli(folder_with_a_bad_image):
    folder = str(folder_with_a_bad_image)
    result = CliRunner().invoke(cli, ["score", folder, folder, "--metrics", "fid", "--extractor", "fashion-cnn",
                                      "--no-progress", "--no-cache"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "broken.png" in lines[0] and lines[0].endswith("or pass --skip-bad)")
    assert "skip_bad=True" not in lines[0]
    assert spell("skip_bad") == "skip_bad=True"  # the command's spelling ended with it
