"""``python -m geoseg.tile``: entry point; the command lives in :mod:`geoseg.cli.tile`."""

import sys

from geoseg.cli.tile import main

if __name__ == "__main__":
    sys.exit(main())
