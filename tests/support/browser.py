"""Browser fixtures, shared by the browser tests: Debian's `chromium` (installed with apt-get
when missing and the suite runs as root), driven through Playwright's Python package (never
Playwright's own browser downloads), and the API on a real port for it to load.

A test module imports the fixtures it uses (`from tests.support.browser import browser,
chromium, live_api`) and carries `pytestmark = pytest.mark.browser`."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from campaigns.api.app import create_app
from tests.support.servers import Server

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def _install_chromium() -> str | None:
    """Debian's chromium, installed with apt-get when missing and we may (root, apt present)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
    if subprocess.run(install, env=env, capture_output=True, timeout=900).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=600)
        subprocess.run(install, env=env, capture_output=True, timeout=900)
    return shutil.which("chromium")


@pytest.fixture(scope="module")
def chromium() -> str:
    path = _install_chromium()
    if path is None:
        pytest.skip("headless Chromium is not available here and cannot be installed "
                    "(needs Debian's `chromium` package: run `apt-get install -y chromium` as root)")
    return path


@pytest.fixture(scope="module")
async def browser(chromium):
    playwright_api = pytest.importorskip("playwright.async_api", reason="the playwright package is not installed")
    async with playwright_api.async_playwright() as p:
        instance = await p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield instance
        await instance.close()


@pytest.fixture(scope="module")
async def live_api(settings, worker):
    """The API on a real port, so a browser can reach it."""
    server = Server(None)
    app = create_app(settings.model_copy(update={"public_base_url": f"http://127.0.0.1:{server.port}"}))
    server.app = app
    async with app.router.lifespan_context(app):
        await server.start()
        yield server
        await server.stop()


async def screenshot(page, name: str) -> Path:
    """Save the page (whole length) under test-artifacts/, for people and the docs."""
    path = ARTIFACTS / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(path), full_page=True)
    return path
