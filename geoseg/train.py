"""``python -m geoseg.train``: entry point; the command lives in :mod:`geoseg.cli.train`."""

import sys

from geoseg.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
