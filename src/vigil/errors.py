"""The root of every error Vigil raises on purpose.

Domains subclass :class:`VigilError`; boundaries (CLI, API) translate them into exit codes or
problem+json in one place.
"""

from __future__ import annotations


class VigilError(Exception):
    """Root of all Vigil errors."""


class ConfigurationError(VigilError):
    """Settings or a configuration file are invalid."""
