"""``python -m geoseg.vectorize``: entry point; the command lives in :mod:`geoseg.cli.vectorize`."""

import sys

from geoseg.cli.vectorize import main

if __name__ == "__main__":
    sys.exit(main())
