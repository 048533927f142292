"""Metrics: pure functions on feature arrays (fp64 where sums or matrix roots are involved)."""
