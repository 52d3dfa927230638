"""`signoff serve` compiles the policies once: the preflight's bundle is the one served."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from signoff.app import decisions as app_module
from signoff.core.decide import DefaultDecision
from signoff.core.validate import Limits
from signoff.ids import SystemClock, new_id
from signoff.policy import Bundle, BundleError, load_bundle
from signoff.serving import workers
from signoff.serving.preflight import preflight
from signoff.settings.model import load_settings
from signoff.store.sqlite.store import SqliteStore
from tests.unit.test_request_view import POLICIES


def _settings(tmp_path: Path, policies: Path = POLICIES) -> Any:
    return load_settings({"db": f"sqlite:///{tmp_path / 'signoff.db'}", "policies": str(policies)})


async def test_a_single_process_serves_the_bundle_its_preflight_compiled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: dict[str, Any] = {}

    async def serve(settings: Any, **kwargs: Any) -> None:
        served.update(kwargs)

    monkeypatch.setattr(workers, "serve", serve)
    await workers.run(_settings(tmp_path))
    assert isinstance(served["checked"], Bundle)
    assert served["checked"].version == load_bundle(POLICIES).version


async def test_started_with_a_checked_bundle_the_app_does_not_compile_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked = preflight(_settings(tmp_path))

    def compile_again(*_: Any) -> Bundle:
        raise AssertionError("the policies were compiled a second time")

    monkeypatch.setattr(app_module, "load_bundle", compile_again)
    store = SqliteStore(tmp_path / "signoff.db", SystemClock())
    app = app_module.Signoff(
        policies=POLICIES,
        store=store,
        clock=SystemClock(),
        new_id=new_id,
        limits=Limits(),
        default=DefaultDecision(),
    )
    await store.open()
    try:
        assert await app.start(checked) is checked
        assert app.bundle is checked
    finally:
        await store.close()


def test_a_bad_bundle_fails_the_preflight_before_anything_is_created(tmp_path: Path) -> None:
    bad = tmp_path / "policies"
    bad.mkdir()
    (bad / "p.yaml").write_text("rules: [\n")
    with pytest.raises(BundleError):
        preflight(_settings(tmp_path, bad))
    assert not (tmp_path / "signoff.db").exists()
