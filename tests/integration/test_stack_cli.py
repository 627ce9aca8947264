"""`photostream stack up|status|down` on an isolated stack: own ports, own data folder."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

PHOTOSTREAM = [sys.executable, "-m", "photostream"]


def _free_port() -> int:
    """A free port whose +10000 twin (SeaweedFS's gRPC port) is free as well."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port + 10000 > 65535:
            continue
        with socket.socket() as twin:
            try:
                twin.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


@pytest.fixture
def isolated_env(tmp_path):
    ports = {
        "STACK_KAFKA_PORT": _free_port(),
        "STACK_KAFKA_CONTROLLER_PORT": _free_port(),
        "STACK_S3_PORT": _free_port(),
        "STACK_SEAWEED_MASTER_PORT": _free_port(),
        "STACK_SEAWEED_VOLUME_PORT": _free_port(),
        "STACK_SEAWEED_FILER_PORT": _free_port(),
    }
    env = {**os.environ, **{k: str(v) for k, v in ports.items()}}
    env["STACK_KAFKA_BROKERS"] = "1"  # these ports are for one broker, whatever the session runs
    env["STACK_VAR_DIR"] = str(tmp_path / "var")
    env["STACK_CACHE_DIR"] = str(Path(".cache").resolve())  # reuse the fetched Kafka jars
    env["S3_ENDPOINT_URL"] = f"http://127.0.0.1:{ports['STACK_S3_PORT']}"
    return env


def _run(env, *args, timeout=180):
    return subprocess.run([*PHOTOSTREAM, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)


def _our_processes(var_dir: str) -> list[str]:
    """Command lines of live processes that use this stack's data folder."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if var_dir in cmdline and state != "Z":
            found.append(cmdline)
    return found


def test_up_twice_status_and_down_leaves_nothing(isolated_env):
    var_dir = isolated_env["STACK_VAR_DIR"]
    try:
        first = _run(isolated_env, "stack", "up")
        assert first.returncode == 0, first.stderr + first.stdout
        assert "kafka       started" in first.stdout
        assert "s3          started" in first.stdout

        second = _run(isolated_env, "stack", "up")
        assert second.returncode == 0, second.stderr + second.stdout
        assert "kafka       already up" in second.stdout
        assert "s3          already up" in second.stdout

        status = _run(isolated_env, "stack", "status")
        assert status.returncode == 0
        assert status.stdout.count("running") == 2
        assert len(_our_processes(var_dir)) == 2
    finally:
        down = _run(isolated_env, "stack", "down")
    assert down.returncode == 0, down.stderr
    assert down.stdout.count("stopped") == 2
    assert _our_processes(var_dir) == []

    after = _run(isolated_env, "stack", "status")
    assert after.returncode == 3  # something is down
    assert after.stdout.count(" down ") == 2


def test_a_taken_port_is_a_clear_error_not_a_hang(isolated_env):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(isolated_env["STACK_KAFKA_PORT"])))
        squatter.listen()
        # The subprocess timeout turns a hang into a failure.
        result = _run(isolated_env, "stack", "up", timeout=60)
    try:
        assert result.returncode != 0
        assert f"port {isolated_env['STACK_KAFKA_PORT']} on 127.0.0.1 is taken" in result.stderr
    finally:
        _run(isolated_env, "stack", "down")
    assert _our_processes(isolated_env["STACK_VAR_DIR"]) == []
