"""Screen: which actions the policies deny whatever their params (policy/screen.py)."""

from __future__ import annotations

import re

from signoff import pb

# Evaluate's own principal check: Screen must see the principal Evaluate would.
from signoff.app.decisions import Signoff, check_principal, require_role
from signoff.app.reviews.desk import Identity
from signoff.core.validate import validate_batch
from signoff.errors import InvalidArgument
from signoff.policy.screen import denied_regardless

_CONTEXT_PATH = re.compile(r"^context(\.[A-Za-z0-9_-]+)+$")
MAX_VARYING = 32


def screen(
    app: Signoff, who: Identity, req: pb.decision.ScreenRequest
) -> pb.decision.ScreenResponse:
    """The screening of each request, with the bundle in force; stores nothing."""
    requests = list(req.requests)
    validate_batch(requests, app.limits)
    require_role(who, "agent")
    if len(req.varying) > MAX_VARYING:
        raise InvalidArgument("varying", f"at most {MAX_VARYING} paths")
    for i, path in enumerate(req.varying):
        if not _CONTEXT_PATH.match(path):
            raise InvalidArgument(f"varying[{i}]", f"{path!r} is no dotted path under context.")
    for i, r in enumerate(requests):
        if r.action.params.fields:
            raise InvalidArgument(
                f"requests[{i}].action.params",
                "must be empty: Screen answers for every params, it reads none",
            )
        check_principal(who, r)
        app.directory.vouch(who, r.principal, prefix=f"requests[{i}].")
    bundle = app.bundle  # one bundle for all the answers, which carry its version
    now = app.clock.now()
    out = pb.decision.ScreenResponse(policy_version=bundle.version)
    for r in requests:
        found = denied_regardless(bundle, r, req.varying, now)
        if found is None:
            out.results.add(denied=False)
        else:
            out.results.add(denied=True, reason=found.reason, rule=found.where)
    return out
