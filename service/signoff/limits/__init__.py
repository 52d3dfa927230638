"""Back-pressure: concurrent calls and streams, per-identity rates (README, "Limits")."""

from signoff.limits.config import LimitSettings, RateSettings
from signoff.limits.limiter import Limiter

__all__ = ["LimitSettings", "Limiter", "RateSettings"]
