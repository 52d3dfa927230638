"""Find and load `*_test.yaml` case files: YAML with positions -> checked, runnable cases.

Every problem in a file is collected (schema, request, duplicate names) and reported at its
YAML position as `file:line:column: case 'name': message`; a file with any problem runs
none of its cases, like a policy bundle that is rejected whole.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import json_format
from pydantic import ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from signoff import pb
from signoff.core.decide import DefaultDecision
from signoff.core.validate import Limits, validate_request
from signoff.errors import InvalidArgument
from signoff.policytest.invariants import LoadedInvariant, load_invariants
from signoff.policytest.model import CaseFile, Expect
from signoff.yamlpos import child, dotted, node_at

TEST_SUFFIXES = ("_test.yaml", "_test.yml")
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_FAILED_FIELD = re.compile(r"Failed to parse (\w+) field: ")
_NO_FIELD = re.compile(r'has no field named "([^"]+)"')
_AVAILABLE = re.compile(r'Available Fields\(except extensions\): "\[(.*)\]"')
_AT = re.compile(r" at \"?ActionRequest((?:\.[^ .\"]+)*)\.?\"?\.*$")


@dataclass(frozen=True)
class CaseError:
    """One problem in a case file, at a 1-based line and column of that file."""

    file: str
    line: int
    column: int
    case: str
    message: str

    def __str__(self) -> str:
        label = f"case '{self.case}': " if self.case else ""
        if self.case.startswith("invariant "):
            label = f"invariant '{self.case.removeprefix('invariant ')}': "
        return f"{self.file}:{self.line}:{self.column}: {label}{self.message}"


@dataclass(frozen=True)
class LoadedCase:
    """A case ready to run: a parsed, valid request and what to expect."""

    file: str
    name: str
    line: int
    request: pb.common.ActionRequest
    expect: Expect
    now: dt.datetime | None
    default: DefaultDecision | None


@dataclass(frozen=True)
class CaseFileResult:
    """One case file: its cases when it is sound, else every error found in it."""

    file: str
    cases: tuple[LoadedCase, ...]
    errors: tuple[CaseError, ...]
    invariants: tuple[LoadedInvariant, ...] = ()


def case_files(directory: Path) -> list[tuple[str, Path]]:
    """(relative posix path, path) of every case file under `directory`, sorted by path."""
    found = []
    for path in directory.rglob("*"):
        rel = path.relative_to(directory)
        # Hidden directories (.git, editor state) never hold cases.
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        if path.name.endswith(TEST_SUFFIXES):
            found.append((rel.as_posix(), path))
    return sorted(found)


def load_cases(directory: Path | str) -> list[CaseFileResult]:
    """Load every case file under `directory`, in path order."""
    return [load_case_file(rel, path.read_bytes()) for rel, path in case_files(Path(directory))]


def load_case_file(rel: str, raw: bytes) -> CaseFileResult:
    """Parse and check one case file's bytes; `rel` is the name used in errors."""
    source = _Source(rel)
    cases = source.load(raw)
    errors = sorted(source.errors, key=lambda e: (e.line, e.column))
    if errors:
        return CaseFileResult(rel, (), tuple(errors))
    return CaseFileResult(rel, tuple(cases), (), tuple(source.invariants))


class _Source:
    """One case file being loaded and the errors found so far."""

    def __init__(self, rel: str) -> None:
        self.rel = rel
        self.errors: list[CaseError] = []
        self.invariants: list[LoadedInvariant] = []

    def error(self, node: Node | None, case: str, message: str) -> None:
        """Record an error at the start of `node` (1:1 without one)."""
        line, column = (node.start_mark.line + 1, node.start_mark.column + 1) if node else (1, 1)
        self.errors.append(CaseError(self.rel, line, column, case, message))

    def load(self, raw: bytes) -> list[LoadedCase]:
        """Check the whole file; the cases are only meaningful when no error was recorded."""
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.error(None, "", f"not UTF-8 text ({exc.reason} at byte {exc.start})")
            return []
        root, data = self._parse(text)
        if root is None:
            return []
        if not isinstance(root, MappingNode) or not isinstance(data, dict):
            self.error(root, "", "a case file is a YAML mapping with a `cases:` list")
            return []
        self._check_duplicate_keys(root)
        model = None
        try:
            model = CaseFile.model_validate(data)
        except ValidationError as exc:
            for err in _merge_typos(exc.errors()):
                self._schema_error(root, data, err)
        # Requests and names are checked on the raw data too, so one run shows every error.
        case_nodes = child(root, "cases")
        raw_cases = data.get("cases") if isinstance(data.get("cases"), list) else []
        requests = self._check_cases(case_nodes, raw_cases)
        if model is None or self.errors:
            return []
        default = model.default and DefaultDecision(
            model.default.decision, model.default.reviewer_group, model.default.reason
        )
        self.invariants, problems = load_invariants(self.rel, root, model, default)
        for node, name, message in problems:
            self.error(node, f"invariant {name}", message)
        if not model.cases:
            return []
        assert isinstance(case_nodes, SequenceNode)  # validated: `cases` is a non-empty list
        return [
            LoadedCase(
                file=self.rel,
                name=case.name,
                line=node.start_mark.line + 1,
                request=requests[i],
                expect=case.expect,
                now=case.now or model.now,
                default=default,
            )
            for i, (case, node) in enumerate(zip(model.cases, case_nodes.value, strict=True))
        ]

    def _parse(self, text: str) -> tuple[Node | None, Any]:
        loader = _Loader(text)
        try:
            root = loader.get_single_node()
            if root is None:
                self.error(None, "", "empty file: a case file needs a `cases:` list")
                return None, None
            return root, loader.construct_document(root)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            problem = exc.problem or exc.context or "unreadable"
            self.errors.append(CaseError(self.rel, line, column, "", f"invalid YAML: {problem}"))
        except yaml.YAMLError as exc:
            self.error(None, "", f"invalid YAML: {exc}")
        finally:
            loader.dispose()
        return None, None

    def _check_duplicate_keys(self, node: Node) -> None:
        # PyYAML silently keeps the last of two equal keys: a second `expect:` would hide one.
        if isinstance(node, MappingNode):
            seen: set[str] = set()
            for key, value in node.value:
                if isinstance(key, ScalarNode) and key.value in seen:
                    self.error(key, "", f"duplicate key '{key.value}'")
                seen.add(getattr(key, "value", ""))
                self._check_duplicate_keys(value)
        elif isinstance(node, SequenceNode):
            for item in node.value:
                self._check_duplicate_keys(item)

    def _schema_error(self, root: MappingNode, data: dict[str, Any], err: Any) -> None:
        loc = tuple(err["loc"])
        case, field_loc = _case_label(loc, data)
        kind = err["type"]
        field = dotted(field_loc)
        if kind == "extra_forbidden":
            message = f"unknown key '{field}'"
            if err.get("suggestion"):
                message += f" (did you mean '{err['suggestion']}'?)"
        elif kind == "missing":
            message = f"missing required key '{field}'"
        else:
            message = f"{field}: {err['msg']}" if field else str(err["msg"])
        if kind == "string_type" and isinstance(err.get("input"), bool):
            message += " (YAML reads yes/no/on/off/true/false as booleans: quote the value)"
        self.error(node_at(root, loc, key=kind == "extra_forbidden"), case, message)

    def _check_cases(
        self, nodes: Node | None, raw_cases: list[Any]
    ) -> dict[int, pb.common.ActionRequest]:
        requests: dict[int, pb.common.ActionRequest] = {}
        first_line: dict[str, int] = {}
        items = nodes.value if isinstance(nodes, SequenceNode) else []
        for i, (raw, node) in enumerate(zip(raw_cases, items, strict=False)):
            if not isinstance(raw, dict):
                continue
            name = raw.get("name") if isinstance(raw.get("name"), str) else ""
            if name in first_line:
                where = f"line {first_line[name]}"
                self.error(child(node, "name"), name, f"duplicate case name (first at {where})")
            elif name:
                first_line[name] = node.start_mark.line + 1
            request = raw.get("request")
            if isinstance(request, dict):
                parsed = self._request(child(node, "request"), name or f"cases[{i}]", request)
                if parsed is not None:
                    requests[i] = parsed
        return requests

    def _request(
        self, node: Node | None, case: str, data: dict[str, Any]
    ) -> pb.common.ActionRequest | None:
        try:
            request = json_format.ParseDict(data, pb.common.ActionRequest())
        except json_format.ParseError as exc:
            path, message = parse_error_path(str(exc))
            where = dotted(("request", *path))
            key = message.startswith("unknown field")
            self.error(_locate(node, path, key=key), case, f"{where}: {message}")
            return None
        try:
            validate_request(request, Limits())
        except InvalidArgument as exc:
            path = tuple(exc.field.split("."))
            message = exc.message.removeprefix(f"{exc.field}: ")
            self.error(_locate(node, path), case, f"request.{exc.field}: {message}")
            return None
        return request


def parse_error_path(message: str) -> tuple[tuple[str, ...], str]:
    """Turn a json_format.ParseError message into (field path, readable message)."""
    # protobuf nests one "Failed to parse <field> field: " per level and may end with
    # " at ActionRequest.a.b"; there is no structured form of either.
    path: list[str] = []
    while match := _FAILED_FIELD.match(message):
        path.append(match.group(1))
        message = message[match.end() :]
    if unknown := _NO_FIELD.search(message):
        available = _AVAILABLE.search(message)
        fields = available.group(1).replace("'", "") if available else ""
        hint = f"; known fields: {fields}" if fields else ""
        return (*path, unknown.group(1)), f"unknown field{hint}"
    if at := _AT.search(message):
        deeper = [p for p in at.group(1).split(".") if p]
        if deeper[: len(path)] == path:
            path = deeper
        message = message[: at.start()]
    return tuple(path), _readable(message.strip().rstrip(".")) or "cannot be parsed"


def _locate(node: Node | None, path: tuple[str, ...], key: bool = False) -> Node | None:
    """The deepest node along a proto field path (JSON camelCase spellings too).

    With `key`, the last step yields the key node: an unknown field is reported where its
    name was written, not where its value starts.
    """
    for part in path:
        camel = re.sub(r"_([a-z])", lambda m: m.group(1).upper(), part)
        pair = _pair(node, part) or _pair(node, camel)
        if pair is None:
            break
        node = pair[0] if key and part == path[-1] else pair[1]
    return node


def _pair(node: Node | None, key: str) -> tuple[Node, Node] | None:
    if isinstance(node, MappingNode):
        for k, v in node.value:
            if isinstance(k, ScalarNode) and k.value == key:
                return k, v
    return None


# The readable form of protobuf's messages for values of the wrong type.
_REWRITES = (
    (re.compile(r"repeated field \w+ must be in \[\] which is (.*)"), r"expected a list, got \1"),
    (re.compile(r"Struct must be in a dict which is (.*)"), r"expected a mapping, got \1"),
    (
        re.compile(r"Value (.*) has unexpected type <class '(datetime\.\w+)'>"),
        r"\1 is a YAML \2, not a JSON value: quote it ('\1')",
    ),
    (
        re.compile(r"expected string or bytes-like object, got '(\w+)'"),
        r"expected a string, got \1",
    ),
)


def _readable(message: str) -> str:
    for pattern, replacement in _REWRITES:
        if pattern.fullmatch(message):
            return pattern.sub(replacement, message)
    return message


def _merge_typos(errors: list[Any]) -> list[Any]:
    """Turn `unknown key 'outcom'` + `missing 'outcome'` into one error with a suggestion."""
    missing = {tuple(e["loc"]) for e in errors if e["type"] == "missing"}
    used: set[tuple[Any, ...]] = set()
    out = []
    for err in errors:
        loc = tuple(err["loc"])
        if err["type"] == "extra_forbidden" and isinstance(loc[-1], str):
            near = [m[-1] for m in missing if m[:-1] == loc[:-1]]
            close = difflib.get_close_matches(loc[-1], near, n=1)
            if close:
                err = {**err, "suggestion": close[0]}
                used.add((*loc[:-1], close[0]))
        out.append(err)
    return [e for e in out if not (e["type"] == "missing" and tuple(e["loc"]) in used)]


def _case_label(loc: tuple[Any, ...], data: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    """The case an error belongs to (its name, or cases[i]) and the loc inside it."""
    if len(loc) >= 2 and loc[0] == "cases" and isinstance(loc[1], int):
        cases = data.get("cases")
        case = cases[loc[1]] if isinstance(cases, list) and loc[1] < len(cases) else None
        name = case.get("name") if isinstance(case, dict) else None
        return (name if isinstance(name, str) and name else f"cases[{loc[1]}]"), loc[2:]
    return "", loc
