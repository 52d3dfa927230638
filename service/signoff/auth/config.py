"""PLACEHOLDER until the authentication module lands."""

from __future__ import annotations

from pydantic import BaseModel


class AuthSettings(BaseModel):
    """Authentication settings (none yet)."""
