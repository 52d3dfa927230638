"""Signoff: a human-in-the-loop decision service for automated agents."""

__version__ = "0.1.0"
