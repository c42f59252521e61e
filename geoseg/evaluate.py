"""``python -m geoseg.evaluate``: entry point; the command lives in :mod:`geoseg.cli.evaluate`."""

import sys

from geoseg.cli.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
