"""The built-in configuration used when ``crossroads serve`` gets no ``-c``."""

from __future__ import annotations

from crossroads.config import Config
from crossroads.exceptions import ConfigError


def default_config() -> Config:
    """The embedded default config."""
    raise ConfigError(
        [("", "no config given: pass -c path/to/config.yaml (see examples/configs/)")]
    )
