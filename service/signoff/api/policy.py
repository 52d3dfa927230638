"""PolicyService: GetBundle, ReloadBundle (admin only), GetInsights."""

from __future__ import annotations

from signoff import pb
from signoff.api.methods import Method
from signoff.app.decisions import Signoff, require_role
from signoff.app.insights import get_insights
from signoff.app.reviews.desk import Identity

SERVICE = "signoff.v1.PolicyService"
P = pb.policy


def methods(app: Signoff) -> list[Method]:
    """The PolicyService methods."""

    async def get_bundle(who: Identity, req: P.GetBundleRequest) -> P.BundleInfo:
        require_role(who, "admin", "auditor")
        return app.bundle_info()

    async def reload_bundle(who: Identity, req: P.ReloadBundleRequest) -> P.ReloadBundleResponse:
        require_role(who, "admin")
        accepted, errs = await app.reload(actor=who.id)
        out = P.ReloadBundleResponse(accepted=accepted, bundle=app.bundle_info())
        for e in errs:
            out.errors.add(
                file=e.file, line=e.line, column=e.column, rule=e.rule or "", message=e.message
            )
        return out

    async def insights(who: Identity, req: P.GetInsightsRequest) -> P.Insights:
        # Figures over every group's reviews: the roles that already see the whole log.
        require_role(who, "admin", "auditor")
        return await get_insights(app.store, req, app.clock.now())

    return [
        Method(SERVICE, "GetInsights", P.GetInsightsRequest, P.Insights, insights),
        Method(SERVICE, "GetBundle", P.GetBundleRequest, P.BundleInfo, get_bundle),
        Method(
            SERVICE, "ReloadBundle", P.ReloadBundleRequest, P.ReloadBundleResponse, reload_bundle
        ),
    ]
