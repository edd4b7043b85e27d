"""servegym: a reinforcement-learning gym for resource control in AI serving."""

from ._version import __version__

__all__ = ["__version__"]
