"""Signoff: a human-in-the-loop decision service for automated agents."""

__version__ = "0.2.0"
