"""The ``genmetrics`` command line (click); it only parses arguments and calls the public API."""
