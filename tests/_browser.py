"""A real headless Chromium (Debian's ``chromium`` + ``chromium-driver``) driven by Selenium, and the
explorer served by uvicorn on a free loopback port. Nothing is downloaded: the driver's path is
given explicitly so Selenium Manager never runs.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMEDRIVER = os.environ.get("REGISTRY_CHROMEDRIVER", "/usr/bin/chromedriver")
ENABLE_HINT = "browser tests need Chromium: run `apt-get install chromium chromium-driver` as root (.ci/run does)"


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def require_browser() -> tuple[str, str]:
    """(chromium, chromedriver) or a one-line skip saying how to enable the tests."""
    binary = chromium_binary()
    if binary is None or not os.access(CHROMEDRIVER, os.X_OK):
        pytest.skip(ENABLE_HINT)
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("browser tests need Selenium: `make install` (it is in the dev extra)")
    return binary, CHROMEDRIVER


def screenshot_dir() -> Path:
    """Where screenshots go: $REGISTRY_TEST_OUTPUT/browser, else test-output/browser in the repo."""
    base = Path(os.environ.get("REGISTRY_TEST_OUTPUT") or ROOT / "test-output")
    target = base / "browser"
    target.mkdir(parents=True, exist_ok=True)
    return target


def start_driver(user_data: Path, javascript: bool = False) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = require_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                "--window-size=1280,1000", f"--user-data-dir={user_data}"):
        options.add_argument(arg)
    if not javascript:  # the explorer must work without JavaScript: prove it in the browser
        options.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(60)
    return driver


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServedExplorer:
    """``registry serve`` in a thread: the same app, follower and uvicorn the command runs."""

    def __init__(self, explorer: Any, interval: float = 0.5) -> None:
        import uvicorn

        from registry.explorer.app import create_app
        from registry.explorer.server import allowed_hosts

        self.explorer = explorer
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app = create_app(explorer, allowed_hosts=allowed_hosts("127.0.0.1"))
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    access_log=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.interval = interval

    def __enter__(self) -> "ServedExplorer":
        self.explorer.start_head_poller()
        self.explorer.start_following(self.interval)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.explorer.stop()


def wait_for(predicate: Any, timeout: float = 20.0, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            return value
        time.sleep(interval)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    driver = start_driver(tmp_path / "chromium-profile")
    try:
        yield driver
    finally:
        driver.quit()
