"""A real browser: Playwright driving headless Chromium through sign-up, upload and sign-out.

Chromium comes from the system (`chromium` on PATH, or PHOTOSHARE_CHROMIUM) when present, else
Playwright's own build (`.venv/bin/playwright install chromium`); `make test` installs one.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.conftest import PLATFORMS, Platform
from tests.integration.client import make_image

pytestmark = pytest.mark.browser


def system_chromium() -> str | None:
    for candidate in (
        os.environ.get("PHOTOSHARE_CHROMIUM"),
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ):
        if candidate and Path(candidate).exists():
            return candidate
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=system_chromium(),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    # The fake B2C's certificate comes from the tests' own CA, which the browser does not know:
    # a person would accept the warning once.
    context = browser.new_context(ignore_https_errors=True)
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


def sign_up_on_the_page(page: Page, platform: Platform, *, name: str, email: str, password: str) -> None:
    """Create an account on the fake's page as a person would: B2C's one form; External ID's
    form, then the code sent to the address (the fake shows its inbox on the page)."""
    signup = page.locator("form#signup")
    signup.locator("input[name=name]").fill(name)
    signup.locator("input[name=email]").fill(email)
    signup.locator("input[name=password]").fill(password)
    if not platform.external_id:
        signup.locator("select[name=kind]").select_option("local")  # no emails claim: Graph is asked
        signup.locator("button[type=submit]").click()
        return
    signup.locator("button[type=submit]").click()
    code = page.locator("#inbox-code").inner_text()
    page.locator("form#verify input[name=code]").fill(code)
    page.locator("form#verify button[type=submit]").click()


@pytest.mark.parametrize("platform", PLATFORMS, indirect=True)
def test_sign_up_upload_and_sign_out(page: Page, platform_server, platform: Platform, fake, tmp_path):
    app_server = platform_server
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    email = f"browser-{uuid.uuid4().hex[:8]}@example.com"

    page.goto(app_server.url)
    page.click("#sign-in")
    sign_up_on_the_page(page, platform, name="Grace Hopper", email=email, password="Cobol-Compiler-1959")

    page.wait_for_url(f"{app_server.url}/")
    expect(page.locator("#userEmail")).to_have_text(f"User Email: {email}")
    expect(page.locator("header")).to_contain_text("Grace Hopper")

    picture = tmp_path / "sunset.jpg"
    picture.write_bytes(make_image("JPEG", (640, 360), color=(250, 120, 30)))
    page.set_input_files("#file", str(picture))
    page.click("#upload-form button[type=submit]")
    expect(page.locator("#upload-status li .result")).to_have_text("stored")
    item = page.locator("#gallery li")
    expect(item).to_have_count(1)
    expect(item.locator(".name")).to_have_text("sunset.jpg")
    thumbnail = item.locator("img")
    expect(thumbnail).to_have_attribute(
        "src", re.compile(r"^http://127\.0\.0\.1:\d+/devstoreaccount1/images/")
    )
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=thumbnail.element_handle())

    item.locator("button.delete").click()
    item.locator("button.confirm-yes").click()
    expect(page.locator("#gallery li")).to_have_count(0)
    expect(page.locator("#empty-gallery")).to_be_visible()

    page.click("#sign-out")
    page.wait_for_url(f"{app_server.url}/")
    expect(page.locator("#sign-in")).to_be_visible()
    assert fake.counters()["external_logout" if platform.external_id else "logout"] == 1
    assert problems == []


def test_uploads_and_deletes_without_a_referer(page: Page, app_server, tmp_path):
    """Privacy settings and extensions strip Referer: the browser's Origin header and the token
    are enough, over HTTPS in the production configuration."""
    stripped: list[str] = []

    def without_referer(route) -> None:
        request = route.request
        headers = {k: v for k, v in request.headers.items() if k.lower() != "referer"}
        if request.method in ("POST", "DELETE"):
            stripped.append(f"{request.method} {headers.get('origin')}")
        route.continue_(headers=headers)

    page.route(f"{app_server.url}/**", without_referer)
    page.goto(app_server.url)
    page.click("#sign-in")
    signup = page.locator("form#signup")
    signup.locator("input[name=name]").fill("Ada Lovelace")
    signup.locator("input[name=email]").fill(f"private-{uuid.uuid4().hex[:8]}@example.com")
    signup.locator("input[name=password]").fill("Analytical-Engine-1843")
    signup.locator("button[type=submit]").click()
    page.wait_for_url(f"{app_server.url}/")

    picture = tmp_path / "private.png"
    picture.write_bytes(make_image("PNG", (64, 48)))
    page.set_input_files("#file", str(picture))
    page.click("#upload-form button[type=submit]")
    expect(page.locator("#gallery li")).to_have_count(1)
    page.locator("#gallery li button.delete").click()
    page.locator("#gallery li button.confirm-yes").click()
    expect(page.locator("#gallery li")).to_have_count(0)
    assert stripped == [f"POST {app_server.url}", f"DELETE {app_server.url}"]
