"""`signoff audit verify` refuses checkpoints no trusted key signed: online (the server's
trusted keys) and offline (the `--public-key`s given), with key rotation."""

from __future__ import annotations

import json
from pathlib import Path

from signoff.core.checkpoints import key_id, load_or_create_key, public_pem
from signoff.export import encode_line

from .conftest import MakeServer, ServerHandle
from .test_audit_keys import JUNK, MADE_UP, _checkpoint, _forged, _head, _plant, _traffic
from .test_cli_audit import _cli


def _untrusted(seq: int, kid: str) -> str:
    return f"checkpoint at seq {seq} is signed by key {kid}, which is not a trusted key"


async def test_online_verify_exits_1_naming_the_seq_of_a_forged_checkpoint(server: ServerHandle):
    _traffic(server)
    seq, head = _head(server)
    _plant(server, _forged(seq, head))
    for args in ([], ["--from-checkpoint"], ["--batch", "2"]):
        code, out, _ = await _cli(server, "verify", *args)
        assert code == 1, (args, out)
        assert out.startswith(f"NOT OK at seq {seq}: bad signature: {_untrusted(seq, MADE_UP)}")


async def _rotated_export(make_server: MakeServer, backend: str, tmp: Path) -> tuple[Path, ...]:
    """An export of a log whose first checkpoints the old key signed, the later ones the new."""
    old, new = load_or_create_key(tmp / "old.pem", create=True), tmp / "new.pem"
    (tmp / "old.pub").write_bytes(public_pem(old))
    first = make_server(backend=backend, audit={"signing_key": tmp / "old.pem"})
    _traffic(first)
    _checkpoint(first)
    first.call(first.running.stop(0))
    second = make_server(
        db=first.db,
        audit={"signing_key": new, "create_key": True, "trusted_keys": [tmp / "old.pub"]},
    )
    _traffic(second)
    _checkpoint(second)
    code, _, err = await _cli(second, "checkpoints", "--public-key-out", str(tmp / "new.pub"))
    assert code == 0, err
    code, _, err = await _cli(second, "export", "-o", str(tmp / "audit.jsonl"))
    assert code == 0, err
    return tmp / "audit.jsonl", tmp / "new.pub", tmp / "old.pub"


async def test_offline_verify_after_a_rotation_needs_the_old_public_key_too(
    make_server: MakeServer, backend: str, tmp_path: Path
):
    file, new_pub, old_pub = await _rotated_export(make_server, backend, tmp_path)
    code, out, err = await _cli(
        None, "verify", "--public-key", str(new_pub), "--public-key", str(old_pub), str(file)
    )
    assert (code, err) == (0, ""), out
    assert out.startswith(f"ok: {file}: ")
    first_cp = next(
        json.loads(line)["checkpoint"]
        for line in file.read_text().splitlines()
        if line.startswith('{"checkpoint":')
    )
    old_id = key_id(load_or_create_key(tmp_path / "old.pem", create=False))
    assert first_cp["key_id"] == old_id
    code, out, _ = await _cli(None, "verify", "--public-key", str(new_pub), str(file))
    assert code == 1
    seq = first_cp["seq"]
    assert out.startswith(f"NOT OK: {file}: bad signature at seq {seq} "), out
    assert _untrusted(seq, old_id) in out


async def test_offline_verify_exits_1_on_a_checkpoint_line_with_a_made_up_key(
    server: ServerHandle, tmp_path: Path
):
    _traffic(server)
    _checkpoint(server)
    key, file = tmp_path / "k.pub", tmp_path / "audit.jsonl"
    assert (await _cli(server, "checkpoints", "--public-key-out", str(key)))[0] == 0
    assert (await _cli(server, "export", "-o", str(file)))[0] == 0
    lines = file.read_bytes().splitlines(keepends=True)
    at = max(i for i, line in enumerate(lines) if line.startswith(b'{"checkpoint":'))
    cp = json.loads(lines[at])["checkpoint"]
    lines[at] = encode_line({"checkpoint": {**cp, "key_id": MADE_UP, "signature": JUNK}})
    file.write_bytes(b"".join(lines))
    code, out, _ = await _cli(None, "verify", "--public-key", str(key), str(file))
    assert code == 1
    assert out.startswith(f"NOT OK: {file}: bad signature at seq {cp['seq']} (line {at + 1})")
    assert _untrusted(cp["seq"], MADE_UP) in out
