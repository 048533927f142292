"""Feature extractors and the batched extraction engine."""
