"""docker/ stays consistent: the compose file's settings exist, and nginx balances every replica."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from adapter.service.settings import Settings

DOCKER = Path(__file__).resolve().parent.parent / "docker"


def _compose() -> dict[str, dict[str, object]]:
    services = yaml.safe_load((DOCKER / "compose.yaml").read_text(encoding="utf-8"))["services"]
    assert isinstance(services, dict)
    return services


def test_every_theraclaim_variable_of_the_compose_file_is_a_setting() -> None:
    known = {f"THERACLAIM_{name.upper()}" for name in Settings.model_fields}
    for name, service in _compose().items():
        environment = service.get("environment") or {}
        assert isinstance(environment, dict)
        unknown = {v for v in environment if v.startswith("THERACLAIM_")} - known
        assert not unknown, f"{name} sets {sorted(unknown)}, which theraclaim does not read"


def test_nginx_balances_exactly_the_replicas_on_one_postgresql() -> None:
    services = _compose()
    replicas = {n for n, s in services.items() if "THERACLAIM_DATABASE_URL" in (s.get("environment") or {})}
    assert len(replicas) >= 2
    urls = {str(services[n]["environment"]["THERACLAIM_DATABASE_URL"]) for n in replicas}  # type: ignore[index]
    assert len(urls) == 1 and next(iter(urls)).startswith("postgresql://")
    upstream = set(re.findall(r"^\s*server\s+([\w-]+):8080", (DOCKER / "nginx.conf").read_text(), re.MULTILINE))
    assert upstream == replicas
    assert "./nginx.conf:/etc/nginx/conf.d/default.conf:ro" in services["proxy"]["volumes"]  # type: ignore[operator]
