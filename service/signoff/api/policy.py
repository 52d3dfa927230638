"""PolicyService: GetBundle, ReloadBundle (admin only), GetInsights, GetAnalysis."""

from __future__ import annotations

from signoff import pb
from signoff.api.methods import Method
from signoff.app.analysis_cache import MAX_WAIT_MS
from signoff.app.decisions import Signoff, require_role
from signoff.app.insights import get_insights
from signoff.app.reviews.desk import Identity
from signoff.errors import InvalidArgument

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

    async def analysis(who: Identity, req: P.GetAnalysisRequest) -> P.BundleAnalysis:
        # What the rules of the bundle can decide: shown beside the insights, to the same roles.
        require_role(who, "admin", "auditor")
        if not 0 <= req.wait_ms <= MAX_WAIT_MS:
            raise InvalidArgument("wait_ms", f"must be 0 to {MAX_WAIT_MS}, not {req.wait_ms}")
        return await app.analyses.get(app.bundle, req.wait_ms / 1000)

    return [
        Method(SERVICE, "GetInsights", P.GetInsightsRequest, P.Insights, insights),
        Method(SERVICE, "GetAnalysis", P.GetAnalysisRequest, P.BundleAnalysis, analysis),
        Method(SERVICE, "GetBundle", P.GetBundleRequest, P.BundleInfo, get_bundle),
        Method(
            SERVICE, "ReloadBundle", P.ReloadBundleRequest, P.ReloadBundleResponse, reload_bundle
        ),
    ]
