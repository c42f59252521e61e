"""Shared CLI plumbing (STYLE 5): common options, --config YAML, error mapping.

Every command module defines ``build_parser()`` and ``run(args)``, and exposes
``main = make_main(build_parser, run)``. ``main(argv)`` returns the exit code:
0 success, 1 user error (one ``error:`` line on stderr), 2 bad usage (argparse).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from geoseg.errors import ConfigError, GeoSegError

log = logging.getLogger("geoseg")


def add_common_options(parser: argparse.ArgumentParser, *, out: bool = True, workers: bool = False,
                       resume: bool = True) -> None:
    """Options that keep one name in every command (DESIGN: CLI conventions)."""
    if out:
        parser.add_argument("--out", metavar="DIR", help="output folder")
        parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    if resume:
        parser.add_argument("--resume", action="store_true", help="continue an interrupted run")
    if workers:
        parser.add_argument("--workers", type=int, default=1, metavar="N",
                            help="parallel workers (dask local processes); 1 runs in this process")
        parser.add_argument("--scheduler", metavar="ADDRESS",
                            help="dask.distributed scheduler address (tcp://host:8786) instead of local workers")
    parser.add_argument("--config", metavar="FILE.yaml",
                        help="YAML file whose keys are long option names; command-line flags win")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging and full tracebacks")


def option_names(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Map every accepted config key (long option name, with - or _) to its argparse dest."""
    names: dict[str, str] = {}
    for action in parser._actions:  # argparse has no public accessor for this
        if action.dest in ("help", "config"):
            continue
        for opt in action.option_strings:
            if opt.startswith("--"):
                names[opt[2:]] = action.dest
                names[opt[2:].replace("-", "_")] = action.dest
        if not action.option_strings:  # positionals may be given in YAML too
            names[action.dest] = action.dest
            names[action.dest.replace("_", "-")] = action.dest
    return names


def load_yaml(path: str | Path) -> dict:
    """Read a YAML mapping. Raises ConfigError when unreadable or not a mapping."""
    import yaml

    p = Path(path)
    if not p.exists():
        raise ConfigError(f"no such config file: {p}")
    try:
        doc = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot parse YAML {p}: {str(exc).splitlines()[0]}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{p}: expected a mapping of option names to values, found {type(doc).__name__}")
    return doc


def apply_config(parser: argparse.ArgumentParser, config: dict, source: str = "config") -> None:
    """Set parser defaults from a config mapping; unknown keys are rejected listing the valid ones.

    Raises:
        ConfigError: a key is not an option of this command.
    """
    names = option_names(parser)
    unknown = [k for k in config if k not in names]
    if unknown:
        valid = sorted({k for k in names if "_" not in k or k == names[k]})
        raise ConfigError(f"{source}: unknown key(s) {', '.join(map(str, unknown))}; valid keys: {', '.join(valid)}")
    defaults = {names[k]: v for k, v in config.items()}
    # Positionals in YAML: make them optional so the command line may omit them.
    for action in parser._actions:
        if not action.option_strings and action.dest in defaults:
            action.required = False
            action.nargs = "*" if action.nargs in ("+", "*") else "?"
    parser.set_defaults(**defaults)


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv``, first folding in ``--config FILE`` (flags on the command line win)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    if known.config:
        apply_config(parser, load_yaml(known.config), source=known.config)
    args = parser.parse_args(argv)
    for action in parser._actions:  # positionals given only in YAML come back as defaults
        if not action.option_strings and isinstance(getattr(args, action.dest, None), list) \
                and not getattr(args, action.dest) and parser.get_default(action.dest):
            setattr(args, action.dest, parser.get_default(action.dest))
    return args


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s: %(message)s", stream=sys.stderr)
    if not verbose:
        for noisy in ("rasterio", "distributed", "tensorflow", "absl", "numexpr"):
            logging.getLogger(noisy).setLevel(logging.ERROR)


def make_main(build_parser: Callable[[], argparse.ArgumentParser],
              run: Callable[[argparse.Namespace], int | None]) -> Callable[[Sequence[str] | None], int]:
    """Wrap a command: parse (with --config), run, map user errors to ``error:`` + exit 1."""

    def main(argv: Sequence[str] | None = None) -> int:
        parser = build_parser()
        try:
            args = parse_args(parser, argv)
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        verbose = bool(getattr(args, "verbose", False))
        if not verbose:  # TensorFlow's C++ start-up chatter is noise for users; -v keeps it
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        setup_logging(verbose)
        try:
            return int(run(args) or 0)
        except GeoSegError as exc:
            if verbose:
                raise
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("error: interrupted (rerun with --resume to continue)", file=sys.stderr)
            return 130

    return main


def parse_int_list(text: str | Sequence[int] | None) -> list[int] | None:
    """``"1,2,3"`` (or a YAML list) -> ``[1, 2, 3]``; None stays None."""
    if text is None or text == "":
        return None
    if isinstance(text, (list, tuple)):
        return [int(v) for v in text]
    try:
        return [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
