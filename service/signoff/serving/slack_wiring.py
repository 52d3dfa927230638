"""The Slack app's parts, built only when `notify.slack` is configured: slack_sdk is an
extra (`pip install 'signoff[slack]'`), and a server without Slack never imports it."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from signoff.app.decisions import Signoff
from signoff.serving.http import PostHandler
from signoff.settings.model import ConfigError, Settings

if TYPE_CHECKING:
    from signoff.notify.slack_app import SlackPoster


def poster(settings: Settings) -> SlackPoster | None:
    """The poster of review messages, or None without `notify.slack`."""
    if settings.notify.slack is None:
        return None
    try:
        from signoff.notify.slack_app import SlackPoster
    except ImportError as exc:
        raise ConfigError(
            f"notify.slack: needs the slack extra (pip install 'signoff[slack]'): {exc}"
        ) from None
    # At DEBUG slack_sdk logs each request's JSON body and each answer: review params (even
    # shown ones) do not belong in logs (docs/operators.md, logs are events).
    logging.getLogger("slack_sdk").setLevel(logging.WARNING)
    return SlackPoster(settings.notify)


def endpoints(
    settings: Settings, slack: SlackPoster | None, app: Signoff
) -> dict[str, PostHandler]:
    """The interactivity endpoint on the HTTP port, acting through the review desk."""
    if slack is None:
        return {}
    from signoff.notify.slack_actions import SlackActions, slack_directory
    from signoff.notify.slack_config import INTERACTIVITY_PATH

    try:
        actions = SlackActions(
            slack.app,
            slack,
            app.reviews.submit,
            app.reviews.get,
            slack_directory(settings.auth.tokens_file),
            app.store,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return {INTERACTIVITY_PATH: actions.handle}
