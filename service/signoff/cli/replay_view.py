"""Rendering of `signoff policy replay`: the summary, the groups table, examples, errors."""

from __future__ import annotations

from signoff.app.replay import Example, ReplayReport
from signoff.cli.output import compact, plain, table, truncate

PARAMS_WIDTH = 48


def report(r: ReplayReport, policies: str) -> str:
    """The replay report as text."""
    lines = [f"replayed {r.total} decision(s) against {policies} (version {r.bundle_version})"]
    share = f" ({100 * r.changed / r.total:.1f}%)" if r.total else ""
    lines.append(f"{r.changed} would change outcome{share}")
    if r.rule_changed:
        lines.append(f"{r.rule_changed} would keep the outcome but be decided by another rule")
    if r.redacted:
        lines.append(
            f"{r.redacted} carried redacted values: rules reading them replay on [REDACTED]"
        )
    if r.groups:
        rows = [
            (g.old_outcome, g.new_outcome, g.new_rule, str(g.count), "yes" if g.changed else "")
            for g in r.groups
        ]
        lines += ["", table(("old outcome", "new outcome", "new rule", "count", "changed"), rows)]
    changed = [g for g in r.groups if g.changed and g.examples]
    if changed:
        lines += ["", "examples"]
        for g in changed:
            lines.append(f"  {g.old_outcome} -> {g.new_outcome} ({g.new_rule}): {g.count}")
            lines += [_example(e, f"was {e.old_rule}") for e in g.examples]
    if r.shadow:
        lines += ["", "shadow rules (would have decided; they never decide)"]
        for s in r.shadow:
            lines.append(f"  ~ {s.rule} would have decided {s.would_decide}: {s.count}")
            lines += [_example(e, f"decided by {e.new_rule}") for e in s.examples]
    if r.errors:
        lines += ["", "rule errors under the new policies"]
        for e in r.errors:
            lines.append(f"  ! {e.rule}: {e.count}  {truncate(e.error, 80)}")
            lines.append(f"      e.g. {', '.join(e.examples)}" if e.examples else "")
    if r.unreadable:
        count = sum(e.count for e in r.unreadable)
        lines += ["", f"{count} decision entr(ies) could not be replayed"]
        for e in r.unreadable:
            ids = f"  e.g. {', '.join(e.examples)}" if e.examples else ""
            lines.append(f"  {e.count}  {truncate(e.error, 80)}{ids}")
    if len(r.old_versions) > 1:
        lines += ["", "recorded under policy versions"]
        lines += [f"  {v or '(none)'}: {n}" for v, n in sorted(r.old_versions.items())]
    return "\n".join(line for line in lines if line is not None).rstrip()


def _example(e: Example, note: str) -> str:
    params = truncate(compact(plain(e.params)), PARAMS_WIDTH)
    return f"    {e.decision_id}  {e.action}  {params}  ({note})"
