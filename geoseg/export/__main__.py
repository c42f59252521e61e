"""``python -m geoseg.export``: entry point; the command lives in :mod:`geoseg.cli.export`."""

import sys

from geoseg.cli.export import main

if __name__ == "__main__":
    sys.exit(main())
