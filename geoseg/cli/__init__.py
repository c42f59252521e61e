"""Thin command-line commands: parse, validate, call the library, map errors to exit codes.

One module per command (``geoseg.cli.tile`` ...); shared options, ``--config`` merging and the
error/exit-code mapping live in :mod:`geoseg.cli.common`. ``python -m geoseg.<command>`` and the
``geoseg`` console script (``geoseg.__main__``) both land here.
"""
