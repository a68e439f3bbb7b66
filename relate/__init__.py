"""Relate Mail: a self-hosted mail server suite."""

__version__ = "0.1.0"
