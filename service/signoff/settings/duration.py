"""`Duration`: a settings duration that also takes plain seconds from the environment."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import BeforeValidator


def _seconds(value: Any) -> Any:
    # pydantic takes 3600 from YAML but refuses the string "3600" (all the environment
    # gives), which the configuration reference promises; ISO 8601 text passes through.
    if isinstance(value, str):
        try:
            return dt.timedelta(seconds=float(value))
        except (ValueError, OverflowError):
            return value
    return value


Duration = Annotated[dt.timedelta, BeforeValidator(_seconds)]
