"""The console's audit type filter offers every entry type the server writes, and no other."""

from __future__ import annotations

import json
import re
from pathlib import Path

from signoff.core.audit import ENTRY_TYPES

AUDIT_PAGE = Path(__file__).resolve().parents[2] / "clients/console/src/views/AuditPage.tsx"


def console_types(source: str) -> list[str]:
    """The string literals of `const TYPES = [...]` in the audit page's source."""
    found = re.search(r"^const TYPES = (\[[^\]]*\]);", source, re.MULTILINE)
    assert found, "AuditPage.tsx has no `const TYPES = [...]`"
    return json.loads(re.sub(r",\s*\]", "]", found[1]))  # a trailing comma is not JSON


def test_the_audit_page_filters_by_every_entry_type():
    types = console_types(AUDIT_PAGE.read_text())
    assert len(types) == len(set(types))
    assert set(types) == ENTRY_TYPES


def test_a_type_missing_from_the_console_is_seen():
    source = AUDIT_PAGE.read_text().replace('  "grant.revoked",\n', "")
    assert ENTRY_TYPES - set(console_types(source)) == {"grant.revoked"}
