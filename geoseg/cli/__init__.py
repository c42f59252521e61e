"""Thin command-line commands: parse, validate, call the library, map errors to exit codes.

One module per command (``geoseg.cli.tile`` ...), each with ``build_parser()`` (a
:class:`~geoseg.cli.config.CommandParser`), ``run(args)`` and ``main``; shared options and the
error/exit-code mapping live in :mod:`geoseg.cli.common`, the YAML layer (``--config`` files and
pipeline step sections, checked with the flags' own types and choices) in :mod:`geoseg.cli.config`.
``python -m geoseg.<command>`` and the ``geoseg`` console script (``geoseg.__main__``) both land here.
"""
