"""Rendering of `signoff explain`: the outcome, the deciding step, then a tree per file."""

from __future__ import annotations

import json

from google.protobuf import json_format

from signoff import pb
from signoff.cli.output import plain
from signoff.core.cel_values import is_bytes_literal

MATCHED, NOT_MATCHED, ERROR, SHADOW = "✔", "✘", "!", "~"


def tree(x: pb.decision.Explanation) -> str:
    """The explanation as a readable tree: outcome, deciding step, files, variables, rules."""
    d = x.decision
    outcome = pb.common.Outcome.Name(d.outcome).removeprefix("OUTCOME_")
    head = outcome + (f" by {d.reviewer_group}" if d.reviewer_group else "")
    lines = [f"{head}: {d.reason}", f"decided by: {x.decided_by}"]
    if d.policy_version:
        lines.append(f"policy version: {d.policy_version}")
    if not x.applicable_files:
        lines.append("no policy file applies to this action")
    files = {r.file: r.policy for r in x.rules}
    shown: set[str] = set()
    for file in x.applicable_files:
        policy = files.get(file, "")
        lines.append("")
        lines.append(f"{file}" + (f" (policy {policy})" if policy else ""))
        lines += _variables(x, policy, shown)
        lines += [line for r in x.rules if r.file == file for line in _rule(r)]
    rest = [v for v in x.variables if v.policy not in shown]
    if rest:
        lines += ["", "variables"] + [f"  {v.policy}.{_variable(v)}" for v in rest]
    return "\n".join(lines)


def _variables(x: pb.decision.Explanation, policy: str, shown: set[str]) -> list[str]:
    found = [v for v in x.variables if v.policy == policy]
    if not policy or not found:
        return []
    shown.add(policy)
    return ["  variables"] + [f"    {_variable(v)}" for v in found]


def _variable(v: pb.decision.VariableTrace) -> str:
    if v.error:
        return f"{v.name}  {ERROR} error: {_flat(v.error)}"
    value = plain(json_format.MessageToDict(v.value)) if v.HasField("value") else None
    if isinstance(value, str) and is_bytes_literal(value):
        return f"{v.name} = {value}"  # bytes, written as CEL writes them (core.cel_values)
    return f"{v.name} = {json.dumps(value, ensure_ascii=False)}"


def _rule(r: pb.decision.RuleTrace) -> list[str]:
    decision = _decision(r.decision)
    if r.error and not r.matched:
        mark, note = ERROR, f"{decision}, failed to evaluate"
    elif r.shadow and r.matched:
        mark, note = SHADOW, f"shadow: would have decided {decision}"
    elif r.matched:
        mark, note = MATCHED, decision
    else:
        mark, note = NOT_MATCHED, decision + (" (shadow)" if r.shadow else "")
    lines = [f"  {mark} {r.rule}  {r.file}:{r.line}  {note}", f"      when    {_flat(r.when)}"]
    if r.error:
        lines.append(f"      error   {_flat(r.error)}")
    effect = _decision(r.effect)
    if r.error and not r.matched:
        lines.append(f"      effect  {effect or 'none (on_error: ignore)'}")
    if r.reason:
        lines.append(f"      reason  {_flat(r.reason)}")
    return lines


def _decision(value: int) -> str:
    name = pb.common.RuleDecision.Name(value).removeprefix("RULE_DECISION_")
    return "" if name == "UNSPECIFIED" else name.lower()


def _flat(text: str) -> str:
    # `when` texts are often folded YAML over several lines; one line keeps the tree aligned.
    return " ".join(text.split())
