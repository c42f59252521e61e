"""``python -m geoseg.pipeline PIPELINE.yaml``: run a YAML pipeline (:mod:`geoseg.apps.pipeline`)."""

from __future__ import annotations

import sys

from geoseg.apps.pipeline import build_parser, run
from geoseg.cli.common import make_main

main = make_main(build_parser, run)

if __name__ == "__main__":
    sys.exit(main())
