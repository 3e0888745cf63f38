"""index.html in a real headless browser (Debian chromium + chromedriver, via selenium).

The page is loaded from the daemon's own HTTP server, as a person would open it. The browser
is a system package (`apt-get install chromium chromium-driver`; `.ci/run` installs it):
without it these tests fail and say so, rather than skip.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from conftest import Workspace
from daemon_process import serving_seeds

BASE_URL = "http://feeds.example.test/"  # the config conftest writes
MEDIA_TYPES = {".atom": "application/atom+xml", ".rss": "application/rss+xml",
               ".json": "application/feed+json"}
BROWSER_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
)


def browser_paths() -> tuple[str, str]:
    """Chromium and chromedriver from the system; a clear failure if either is missing."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.fail(
            "the browser test needs Debian's chromium and chromium-driver "
            "(apt-get install -y chromium chromium-driver; .ci/run installs them); "
            f"found chromium={chromium}, chromedriver={driver}",
            pytrace=False,
        )
    return chromium, driver


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workspace, str]]:
    """The seeds published and served by a daemon."""
    with serving_seeds(tmp_path_factory.mktemp("page")) as served:
        yield served


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium, driver_path = browser_paths()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    # Selenium Manager must not try to download a browser or driver: there is no network.
    os.environ["SE_OFFLINE"] = "true"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    with tempfile.TemporaryDirectory(prefix="newswire-chromium-") as profile:
        for flag in (*BROWSER_FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(options=options, service=Service(driver_path))
        try:
            driver.set_page_load_timeout(30)
            yield driver
        finally:
            driver.quit()


def open_page(browser: Any, url: str, width: int, height: int) -> None:
    browser.set_window_size(width, height)
    browser.get(url)


def css(browser: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(browser.find_elements(By.CSS_SELECTOR, selector))


def test_the_page_shows_every_story_newest_first(
    site: tuple[Workspace, str], browser: Any
) -> None:
    open_page(browser, f"{site[1]}/", 1280, 900)
    articles = css(browser, "main article")
    assert len(articles) == 19
    assert css(browser, ".status")[0].text.startswith("19 stories")
    dates = [datetime.fromisoformat(a.find_element("css selector", "time")
                                    .get_attribute("datetime")) for a in articles]
    assert dates == sorted(dates, reverse=True)
    for article in articles:
        assert article.find_element("css selector", "h2 a").text.strip()
        assert article.find_elements("css selector", ".agency")
    # Static HTML and CSS: not one script.
    assert browser.execute_script("return document.scripts.length") == 0


def test_autodiscovery_and_subscribe_links_cover_every_feed(
    site: tuple[Workspace, str], browser: Any
) -> None:
    open_page(browser, f"{site[1]}/", 1280, 900)
    # Hidden files (the publish's own records) are no feeds.
    feeds = {name for name in os.listdir(site[0].output)
             if os.path.splitext(name)[1] in MEDIA_TYPES and not name.startswith(".")}
    assert {"combined.atom", "combined.rss", "combined.json", "nato.atom", "nato.rss"} <= feeds
    expected = {(MEDIA_TYPES[os.path.splitext(n)[1]], BASE_URL + n) for n in feeds}
    found = {(link.get_attribute("type"), link.get_attribute("href"))
             for link in css(browser, 'head link[rel="alternate"]')}
    assert found == expected
    visible = {a.get_attribute("href") for a in css(browser, "#feeds .formats a")}
    assert visible == {url for _, url in expected}
    assert css(browser, '#feeds a[href$="feeds.opml"]')


def test_full_text_opens_on_click(site: tuple[Workspace, str], browser: Any) -> None:
    open_page(browser, f"{site[1]}/", 1280, 900)
    details = css(browser, "article details")[0]
    hidden = details.find_element("css selector", ".text")
    assert not hidden.is_displayed()
    summary = details.find_element("css selector", "summary")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", summary)
    summary.click()
    assert hidden.is_displayed() and hidden.text.strip()


@pytest.mark.parametrize(("width", "height", "beside"), [(390, 844, False), (1280, 900, True)],
                         ids=["phone", "desktop"])
def test_the_layout_fits_phones_and_desktops(
    site: tuple[Workspace, str], browser: Any, width: int, height: int, beside: bool
) -> None:
    open_page(browser, f"{site[1]}/", width, height)
    viewport = browser.execute_script("return document.documentElement.clientWidth")
    overflow = browser.execute_script(
        "return Array.from(document.querySelectorAll('body *'))"
        ".filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)"
        ".map(e => e.tagName + '.' + e.className)"
    )
    assert overflow == [], f"wider than the {viewport}px viewport: {overflow[:5]}"
    assert browser.execute_script(
        "return document.documentElement.scrollWidth") <= viewport
    main = css(browser, "main")[0].rect
    aside = css(browser, "#feeds")[0].rect
    if beside:
        # Desktop: the feed list stands beside the stories.
        assert aside["x"] >= main["x"] + main["width"]
        assert aside["y"] < main["y"] + 200
    else:
        # Phone: one column, the feed list after the stories, text at a readable size.
        assert aside["y"] >= main["y"] + main["height"]
        size = browser.execute_script(
            "return parseFloat(getComputedStyle(document.querySelector('.text p')).fontSize)")
        assert size >= 15
