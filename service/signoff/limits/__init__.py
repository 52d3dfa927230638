"""Back-pressure: concurrent calls and streams, per-identity rates (docs/operators.md,
"Limits and back-pressure")."""

from signoff.limits.config import LimitSettings, RateSettings
from signoff.limits.limiter import Limiter

__all__ = ["LimitSettings", "Limiter", "RateSettings"]
