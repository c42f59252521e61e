"""``python -m geoseg.pipeline``: entry point; the command lives in :mod:`geoseg.apps.pipeline`."""

import sys

from geoseg.apps.pipeline import main

if __name__ == "__main__":
    sys.exit(main())
