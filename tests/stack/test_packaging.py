"""What a newcomer and an operator run: the CLI, `campaigns keys create`, docker-compose.yml."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from campaigns.auth.service import authenticate
from campaigns.settings import Settings

# Each test runs a process of its own (the platform's CLI, docker compose): not pure.
pytestmark = pytest.mark.services

ROOT = Path(__file__).resolve().parents[2]


async def test_keys_create_prints_a_working_key_alone_on_the_last_line(settings: Settings, pool):
    env = {**os.environ, "DATABASE_URL": settings.database_dsn}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "campaigns.cli", "keys", "create", "--org", "acme",
        env=env, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    key = out.decode().strip().splitlines()[-1]
    assert key.startswith("qck_") and " " not in key
    principal = await authenticate(pool, None, key)
    assert principal is not None and principal.organization_name == "acme"


def test_cli_lists_its_commands():
    out = subprocess.run([sys.executable, "-m", "campaigns.cli", "--help"], capture_output=True, text=True).stdout
    for command in ("run", "api", "worker", "migrate", "keys"):
        assert command in out


def _compose_command() -> list[str] | None:
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def test_docker_compose_file_is_accepted():
    command = _compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed here")
    result = subprocess.run([*command, "config", "-q"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    services = subprocess.run([*command, "config", "--services"], cwd=ROOT, capture_output=True, text=True).stdout
    assert {"temporal", "temporal-ui", "postgres", "redis", "api", "worker"} <= set(services.split())
