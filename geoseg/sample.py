"""``python -m geoseg.sample``: entry point; the command lives in :mod:`geoseg.cli.sample`."""

import sys

from geoseg.cli.sample import main

if __name__ == "__main__":
    sys.exit(main())
