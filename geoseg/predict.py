"""``python -m geoseg.predict``: entry point; the command lives in :mod:`geoseg.cli.predict`."""

import sys

from geoseg.cli.predict import main

if __name__ == "__main__":
    sys.exit(main())
