"""The CEL extension libraries policies can use, run against cel-spec's own conformance
files: every case of strings, math, optional types, bindings and two-variable macros, in
the policy environment (its extensions and its numeric comparisons), with the case's own
declarations and container. A case that fails and is not in KNOWN fails the test; a KNOWN
case that starts passing fails too, so the list and docs/policies.md stay true."""

from __future__ import annotations

import atexit
import functools
import importlib
import math
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from cel_expr_python import cel
from google.protobuf import descriptor_pool, json_format, text_format

from signoff.policy import cel as policy_cel

HERE = Path(__file__).parent / "cel_spec"
FILES = ("string_ext", "math_ext", "optionals", "bindings_ext", "macros2")
# Cases this engine cannot pass, with the reason docs/policies.md gives.
_NO_MAP_INSERT = (
    "transformMap: cel-expr-python 0.1.3 has no cel.@mapInsert overload (policies refuse it "
    "at load)"
)
KNOWN: dict[str, str] = {
    f"macros2/transformMap/{case}": _NO_MAP_INSERT
    for case in ("empty", "empty_filter", "one", "one_filter", "many", "many_filter")
}


@functools.cache
def _simple_pb2() -> Any:
    """cel-spec's test protos, compiled for this run into a temporary directory (test-only,
    never shipped); the message types land in the default pool the CEL environment reads."""
    from grpc_tools import protoc

    out = tempfile.mkdtemp(prefix="cel_spec_pb")
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    root = HERE / "proto"
    protos = sorted(str(p.relative_to(root)) for p in root.rglob("*.proto"))
    include = Path(protoc.__file__).parent / "_proto"
    args = ["protoc", f"-I{root}", f"-I{include}", f"--python_out={out}", *protos]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed on the vendored cel-spec protos")
    sys.path.insert(0, out)
    try:
        for module in ("proto2.test_all_types_pb2", "proto3.test_all_types_pb2"):
            importlib.import_module(f"cel.expr.conformance.{module}")
        return importlib.import_module("cel.expr.conformance.test.simple_pb2")
    finally:
        sys.path.remove(out)


@functools.cache
def _parsed(file: str) -> list[tuple[str, Any]]:
    """The (section name, case) pairs of a file, in order."""
    parsed = text_format.Parse(
        (HERE / f"{file}.textproto").read_text(), _simple_pb2().SimpleTestFile()
    )
    return [(s.name, t) for s in parsed.section for t in s.test]


def _cases() -> list[Any]:
    return [
        pytest.param(file, i, id=f"{file}/{section}/{case.name}#{i}")
        for file in FILES
        for i, (section, case) in enumerate(_parsed(file))
    ]


_PRIMITIVES = {1: cel.Type.BOOL, 2: cel.Type.INT, 3: cel.Type.UINT, 4: cel.Type.DOUBLE}
_PRIMITIVES |= {5: cel.Type.STRING, 6: cel.Type.BYTES}


def _type(t: Any) -> Any:
    kind = t.WhichOneof("type_kind")
    if kind == "primitive":
        return _PRIMITIVES[t.primitive]
    if kind == "message_type":
        return cel.Type(t.message_type)
    if kind == "list_type":
        return cel.Type.List(_type(t.list_type.elem_type))
    if kind == "map_type":
        return cel.Type.Map(_type(t.map_type.key_type), _type(t.map_type.value_type))
    if kind == "dyn":
        return cel.Type.DYN
    raise NotImplementedError(f"type_env kind {kind}")


def _env(check: bool, container: str, variables: dict[str, Any]) -> Any:
    """The policy environment (policy/cel.py's extensions and, for checking, its numeric
    comparisons), plus the case's variables and container."""
    config = "extensions:\n" + "".join(f"  - name: {n}\n" for n in policy_cel.EXTENSIONS)
    extensions = [policy_cel._numeric_comparisons()] if check else []
    env = cel.NewEnv(
        descriptor_pool.Default(),
        config=cel.NewEnvConfigFromYaml(config),
        variables=variables,
        extensions=extensions,
        **({"container": container} if container else {}),
    )
    if not check:
        env.compile("true")  # see policy/cel.py _env: sets up value conversion
    return env


def _expected(v: Any) -> tuple[str, Any]:
    """(CEL type name, plain Python value) of a cel.expr.Value."""
    kind = v.WhichOneof("kind")
    scalar = {
        "bool_value": "BOOL", "int64_value": "INT", "uint64_value": "UINT",
        "double_value": "DOUBLE", "string_value": "STRING", "bytes_value": "BYTES",
    }  # fmt: skip
    if kind in scalar:
        return scalar[kind], getattr(v, kind)
    if kind == "null_value":
        return "NULL_TYPE", None
    if kind == "list_value":
        return "LIST", [_expected(x)[1] for x in v.list_value.values]
    if kind == "map_value":
        return "MAP", {_expected(e.key)[1]: _expected(e.value)[1] for e in v.map_value.entries}
    raise NotImplementedError(f"expected value kind {kind}")


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b if isinstance(a, bool | bytes) else a == b


def _run(case: Any) -> tuple[str, Any] | Exception:
    """Compile (checked unless the case says not) and evaluate; the result, or the error."""
    variables = {d.name: _type(d.ident.type) for d in case.type_env if d.HasField("ident")}
    data = {}
    for name, bound in case.bindings.items():
        kind = bound.value.WhichOneof("kind")
        data[name] = getattr(bound.value, kind)
    try:
        checked = _env(True, case.container, variables).compile(
            case.expr, disable_check=case.disable_check
        )
        program = _env(False, case.container, variables).deserialize(checked.serialize())
        value = program.eval(data=data)
    except RuntimeError as exc:
        return exc
    name = value.type().name()
    if name == "ERROR":
        return RuntimeError(str(value.value()))
    return name.split("<")[0], value.plain_value()


def _outcome(case: Any) -> str | None:
    """None when the engine answers as the case expects, else what differs."""
    got = _run(case)
    matcher = case.WhichOneof("result_matcher")
    if matcher in ("eval_error", "any_eval_errors"):
        return None if isinstance(got, Exception) else f"expected an error, got {got!r}"
    if isinstance(got, Exception):
        return f"error: {str(got)[:200]}"
    want = _expected(case.value) if matcher == "value" else ("BOOL", True)
    if got[0] != want[0] or not _same(got[1], want[1]):
        return f"got {got!r}, expected {want!r}"
    return None


@pytest.mark.parametrize(("file", "ordinal"), _cases())
def test_cel_spec_case(file: str, ordinal: int) -> None:
    section, case = _parsed(file)[ordinal]
    case_id = f"{file}/{section}/{case.name}"
    problem = _outcome(case)
    known = KNOWN.get(case_id)
    if known is not None:
        assert problem is not None, f"{case_id} passes now: remove it from KNOWN and the docs"
        pytest.xfail(known)
    assert problem is None, f"{case.expr!r}: {problem}"


def test_every_file_has_its_cases() -> None:
    # The counts docs/policies.md quotes (a refresh of the files changes them there too).
    counts = {file: len(_parsed(file)) for file in FILES}
    expected = {"string_ext": 216, "math_ext": 199, "optionals": 70}
    assert counts == expected | {"bindings_ext": 8, "macros2": 46}


@pytest.mark.parametrize(
    ("expr", "value", "wrong"),
    [
        ("1 + 1", {"int64_value": 3}, "got ('INT', 2)"),
        ("1 + 1", {"uint64_value": 2}, "expected ('UINT', 2)"),  # int is not uint
        ("[1, 2]", {"list_value": {"values": [{"int64_value": 1}]}}, "got ('LIST'"),
        ("1 / 0", {"int64_value": 0}, "error: "),
    ],
)
def test_the_runner_tells_a_wrong_answer(expr: str, value: dict[str, Any], wrong: str) -> None:
    case = _simple_pb2().SimpleTest(name="x", expr=expr)
    json_format.ParseDict(value, case.value)
    problem = _outcome(case)
    assert problem is not None
    assert wrong in problem


def test_the_runner_wants_an_error_where_the_case_expects_one() -> None:
    case = _simple_pb2().SimpleTest(name="x", expr="1 + 1")
    case.eval_error.SetInParent()
    assert _outcome(case) == "expected an error, got ('INT', 2)"
