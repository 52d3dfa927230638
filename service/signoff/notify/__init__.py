"""Review notifications: webhooks per reviewer group, signed, retried, never in the way.

Wiring: build one `Notifier(settings.notify)`, `await start()` it with the server, call
`publish(event, review)` after a review change is durable (events: "review.opened",
"review.resolved", "review.escalated"; `AUDIT_TO_EVENT` maps audit entry types to them),
and `await close()` on shutdown. Receivers verify deliveries as `signing` describes.
"""

from signoff.notify.config import EVENTS, Event, NotifySettings, WebhookSettings
from signoff.notify.payloads import AUDIT_TO_EVENT
from signoff.notify.signing import sign, verify_signature
from signoff.notify.webhooks import Notifier

__all__ = [
    "AUDIT_TO_EVENT",
    "EVENTS",
    "Event",
    "Notifier",
    "NotifySettings",
    "WebhookSettings",
    "sign",
    "verify_signature",
]
