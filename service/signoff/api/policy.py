"""PolicyService: GetBundle, ReloadBundle (admin only)."""

from __future__ import annotations

import grpc

from signoff import pb
from signoff.api.errors import Ctx, Guard, parse, unary_handler
from signoff.app import Signoff, require_role
from signoff.review_app import Identity

SERVICE = "signoff.v1.PolicyService"


def handler(app: Signoff, guard: Guard) -> grpc.GenericRpcHandler:
    """The PolicyService handlers."""

    async def get_bundle(who: Identity, data: bytes, _: Ctx) -> pb.policy.BundleInfo:
        require_role(who, "admin", "auditor")
        parse(pb.policy.GetBundleRequest, data)
        return app.bundle_info()

    async def reload_bundle(who: Identity, data: bytes, _: Ctx) -> pb.policy.ReloadBundleResponse:
        require_role(who, "admin")
        parse(pb.policy.ReloadBundleRequest, data)
        accepted, errs = await app.reload(actor=who.id)
        out = pb.policy.ReloadBundleResponse(accepted=accepted, bundle=app.bundle_info())
        for e in errs:
            out.errors.add(
                file=e.file, line=e.line, column=e.column, rule=e.rule or "", message=e.message
            )
        return out

    methods = {
        "GetBundle": (get_bundle, pb.policy.BundleInfo),
        "ReloadBundle": (reload_bundle, pb.policy.ReloadBundleResponse),
    }
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            name: unary_handler(guard.unary(f"{SERVICE}/{name}", fn), out)
            for name, (fn, out) in methods.items()
        },
    )
