"""Fixtures of the models tests that the benchmark tests share: the stand-in extractor and a digits reference."""
from tests.models.conftest import digits_reference, tiny_extractor  # noqa: F401
