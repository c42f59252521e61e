"""Shared CLI plumbing: common options, --config YAML, error mapping.

Every command module defines ``build_parser()`` (a :class:`~geoseg.cli.config.CommandParser`)
and ``run(args)``, and exposes ``main = make_main(build_parser, run)``. ``main(argv)`` returns
the exit code: 0 success, 1 user error (one ``error:`` line on stderr), 2 bad usage: argparse's
own errors, and any :class:`~geoseg.errors.UsageError`: a required option missing
(:func:`require`), options that exclude each other, or a :class:`~geoseg.errors.ConfigError`
(a config or pipeline file with an unknown key or a bad value, also one ``error:`` line naming
the file and the key).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

from geoseg.cli.config import CommandParser, apply_config, load_yaml, validate_config
from geoseg.errors import ConfigError, GeoSegError, UsageError
from geoseg.runtime.logs import configure_logging
from geoseg.runtime.processes import mark_command

__all__ = [
    "CommandParser", "add_common_options", "apply_config", "load_yaml", "make_main", "parse_args",
    "parse_int_list", "require", "setup_logging", "validate_config",
]

log = logging.getLogger("geoseg")

#: Exit codes (README): a user error (bad input data, existing output...), bad usage.
USER_ERROR, USAGE_ERROR = 1, 2


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
                            help="parallel workers (dask local processes; threads or processes for tile); "
                                 "1 runs in this process")
        parser.add_argument("--scheduler", metavar="ADDRESS",
                            help="dask.distributed scheduler address (tcp://host:8786) instead of local workers")
    parser.add_argument("--config", metavar="FILE.yaml",
                        help="YAML file whose keys are long option names; command-line flags win")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging and full tracebacks")


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv``, first folding in ``--config FILE`` (flags on the command line win).

    The YAML values are checked like flags (:func:`~geoseg.cli.config.validate_config`); for a
    command with sub-commands they apply to the sub-command named in ``argv``.

    Raises:
        ConfigError: the config file is unreadable or holds a bad key or value.
        SystemExit: argparse's own usage errors (exit 2).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    if known.config:
        target = _command_parser(parser, argv)
        if not isinstance(target, CommandParser):
            raise TypeError(f"{parser.prog}: --config needs a CommandParser, got {type(target).__name__}")
        apply_config(target, load_yaml(known.config), source=known.config)
    return parser.parse_args(argv)


def _command_parser(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.ArgumentParser:
    """The parser whose options a config file sets: the sub-command's, when ``argv`` names one."""
    subcommands = getattr(parser, "subcommands", None)
    if subcommands is not None:
        for token in argv:
            if token in subcommands.choices:
                return _command_parser(subcommands.choices[token], argv)
    return parser


def setup_logging(verbose: bool) -> None:
    """Log to stderr: DEBUG with ``-v``, else WARNING with the chatty libraries at ERROR
    (:func:`geoseg.runtime.logs.configure_logging`, which local worker processes use too)."""
    configure_logging(verbose)


def make_main(build_parser: Callable[[], argparse.ArgumentParser],
              run: Callable[[argparse.Namespace], int | None]) -> Callable[[Sequence[str] | None], int]:
    """Wrap a command: parse (with --config), run, map user errors to one ``error:`` line.

    Exit codes: :class:`~geoseg.errors.UsageError` (and so ``ConfigError``) 2 (bad usage, like
    argparse's errors), any other :class:`~geoseg.errors.GeoSegError` 1, Ctrl-C 130. ``-v``
    re-raises instead.
    """

    def main(argv: Sequence[str] | None = None) -> int:
        mark_command()  # local worker processes may start: the command's main module is guarded
        parser = build_parser()
        try:
            args = parse_args(parser, argv)
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return USAGE_ERROR
        verbose = bool(getattr(args, "verbose", False))
        if not verbose:  # TensorFlow's C++ start-up chatter is noise for users; -v keeps it
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        setup_logging(verbose)
        try:
            return int(run(args) or 0)
        except GeoSegError as exc:
            if verbose:
                raise
            print(f"error: {exc}", file=sys.stderr)
            return USAGE_ERROR if isinstance(exc, UsageError) else USER_ERROR
        except KeyboardInterrupt:
            print("error: interrupted (rerun with --resume to continue)", file=sys.stderr)
            return 130

    return main


def require(value: object, option: str) -> None:
    """Refuse a missing required option (``None``, ``""`` or an empty list): bad usage, exit 2.

    Options that ``--config`` may supply cannot be ``required=True`` in argparse; they are
    checked here after the config file is folded in.

    Args:
        value: the parsed value.
        option: the option as the user writes it, with its metavar (``"--out DATASET"``).

    Raises:
        UsageError: ``value`` is missing.
    """
    if value is None or value == "" or (isinstance(value, (list, tuple)) and not value):
        raise UsageError(f"{option} is required")


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
