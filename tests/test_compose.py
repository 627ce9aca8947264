"""docker-compose.yml cannot run here (no Docker engine), so it is checked by reading it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click
import pytest
import yaml

from photostream.cli import main
from photostream.config import environment_variables
from photostream.objectstore import LIFECYCLE_RULES

ROOT = Path(__file__).resolve().parent.parent
INFRASTRUCTURE = {"kafka", "schema-registry", "clickhouse", "minio"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _project_services(compose: dict) -> dict[str, dict]:
    return {name: svc for name, svc in compose["services"].items() if "build" in svc}


def test_has_the_production_components(compose):
    services = compose["services"]
    assert services.keys() >= INFRASTRUCTURE
    assert services["kafka"]["image"].startswith("apache/kafka:4.")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert {"gateway", "worker", "sinks"} <= _project_services(compose).keys()


def test_servers_have_healthchecks(compose):
    for name in [*INFRASTRUCTURE, "gateway"]:
        assert compose["services"][name]["healthcheck"]["test"], name


def test_project_services_share_one_dockerfile(compose):
    builds = {str(svc["build"]) for svc in _project_services(compose).values()}
    assert builds == {"."}
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["photostream"]' in dockerfile


def test_every_variable_passed_to_our_services_is_read_by_the_code(compose):
    known = environment_variables()
    for name, svc in _project_services(compose).items():
        unknown = set(svc["environment"]) - known
        assert not unknown, f"{name} passes variables no settings class reads: {sorted(unknown)}"


def test_every_service_command_exists(compose):
    for name, svc in _project_services(compose).items():
        ctx = click.Context(main)
        command = main.get_command(ctx, svc["command"][0])
        assert command is not None, f"{name}: `photostream {svc['command'][0]}` does not exist"


def test_secrets_come_from_the_environment(compose):
    text = (ROOT / "docker-compose.yml").read_text()
    for key in ("MINIO_ROOT_PASSWORD", "CLICKHOUSE_PASSWORD", "S3_SECRET_ACCESS_KEY"):
        for line in text.splitlines():
            if re.match(rf"\s*{key}:", line):
                assert "${" in line, f"{key} must be substituted, not written: {line.strip()}"


def test_minio_cleans_up_what_failed_uploads_leave(compose):
    # MinIO has no AbortIncompleteMultipartUpload rule: its own sweep does that job (at most a day).
    assert compose["services"]["minio"]["environment"]["MINIO_API_STALE_UPLOADS_EXPIRY"] == "24h"
    init = compose["services"]["minio-init"]["command"][0]
    imported = json.loads(re.search(r"echo '(\{.*\})' \| mc ilm rule import local/photostream", init).group(1))
    staged = next(rule for rule in LIFECYCLE_RULES if "Expiration" in rule)
    assert imported == {"Rules": [staged]}, "compose and the local stack expire the same staged uploads"
