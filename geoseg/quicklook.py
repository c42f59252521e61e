"""``python -m geoseg.quicklook``: entry point; the command lives in :mod:`geoseg.cli.quicklook`."""

import sys

from geoseg.cli.quicklook import main

if __name__ == "__main__":
    sys.exit(main())
