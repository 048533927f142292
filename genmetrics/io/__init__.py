"""Input/output layer: image sources and statistics files."""
