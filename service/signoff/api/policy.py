"""PolicyService: GetBundle, ReloadBundle (admin only)."""

from __future__ import annotations

from signoff import pb
from signoff.api.errors import parse
from signoff.api.methods import Method
from signoff.app import Signoff, require_role
from signoff.review_app import Identity

SERVICE = "signoff.v1.PolicyService"
P = pb.policy


def methods(app: Signoff) -> list[Method]:
    """The PolicyService methods."""

    async def get_bundle(who: Identity, data: bytes) -> P.BundleInfo:
        require_role(who, "admin", "auditor")
        parse(P.GetBundleRequest, data)
        return app.bundle_info()

    async def reload_bundle(who: Identity, data: bytes) -> P.ReloadBundleResponse:
        require_role(who, "admin")
        parse(P.ReloadBundleRequest, data)
        accepted, errs = await app.reload(actor=who.id)
        out = P.ReloadBundleResponse(accepted=accepted, bundle=app.bundle_info())
        for e in errs:
            out.errors.add(
                file=e.file, line=e.line, column=e.column, rule=e.rule or "", message=e.message
            )
        return out

    return [
        Method(SERVICE, "GetBundle", P.GetBundleRequest, P.BundleInfo, get_bundle),
        Method(
            SERVICE, "ReloadBundle", P.ReloadBundleRequest, P.ReloadBundleResponse, reload_bundle
        ),
    ]
