"""Vigil: self-hosted security detection and response."""

__version__ = "0.1.0"
