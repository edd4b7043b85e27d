"""The ``servegym`` command line: the top layer, imported by nothing else in the package."""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
