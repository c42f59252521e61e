"""``python -m geoseg.labels``: entry point; the command lives in :mod:`geoseg.cli.labels`."""

import sys

from geoseg.cli.labels import main

if __name__ == "__main__":
    sys.exit(main())
