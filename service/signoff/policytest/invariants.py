"""Invariants of a case file: properties every request must have, compiled at load.

`policy analyze` proves them with a solver (signoff.analysis); here they are only checked
and compiled, so an invariant whose `when` does not parse or type-check is a load error at
its `file:line:column`, like any other mistake in the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from yaml.nodes import Node, SequenceNode

from signoff.core.decide import DefaultDecision
from signoff.policy.cel import CelError, Program, compile
from signoff.policytest.model import CaseFile, Decision
from signoff.yamlpos import child


@dataclass(frozen=True)
class LoadedInvariant:
    """An invariant ready to prove: its compiled `when` and the file's default decision."""

    file: str
    name: str
    line: int
    kind: Literal["never", "always"]
    outcome: Decision
    reviewers: str | None
    when: str
    program: Program
    default: DefaultDecision


def load_invariants(
    rel: str, root: Node, model: CaseFile, default: DefaultDecision | None
) -> tuple[list[LoadedInvariant], list[tuple[Node | None, str, str]]]:
    """The file's invariants, and (node, invariant, message) for each that does not compile."""
    nodes = child(root, "invariants")
    items = nodes.value if isinstance(nodes, SequenceNode) else []
    loaded: list[LoadedInvariant] = []
    errors: list[tuple[Node | None, str, str]] = []
    seen: set[str] = set()
    for invariant, node in zip(model.invariants, items, strict=True):
        spec = invariant.property
        when_node = child(child(node, invariant.kind), "when")
        if invariant.name in seen:
            errors.append((child(node, "name"), invariant.name, "duplicate invariant name"))
        seen.add(invariant.name)
        try:
            program = compile(spec.when)
        except CelError as exc:
            errors.append(
                (when_node, invariant.name, f"when: {exc.line}:{exc.column}: {exc.message}")
            )
            continue
        if program.return_type not in ("BOOL", "DYN"):
            errors.append(
                (
                    when_node,
                    invariant.name,
                    f"when: evaluates to {program.return_type.lower()}, not bool",
                )
            )
            continue
        loaded.append(
            LoadedInvariant(
                file=rel,
                name=invariant.name,
                line=node.start_mark.line + 1,
                kind=invariant.kind,
                outcome=spec.outcome,
                reviewers=spec.reviewers,
                when=spec.when,
                program=program,
                default=default or DefaultDecision(),
            )
        )
    return loaded, errors
