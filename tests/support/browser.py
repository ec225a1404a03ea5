"""A headless browser for tests: Debian's Chromium driven by Selenium through Debian's chromedriver.

Selenium never downloads anything here: the Service names `/usr/bin/chromedriver` (which makes
Selenium skip its Selenium Manager) and the options name `/usr/bin/chromium`. `make install`
installs both packages where it can (root with apt-get). Each `Browser` starts its own Chromium
with a fresh profile in a temporary folder and removes it on exit.

A test that needs the browser asks for it through `browser_session`, which skips the test when
chromedriver is absent, except under CI (the `CI` variable set), where a missing browser fails it:

    @pytest.fixture
    def browser() -> Iterator[Browser]:
        yield from browser_session()

Screenshots go to `tests/artifacts/` (`artifact_path("name.png")`), which git ignores.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
# As root on a machine without a network: no sandbox, no GPU, and none of Chromium's own traffic
# (component updates, sync, field trials...). /dev/shm may be small in containers.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


def missing_browser() -> str | None:
    """Why the browser cannot start here, or None when it can."""
    for path, package in ((CHROMEDRIVER, "chromium-driver"), (CHROMIUM, "chromium")):
        if not path.exists():
            return f"browser tests need {path} (Debian package {package}; `make install` installs it as root)"
    return None


def require_browser() -> None:
    """Skip the calling test when the browser is missing; fail it instead under CI."""
    reason = missing_browser()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the browser tests: {reason}")
    pytest.skip(reason)


def artifact_path(name: str) -> Path:
    """Where a test keeps a screenshot or page dump: tests/artifacts/<name>."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name


class Browser:
    """One headless Chromium. Methods take CSS selectors and wait up to `timeout` seconds for them."""

    def __init__(self, width: int = 1280, height: int = 900, timeout: float = 10.0) -> None:
        self.width = width
        self.height = height
        self.timeout = timeout
        self._profile: str | None = None
        self._driver: webdriver.Chrome | None = None

    def __enter__(self) -> Browser:
        self._profile = tempfile.mkdtemp(prefix="chorus-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={self._profile}", f"--window-size={self.width},{self.height}"):
            options.add_argument(flag)
        try:
            self._driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
        except BaseException:
            shutil.rmtree(self._profile, ignore_errors=True)
            raise
        self._driver.set_page_load_timeout(self.timeout)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._driver is not None:
            self._driver.quit()
            self._driver = None
        if self._profile is not None:
            shutil.rmtree(self._profile, ignore_errors=True)
            self._profile = None

    @property
    def driver(self) -> webdriver.Chrome:
        """The Selenium driver, for what the methods below do not cover."""
        assert self._driver is not None, "use Browser as a context manager"
        return self._driver

    @property
    def url(self) -> str:
        return str(self.driver.current_url)

    def open(self, url: str) -> None:
        self.driver.get(url)

    def find(self, css: str) -> WebElement:
        """The first element matching `css`, once it is on the page."""
        wait = WebDriverWait(self.driver, self.timeout)
        return wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css)))

    def find_all(self, css: str) -> list[WebElement]:
        """Every element matching `css` now (possibly none)."""
        return list(self.driver.find_elements(By.CSS_SELECTOR, css))

    def fill(self, css: str, value: str) -> None:
        """Replace the content of a textarea or input."""
        element = self.find(css)
        element.clear()
        element.send_keys(value)

    def click(self, css: str) -> None:
        """Click an element once it is visible and enabled."""
        wait = WebDriverWait(self.driver, self.timeout)
        wait.until(expected_conditions.element_to_be_clickable((By.CSS_SELECTOR, css))).click()

    def text(self, css: str = "body") -> str:
        """The visible text of the first element matching `css` (hidden parts left out)."""
        return str(self.find(css).text)

    def wait_for_text(self, expected: str, css: str = "body") -> str:
        """Wait until `expected` is in the visible text of `css` (after a click loads a page), and
        return that text."""
        wait = WebDriverWait(self.driver, self.timeout)
        wait.until(expected_conditions.text_to_be_present_in_element((By.CSS_SELECTOR, css), expected))
        return self.text(css)

    def screenshot(self, path: Path | str) -> Path:
        """Save the viewport as a PNG at `path` (its folder is created) and return the path."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not self.driver.save_screenshot(str(target)):
            raise OSError(f"Chromium could not write a screenshot to {target}")
        return target


def browser_session(width: int = 1280, height: int = 900, timeout: float = 10.0) -> Iterator[Browser]:
    """The body of a `browser` fixture: skips (or, under CI, fails) without a browser, otherwise
    yields a started Browser and closes it after the test."""
    require_browser()
    with Browser(width=width, height=height, timeout=timeout) as browser:
        yield browser
