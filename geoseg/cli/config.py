"""YAML options (``--config FILE.yaml``, pipeline step sections) checked like command-line flags.

A YAML key is a long option name (``batch-size`` or ``batch_size``) or a positional's name
(``scenes``). Each value goes through the option's own ``type``, ``choices`` and ``nargs``, so
a YAML file accepts exactly what the command line accepts and a mistake is reported as one
:class:`~geoseg.errors.ConfigError` naming the file and the key::

    train.yaml: key 'lr': expected a float, got 'abc'
    tile.yaml: key 'mode': invalid choice 'grid' (choose from stride, random)
    tile.yaml: unknown key(s) strid; valid keys: aoi, allow-gaps, ...

Value rules:

- ``null`` leaves the option at its default.
- Flags (``store_true``): ``true`` gives the flag, ``false`` leaves it unset; anything else is an
  error. On/off options (:class:`argparse.BooleanOptionalAction`): ``true`` / ``false``, and
  ``no-KEY: true`` means ``KEY: false``.
- Options taking several values (``nargs``) and ``action="append"``: a list, or one scalar.
- Any other option: one scalar. A list is joined with commas and a mapping written as JSON, as
  one would type them after the flag (``bands: [1, 2, 3]`` is ``--bands 1,2,3``).

:class:`CommandParser` is an :class:`argparse.ArgumentParser` that keeps its own public list
of the options it defines, so none of this reads argparse internals.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any, NoReturn

from geoseg.errors import ConfigError

#: Destinations that never come from a config file.
NOT_CONFIGURABLE = frozenset({"help", "config"})

#: Readable names of the usual ``type=`` converters, for messages.
_TYPE_NAMES: dict[Any, str] = {int: "an integer", float: "a float", str: "a string"}


class CommandParser(argparse.ArgumentParser):
    """An :class:`argparse.ArgumentParser` that records the options it defines.

    Every action created by :meth:`add_argument`, by the ``add_argument`` of its argument
    groups and mutually exclusive groups, lands in :attr:`options` together with the
    ``action=`` keyword it was created with (:meth:`kind`). Sub-command parsers made by
    :meth:`add_subparsers` are CommandParsers too; the sub-parsers action is :attr:`subcommands`.

    Attributes:
        options: the parser's actions in definition order (``-h`` included).
        subcommands: the action returned by :meth:`add_subparsers`, or None.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # set before ArgumentParser.__init__, which adds -h through add_argument
        self.options: list[argparse.Action] = []
        self.subcommands: Any = None
        self._kinds: dict[argparse.Action, str] = {}
        super().__init__(*args, **kwargs)

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        return self._record(super().add_argument(*args, **kwargs), kwargs)

    def error(self, message: str) -> NoReturn:
        """Bad usage: one line on stderr starting ``error:`` like every geoseg error (no usage dump), exit 2."""
        self.exit(2, f"error: {self.prog}: {message} (see '{self.prog} --help')\n")

    def add_argument_group(self, *args: Any, **kwargs: Any) -> Any:
        return self._recording(super().add_argument_group(*args, **kwargs))

    def add_mutually_exclusive_group(self, **kwargs: Any) -> Any:
        return self._recording(super().add_mutually_exclusive_group(**kwargs))

    def add_subparsers(self, **kwargs: Any) -> Any:
        self.subcommands = super().add_subparsers(**kwargs)
        return self.subcommands

    def kind(self, action: argparse.Action) -> str:
        """The ``action=`` an option was created with: ``"store"``, ``"store_true"``, ``"append"``,
        ``"boolean_optional"`` (:class:`argparse.BooleanOptionalAction`), ... or ``"custom"``."""
        return self._kinds.get(action, "custom")

    def _record(self, action: argparse.Action, kwargs: Mapping[str, Any]) -> argparse.Action:
        kind = kwargs.get("action", "store")
        if not isinstance(kind, str):
            is_bool = isinstance(kind, type) and issubclass(kind, argparse.BooleanOptionalAction)
            kind = "boolean_optional" if is_bool else "custom"
        self._kinds[action] = kind
        self.options.append(action)
        return action

    def _recording(self, container: Any) -> Any:
        """Make a group's ``add_argument`` (and nested exclusive groups) record into this parser."""
        add_argument, add_group = container.add_argument, container.add_mutually_exclusive_group

        def recorded_add_argument(*args: Any, **kwargs: Any) -> argparse.Action:
            return self._record(add_argument(*args, **kwargs), kwargs)

        def recorded_group(**kwargs: Any) -> Any:
            return self._recording(add_group(**kwargs))

        container.add_argument = recorded_add_argument
        container.add_mutually_exclusive_group = recorded_group
        return container


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping (an empty file is ``{}``).

    Raises:
        ConfigError: the file is missing, not YAML, or not a mapping.
    """
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"no such config file: {p}")
    try:
        doc = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot parse YAML {p}: {str(exc).splitlines()[0]}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{p}: expected a mapping of option names to values, found {type(doc).__name__}")
    return doc


def config_keys(parser: CommandParser) -> dict[str, tuple[argparse.Action, bool]]:
    """Every accepted key (``-`` or ``_`` spelling) -> (action, negated).

    ``negated`` is True for the ``no-KEY`` spelling of a BooleanOptionalAction.
    """
    keys: dict[str, tuple[argparse.Action, bool]] = {}
    for action in parser.options:
        if action.dest in NOT_CONFIGURABLE or action.dest == argparse.SUPPRESS:
            continue
        if action.option_strings:
            negatable = parser.kind(action) == "boolean_optional"
            names = [(opt[2:], negatable and opt.startswith("--no-")) for opt in action.option_strings
                     if opt.startswith("--")]
        else:
            names = [(action.dest, False)]
        for name, negated in names:
            for spelling in (name, name.replace("-", "_"), name.replace("_", "-")):
                keys[spelling] = (action, negated)
    return keys


def canonical_keys(parser: CommandParser, exclude: Collection[str] = ()) -> list[str]:
    """One key per option, as listed in messages: the first long option name, or a positional's name."""
    out = []
    for action in parser.options:
        if action.dest in NOT_CONFIGURABLE or action.dest in exclude or action.dest == argparse.SUPPRESS:
            continue
        longs = [opt[2:] for opt in action.option_strings if opt.startswith("--")]
        if longs or not action.option_strings:
            out.append(longs[0] if longs else action.dest)
    return sorted(out)


def validate_config(parser: CommandParser, mapping: Any, source: str,
                    exclude: Collection[str] = ()) -> dict[str, Any]:
    """Check a YAML mapping against a command's options; return ``{dest: value}`` as argparse would.

    Args:
        parser: the command's parser.
        mapping: the YAML mapping (anything else is refused).
        source: where the mapping comes from, first in every message (``"train.yaml"``,
            ``"pipeline.yaml: step 'train'"``).
        exclude: destinations that may not be set here (they are left out of "valid keys").

    Returns:
        Converted values by argparse destination; keys whose value leaves the option at its
        default (``null``, ``false`` for a flag) are absent.

    Raises:
        ConfigError: not a mapping, unknown key, key given twice, or a value that the option's
            type, choices or number of values refuses.
    """
    if not isinstance(mapping, dict):
        raise ConfigError(f"{source}: expected a mapping of option names to values, "
                          f"found {type(mapping).__name__} {_show(mapping)}")
    keys = config_keys(parser)
    unknown = [str(k) for k in mapping if str(k) not in keys or keys[str(k)][0].dest in exclude]
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)}; "
                          f"valid keys: {', '.join(canonical_keys(parser, exclude))}")
    values: dict[str, Any] = {}
    seen: dict[str, str] = {}
    for raw_key, value in mapping.items():
        key = str(raw_key)
        action, negated = keys[key]
        if action.dest in seen:
            raise ConfigError(f"{source}: keys '{seen[action.dest]}' and '{key}' set the same option")
        seen[action.dest] = key
        converted = _convert(parser, action, negated, value, f"{source}: key '{key}'")
        if converted is not _DEFAULT:
            values[action.dest] = converted
    return values


def apply_config(parser: CommandParser, mapping: Any, source: str = "config",
                 exclude: Collection[str] = ()) -> dict[str, Any]:
    """Validate ``mapping`` (:func:`validate_config`) and make its values the parser's defaults.

    Command-line flags still win. Positionals and required options given in the mapping may
    then be left out of the command line.

    Returns:
        The converted values by destination.
    """
    values = validate_config(parser, mapping, source, exclude)
    set_config_defaults(parser, values)
    return values


def set_config_defaults(parser: CommandParser, values: Mapping[str, Any]) -> None:
    """Make already converted ``{dest: value}`` the parser's defaults (:meth:`~argparse.ArgumentParser.set_defaults`).

    A positional or required option with a value here becomes optional on the command line.
    """
    for action in parser.options:
        if action.dest not in values:
            continue
        action.required = False
        if not action.option_strings:
            action.nargs = "?" if action.nargs in (None, "?") else "*"
    parser.set_defaults(**values)


def namespace_from_config(parser: CommandParser, values: Mapping[str, Any]) -> argparse.Namespace:
    """The namespace the command would get from ``values`` alone (no command-line argument).

    ``values`` must be converted already (:func:`validate_config`) and hold every positional.
    """
    set_config_defaults(parser, values)
    return parser.parse_args([])


# --- value conversion -------------------------------------------------------------------------

_DEFAULT = object()  # "leave the option at its default"


def _convert(parser: CommandParser, action: argparse.Action, negated: bool, value: Any, where: str) -> Any:
    kind = parser.kind(action)
    if value is None:
        return _DEFAULT
    if kind in ("store_true", "store_false", "store_const", "boolean_optional"):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {_show(value)}")
        if kind == "boolean_optional":
            return value != negated
        return action.const if value else _DEFAULT
    if kind in ("append", "extend") or action.nargs in ("+", "*") or isinstance(action.nargs, int):
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        if action.nargs == "+" and not items:
            raise ConfigError(f"{where}: expected at least one value, got an empty list")
        if isinstance(action.nargs, int) and len(items) != action.nargs:
            raise ConfigError(f"{where}: expected {action.nargs} value(s), got {len(items)}")
        return [_scalar(action, item, where) for item in items]
    if kind not in ("store", "custom"):
        raise ConfigError(f"{where}: this option cannot be set from a config file")
    return _scalar(action, value, where)


def _scalar(action: argparse.Action, value: Any, where: str) -> Any:
    """One value through the option's ``type`` and ``choices``, as if typed after the flag."""
    convert: Callable[[str], Any] = action.type if callable(action.type) else str
    if isinstance(value, bool):  # "True" would pass a str option; no option here takes a YAML bool as text
        raise ConfigError(f"{where}: expected {_TYPE_NAMES.get(convert, 'a value')}, got {_show(value)}")
    if isinstance(value, dict):
        text = json.dumps(value, default=str)
    elif isinstance(value, (list, tuple)):
        text = ",".join(map(str, value))
    else:
        text = str(value)
    try:
        result = convert(text)
    except argparse.ArgumentTypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except (TypeError, ValueError):
        expected = _TYPE_NAMES.get(convert, f"a value accepted by {getattr(convert, '__name__', 'its type')}")
        raise ConfigError(f"{where}: expected {expected}, got {_show(value)}") from None
    if action.choices is not None and result not in action.choices:
        raise ConfigError(f"{where}: invalid choice {_show(value)} (choose from {', '.join(map(str, action.choices))})")
    return result


def _show(value: Any) -> str:
    """A value as it reads in YAML: ``'abc'``, ``12``, ``true``, ``[1, 2]``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return repr(value)
