"""What a server is made of, built from settings: the store, the application and its desks,
the principals directory, the checkpoint signer and the authenticator. `server` runs what
these build; `workers` and `doctor` build the same parts without running a server."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from signoff import pb
from signoff.api.errors import Authenticator
from signoff.app.audit.checkpoints import Signer
from signoff.app.decisions import Signoff
from signoff.app.receipts import ReceiptIssuer
from signoff.app.reviews.desk import Publish, ReviewDesk
from signoff.auth import (
    AuthConfigError,
    DevAuthenticator,
    Directory,
    build_authenticator,
    build_directory,
)
from signoff.core import checkpoints
from signoff.core.decide import DefaultDecision
from signoff.core.validate import Limits
from signoff.ids import Clock, IdFactory, SystemClock, new_id
from signoff.logs import event
from signoff.net import is_loopback
from signoff.notify import Notifier
from signoff.serving import keyfiles
from signoff.settings.model import ConfigError, Settings
from signoff.store.base import Store
from signoff.store.sqlite.store import SqliteStore
from signoff.telemetry.recorder import Telemetry

if TYPE_CHECKING:  # slack_sdk is an extra: only a server with notify.slack loads it
    from signoff.notify.slack_app import SlackPoster

log = logging.getLogger("signoff.server")


def build_store(settings: Settings, clock: Clock) -> Store:
    """The store the database URL names."""
    if settings.is_postgres:
        # Imported here: a SQLite deployment never loads the PostgreSQL driver.
        from signoff.store.postgres.store import PostgresStore

        return PostgresStore(
            settings.db,
            clock,
            max_batch=settings.store.commit_batch,
            commit_linger=settings.store.commit_linger,
        )
    return SqliteStore(
        settings.sqlite_path,
        clock,
        max_batch=settings.store.commit_batch,
        commit_linger=settings.store.commit_linger,
    )


def build_app(
    settings: Settings,
    clock: Clock | None = None,
    ids: IdFactory = new_id,
    notifier: Notifier | None = None,
    telemetry: Telemetry | None = None,
    signer: Signer | None = None,
    slack: SlackPoster | None = None,
) -> Signoff:
    """Build the application and its store from settings; `signer` signs receipts; review
    changes go to `notifier` (webhooks) and `slack` (the Slack app's messages)."""
    clock = clock or SystemClock()
    store = build_store(settings, clock)
    if slack is not None:  # which message shows which review is shared through the store
        slack.use_store(store, clock.now)
    page_bytes, entry_bytes = settings.limits.fields.budgets(settings.max_message_bytes)
    limits = Limits(
        page_bytes=page_bytes,
        entry_bytes=entry_bytes,
        max_params_bytes=settings.max_params_bytes,
        max_context_bytes=settings.max_context_bytes,
        max_depth=settings.max_depth,
        max_batch=settings.max_batch,
        fields=settings.limits.fields,
    )
    default = DefaultDecision(
        decision=settings.default_decision, reviewer_group=settings.default_reviewer_group
    )
    receipts = (
        ReceiptIssuer(signer.key, settings.receipts.ttl)
        if signer is not None and settings.receipts.enabled
        else None
    )
    desk = ReviewDesk(
        store,
        clock,
        limits,
        publish=_fan_out([p.publish for p in (notifier, slack) if p is not None]),
        recheck_s=settings.watch_recheck,
        telemetry=telemetry,
        receipts=receipts,
    )
    return Signoff(
        policies=settings.policies,
        store=store,
        clock=clock,
        new_id=ids,
        limits=limits,
        default=default,
        review_timeout=settings.review_timeout,
        desk=desk,
        telemetry=telemetry,
        receipts=receipts,
        grant_settings=settings.grants,
        directory=directory_for(settings),
        denial_audit=settings.limits.denials,
        analysis_timeout=settings.analysis_timeout,
    )


def _fan_out(publishers: list[Publish]) -> Publish | None:
    """One publish hook calling each of `publishers` (each never raises, never blocks)."""
    if len(publishers) <= 1:
        return publishers[0] if publishers else None

    def publish(kind: str, review: pb.review.Review) -> None:
        for p in publishers:
            p(kind, review)

    return publish


def directory_for(settings: Settings) -> Directory:
    """The principal facts the deployment vouches for (the tokens file's `principals`)."""
    try:
        directory = build_directory(settings.auth)
    except AuthConfigError as exc:
        raise ConfigError(f"auth: {exc}".replace("\n", "; ")) from None
    if directory.trust_claims:
        # Said at every start: policies then read the caller's word as fact.
        why = (
            "legacy auth.trust_principal_claims"
            if settings.auth.trust_principal_claims
            else ("dev mode, nothing is authenticated")
        )
        event(
            log,
            "auth.claims_trusted",
            logging.WARNING,
            warning=f"{why}: principal kind, roles, tags, attributes and on_behalf_of are "
            "taken as the caller sends them; any caller can claim any of them",
        )
    else:
        event(log, "auth.principals", principals=len(directory))
    return directory


def signer_for(settings: Settings, dev_mode: bool) -> Signer:
    """Load (or, in dev mode or when asked, create) the checkpoint signing key, with the
    public keys `audit.trusted_keys` adds to its own."""
    place = keyfiles.signing_key_place(settings)
    try:
        key = checkpoints.load_or_create_key(
            place.path, create=dev_mode or settings.audit.create_key
        )
    except checkpoints.SigningKeyError as exc:
        raise ConfigError(
            f"audit.signing_key: {exc}; set audit.create_key to generate one"
        ) from None
    if exposed := keyfiles.exposures(place.path, settings):
        event(
            log,
            "audit signing key in an exposed place",
            logging.WARNING,
            path=str(place.path),
            where="; ".join(exposed),
            hint=keyfiles.move_hint(place, settings),
        )
    return Signer(key, tuple(keyfiles.trusted_public_keys(settings)))


def authenticator_for(settings: Settings, *, announce: bool = True) -> Authenticator:
    """The configured authenticator, or dev mode (loopback only) when none is configured;
    `announce` logs dev mode's warning (off for a check that builds it once more)."""
    try:
        configured = build_authenticator(settings.auth)
    except AuthConfigError as exc:
        raise ConfigError(f"auth: {exc}".replace("\n", "; ")) from None
    if configured is not None:
        return configured
    # The console port serves the same API, so it is held to the same rule.
    for key, address, host in (
        ("listen", settings.listen, settings.listen_host),
        ("http_listen", settings.http_listen, settings.http_listen_host),
    ):
        if address and not is_loopback(host):
            raise ConfigError(
                f"{key} {address}: with no authentication configured (dev mode) the "
                "server only listens on loopback; configure auth.tokens_file or auth.jwt"
            )
    if announce:
        event(
            log,
            "auth.dev_mode",
            logging.WARNING,
            warning="NO AUTHENTICATION: every caller may act as anyone with every role; "
            "for local development only",
        )
    return DevAuthenticator()
