"""The one logging set-up of geoseg's processes: the commands (``cli.common.setup_logging``) and
the local worker processes (:mod:`geoseg.runtime.processes`) log alike."""

from __future__ import annotations

import logging
import sys

#: Libraries whose INFO/WARNING chatter is noise for users; they speak only at ERROR unless -v.
NOISY_LOGGERS = ("rasterio", "distributed", "tensorflow", "absl", "numexpr")


def configure_logging(verbose: bool) -> None:
    """Log to stderr as ``LEVEL: message``: DEBUG with ``verbose``, else WARNING with the chatty
    libraries (:data:`NOISY_LOGGERS`) at ERROR. The commands call it at start, the local
    worker processes (:func:`geoseg.runtime.processes.process_pool`) too."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s: %(message)s", stream=sys.stderr)
    if not verbose:
        for noisy in NOISY_LOGGERS:
            logging.getLogger(noisy).setLevel(logging.ERROR)
