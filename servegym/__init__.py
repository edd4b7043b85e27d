"""servegym: a reinforcement-learning gym for resource control in AI serving."""

from ._version import __version__
from .registration import register_envs

register_envs()

__all__ = ["__version__", "register_envs"]
