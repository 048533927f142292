"""genmetrics test suite."""
