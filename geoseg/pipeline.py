"""``python -m geoseg.pipeline``: entry point; the command lives in :mod:`geoseg.cli.pipeline`."""

import sys

from geoseg.cli.pipeline import main

if __name__ == "__main__":
    sys.exit(main())
