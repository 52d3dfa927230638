"""The request as solver variables: message fields, and the JSON values under Structs.

Message fields are typed by the proto: strings are z3 strings, repeated strings z3
sequences of strings. Everything under a Struct (`action.params`, `*.attributes`,
`context`) is untyped JSON, so each path a policy reads gets its own group of variables
(the choice documented in docs/policies.md, "Proving properties of your policies"):
whether it is present, its JSON kind, and one typed value per kind (a number, a string, a
bool, a size). Constraints tie a path to its parent (a key is present only under an
object), so every model of the solver is a request that JSON can carry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import z3

if TYPE_CHECKING:
    from signoff.policy.params import ParamSchema

NULL, BOOL, NUM, STR, LIST, OBJ = range(6)
KIND_NAMES = {NULL: "null", BOOL: "bool", NUM: "number", STR: "string", LIST: "list", OBJ: "object"}
STRING_FIELDS = {
    ("action", "name"),
    ("principal", "id"),
    ("principal", "kind"),
    ("principal", "on_behalf_of"),
    ("principal", "claimed", "kind"),
    ("principal", "claimed", "on_behalf_of"),
    ("resource", "kind"),
    ("resource", "id"),
}
LIST_FIELDS = {
    ("principal", "roles"),
    ("principal", "tags"),
    ("principal", "claimed", "roles"),
    ("principal", "claimed", "tags"),
}
STRUCT_ROOTS = {
    ("action", "params"),
    ("principal", "attributes"),
    ("principal", "claimed", "attributes"),
    ("resource", "attributes"),
    ("context",),
}
MESSAGES = {("action",), ("principal",), ("principal", "claimed"), ("resource",)}
Path = tuple[str, ...]
STRINGS = z3.SeqSort(z3.StringSort())


@dataclass
class Json:
    """The variables of one path under a Struct."""

    present: z3.BoolRef
    kind: z3.ArithRef
    num: z3.ArithRef
    str: z3.SeqRef
    bool: z3.BoolRef
    size: z3.ArithRef
    # double() of a string parses it: the parsed number is not tied to the text (a free
    # variable, one per path so every double() of it agrees), nor is whether it parses.
    parsed: z3.ArithRef
    unparsable: z3.BoolRef


@dataclass
class Symbols:
    """Every variable created so far (paths appear as the translator meets them)."""

    strings: dict[Path, z3.SeqRef] = field(default_factory=dict)
    lists: dict[Path, z3.SeqRef] = field(default_factory=dict)
    json: dict[Path, Json] = field(default_factory=dict)
    fresh_count: int = 0
    opaques: dict[str, z3.ExprRef] = field(default_factory=dict)
    parsed: set[Path] = field(default_factory=set)  # paths read with double() or int()
    # Paths read with int(): whether int() refuses the text (request.py writes "12.0").
    int_read: dict[Path, z3.BoolRef] = field(default_factory=dict)
    # The bundle's action schemas: requests that break one are refused (analysis/schema.py).
    schemas: tuple[ParamSchema, ...] = ()

    def string(self, path: Path) -> z3.SeqRef:
        """The variable of a string field."""
        if path not in self.strings:
            self.strings[path] = z3.String(".".join(path))
        return self.strings[path]

    def strlist(self, path: Path) -> z3.SeqRef:
        """The variable of a repeated string field."""
        if path not in self.lists:
            self.lists[path] = z3.Const(".".join(path), STRINGS)
        return self.lists[path]

    def value(self, path: Path) -> Json:
        """The variables of a JSON value under a Struct (its parents' too)."""
        if path not in self.json:
            name = ".".join(path)
            self.json[path] = Json(
                z3.Bool(f"{name}#present"),
                z3.Int(f"{name}#kind"),
                z3.Real(f"{name}#num"),
                z3.String(f"{name}#str"),
                z3.Bool(f"{name}#bool"),
                z3.Int(f"{name}#size"),
                z3.Real(f"{name}#parsed"),
                z3.Bool(f"{name}#unparsable"),
            )
            parent = path[:-1]
            if parent not in STRUCT_ROOTS:
                self.value(parent)
        return self.json[path]

    def fresh(self, sort: z3.SortRef, what: str) -> z3.ExprRef:
        """An unconstrained variable: a value the analysis does not model exactly."""
        self.fresh_count += 1
        return z3.Const(f"{what}#{self.fresh_count}", sort)

    def opaque(self, sort: z3.SortRef, what: str, key: str) -> z3.ExprRef:
        """Like fresh, but the same variable for the same expression: an expression outside
        the subset has one value per request, whichever rule (or bundle, in a diff) has it."""
        if key not in self.opaques:
            self.opaques[key] = self.fresh(sort, what)
        return self.opaques[key]

    def axioms(self) -> list[z3.BoolRef]:
        """What every request satisfies: JSON shapes, and a valid action name."""
        out: list[z3.BoolRef] = []
        for path, v in self.json.items():
            out += [v.kind >= NULL, v.kind <= OBJ, v.size >= 0]
            out.append(z3.Implies(v.kind == STR, v.size == z3.Length(v.str)))
            parent = path[:-1]
            if parent not in STRUCT_ROOTS:
                p = self.json[parent]
                out.append(z3.Implies(v.present, z3.And(p.present, p.kind == OBJ)))
        name = self.string(("action", "name"))
        out.append(z3.InRe(name, action_name_re()))
        return out


def action_name_re() -> z3.ReRef:
    """Action names (model.ACTION_RE): dot-separated segments of letters, digits, _ and -."""
    segment = z3.Plus(
        z3.Union(z3.Range("a", "z"), z3.Range("A", "Z"), z3.Range("0", "9"), z3.Re("_"), z3.Re("-"))
    )
    return z3.Concat(segment, z3.Star(z3.Concat(z3.Re("."), segment)))


def glob_re(glob: str) -> z3.ReRef:
    """An action glob (`refund.*`: `*` is any run of characters) as a regular expression."""
    parts: list[z3.ReRef] = []
    for i, literal in enumerate(glob.split("*")):
        if i:
            parts.append(z3.Star(z3.AllChar(z3.ReSort(z3.StringSort()))))
        if literal:
            parts.append(z3.Re(literal))
    if not parts:
        return z3.Re("")
    return parts[0] if len(parts) == 1 else z3.Concat(*parts)
