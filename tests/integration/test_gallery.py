"""The gallery page in Chromium (one request per file with its progress, "Load more", deleting
after a confirmation, all of it by keyboard too) and the viewer page with its download, against
the running app. The main states are saved as screenshots in test-screenshots/ (git ignores it)."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import requests
from playwright.sync_api import Browser, Page, Route, expect

from devstack.appserver import Site
from tests.integration.client import AppClient, make_image, noise_jpeg
from tests.integration.test_browser import browser  # noqa: F401  (the module's Chromium)
from tests.services import Services

NOTES_REFUSED = "notes.jpg is not an image: only JPEG, PNG, GIF and WebP images are accepted."
PASSWORD = "Apollo-Guidance-1969"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-screenshots"


@pytest.fixture(scope="session")
def screenshot() -> Callable[[Page, str], None]:
    """Save the page's viewport as test-screenshots/<name>.png, replacing the last run's."""
    SCREENSHOTS.mkdir(exist_ok=True)

    def save(page: Page, name: str) -> None:
        page.screenshot(path=SCREENSHOTS / f"{name}.png", animations="disabled", caret="initial")

    return save


@pytest.fixture
def page(browser: Browser, app_server: Site) -> Iterator[Page]:  # noqa: F811
    """A new person signed up on the fake's page; console errors (a CSP refusal among them)
    and failed requests collected in `page.problems`, which must stay empty; the address it
    signed up with in `page.email`, the password is `PASSWORD`."""
    context = browser.new_context(ignore_https_errors=True)
    page = context.new_page()
    page.set_default_timeout(10_000)
    problems: list[str] = []
    page.on(
        "console",
        lambda msg: problems.append(f"{msg.text} ({msg.location['url']})") if msg.type == "error" else None,
    )
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.problems = problems  # type: ignore[attr-defined]
    page.email = f"gallery-{uuid.uuid4().hex[:8]}@example.com"  # type: ignore[attr-defined]
    page.goto(f"{app_server.url}/auth/login")
    signup = page.locator("form#signup")
    signup.locator("input[name=name]").fill("Margaret Hamilton")
    signup.locator("input[name=email]").fill(page.email)  # type: ignore[attr-defined]
    signup.locator("input[name=password]").fill(PASSWORD)
    signup.locator("button[type=submit]").click()
    page.wait_for_url(f"{app_server.url}/")
    yield page
    context.close()


def upload_behind_the_page(page: Page, app_server: Site, name: str, body: bytes) -> dict:
    """Store a photo with the page's own cookies and token, without the page knowing."""
    token = page.locator('meta[name="csrf-token"]').get_attribute("content") or ""
    response = page.request.post(
        f"{app_server.url}/photos",
        multipart={"file": {"name": name, "mimeType": "image/png", "buffer": body}},
        headers={"X-CSRFToken": token, "Origin": app_server.url, "Accept": "application/json"},
    )
    assert response.status == 201, response.text()
    return response.json()["photos"][0]


def test_each_file_is_its_own_request_with_its_progress_and_result(
    page: Page, app_server: Site, tmp_path: Path
):
    good, notes = tmp_path / "harbour.png", tmp_path / "notes.jpg"
    good.write_bytes(make_image("PNG", (90, 30)))
    notes.write_text("shopping: milk, eggs")
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    held: list[Route] = []
    page.route(f"{app_server.url}/photos", lambda route: held.append(route))
    page.evaluate("window.sameDocument = true")

    page.set_input_files("#file", [str(good), str(notes)])
    page.click("#upload-button")
    rows = page.locator("#upload-status li")
    expect(rows).to_have_count(2)
    expect(page.locator("#upload-button")).to_be_disabled()  # while the first request is held
    expect(rows.nth(0).locator(".result")).to_have_text("uploading")
    expect(rows.nth(1).locator(".result")).to_have_text("waiting")
    assert len(held) == 1
    held[0].continue_()
    page.unroute(f"{app_server.url}/photos")

    expect(rows.nth(0).locator(".result")).to_have_text("stored")
    expect(rows.nth(0).locator("progress")).to_have_attribute("value", "100")
    expect(rows.nth(1).locator(".result")).to_have_text(NOTES_REFUSED)
    expect(page.locator("#upload-button")).to_be_enabled()
    item = page.locator("#gallery li")
    expect(item).to_have_count(1)  # at once, without a reload
    expect(item.locator(".name")).to_have_text("harbour.png")
    expect(page.locator("#empty-gallery")).to_be_hidden()
    photo_id = item.get_attribute("data-photo-id")
    expect(item.locator("a.thumb")).to_have_attribute("href", f"/photos/{photo_id}/view")
    assert page.evaluate("window.sameDocument") is True
    assert posts == [f"{app_server.url}/photos"] * 2
    # Browser-side refusal messages are the page's; the 415 itself is the request's answer.
    assert [p for p in page.problems if "415" not in p] == []  # type: ignore[attr-defined]


def test_the_form_without_script_names_the_refused_file(browser: Browser, app_server: Site, tmp_path):  # noqa: F811
    context = browser.new_context(ignore_https_errors=True, java_script_enabled=False)
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        page.goto(f"{app_server.url}/auth/login")
        signup = page.locator("form#signup")
        signup.locator("input[name=name]").fill("No Script")
        signup.locator("input[name=email]").fill(f"noscript-{uuid.uuid4().hex[:8]}@example.com")
        signup.locator("input[name=password]").fill("Plain-Forms-Work-1")
        signup.locator("button[type=submit]").click()
        page.wait_for_url(f"{app_server.url}/")
        expect(page.locator("#upload-limits")).to_contain_text("JPEG, PNG, GIF or WebP; up to 20 MB")
        good, notes = tmp_path / "fine.png", tmp_path / "notes.jpg"
        good.write_bytes(make_image("PNG", (40, 30)))
        notes.write_text("shopping: milk, eggs")
        page.set_input_files("#file", [str(good), str(notes)])
        page.click("#upload-button")
        expect(page.locator("main")).to_contain_text(NOTES_REFUSED)
        page.goto(f"{app_server.url}/")
        expect(page.locator("#empty-gallery")).to_be_visible()  # all or nothing
    finally:
        context.close()


def wait_for_images(page: Page, selector: str) -> None:
    page.wait_for_function(
        "s => [...document.querySelectorAll(s)].every(img => img.complete && img.naturalWidth > 0)",
        arg=selector,
    )


# A real upload over a link limited to 200 KB/s: 600 KB take about three seconds.
THROTTLED = {"offline": False, "latency": 50, "downloadThroughput": -1, "uploadThroughput": 200 * 1024}
UNTHROTTLED = {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
MIDWAY = """() => {
  const row = document.querySelector("#upload-status li");
  const bar = row && row.querySelector("progress");
  const uploading = row && row.querySelector(".result").textContent === "uploading";
  return uploading && bar.value > 0 && bar.value < bar.max ? bar.value : null;
}"""


def test_a_throttled_upload_shows_its_progress_before_it_is_stored(
    page: Page, tmp_path: Path, screenshot: Callable[[Page, str], None]
):
    picture = tmp_path / "noise.jpg"
    picture.write_bytes(noise_jpeg(390))
    assert 500_000 < picture.stat().st_size < 700_000
    network = page.context.new_cdp_session(page)
    network.send("Network.enable")
    network.send("Network.emulateNetworkConditions", THROTTLED)

    page.set_input_files("#file", str(picture))
    page.click("#upload-button")
    midway = page.wait_for_function(MIDWAY, polling=50).json_value()
    assert 0 < midway < 100  # the bar moved while the file was still on its way
    screenshot(page, "upload-in-progress")
    network.send("Network.emulateNetworkConditions", UNTHROTTLED)

    row = page.locator("#upload-status li")
    expect(row.locator(".result")).to_have_text("stored")
    expect(row.locator("progress")).to_have_attribute("value", "100")
    expect(page.locator("#gallery li img")).to_have_attribute("alt", "noise.jpg")
    network.detach()
    assert page.problems == []  # type: ignore[attr-defined]


def test_load_more_follows_the_cursor_past_the_first_24(
    page: Page, app_server: Site, services: Services, screenshot: Callable[[Page, str], None]
):
    first = upload_behind_the_page(page, app_server, "newest.png", make_image("PNG", (60, 20)))
    with psycopg.connect(services.database_url) as conn:  # 29 older copies, sharing its thumbnail
        conn.execute(
            "INSERT INTO photos (id, owner_oid, owner_email, blob_name, thumb_blob_name, filename,"
            " content_type, size, width, height, created_at)"
            " SELECT gen_random_uuid(), owner_oid, owner_email, owner_oid || '/' || gen_random_uuid()"
            " || '.png', thumb_blob_name, 'older-' || n || '.png', content_type, size, width, height,"
            " created_at - n * interval '1 second'"
            " FROM photos, generate_series(1, 29) AS n WHERE id = %s",
            (first["id"],),
        )
    page.reload()
    items = page.locator("#gallery li")
    expect(items).to_have_count(24)
    expect(items.first.locator(".name")).to_have_text("newest.png")
    expect(items.first.locator("img")).to_have_attribute("alt", "newest.png")
    fit = items.first.locator("img").evaluate("img => getComputedStyle(img).objectFit")
    assert fit == "contain"
    wait_for_images(page, "#gallery li:nth-child(-n+8) img")
    screenshot(page, "gallery")
    page.click("#load-more")
    expect(items).to_have_count(30)
    expect(items.last.locator(".name")).to_have_text("older-29.png")
    expect(items.last.locator("img")).to_have_attribute("alt", "older-29.png")
    expect(page.locator("#load-more")).to_be_hidden()
    names = items.locator(".name").all_inner_texts()
    assert len(set(names)) == 30
    assert page.problems == []  # type: ignore[attr-defined]


def answering(status: int):
    def fulfil(route: Route) -> None:
        route.fulfill(status=status, json={"error": "refused", "message": "the server's own words"})

    return fulfil


def test_delete_asks_first_and_says_why_it_failed(page: Page, app_server: Site):
    gone = upload_behind_the_page(page, app_server, "gone.png", make_image("PNG", (30, 30)))
    kept = upload_behind_the_page(page, app_server, "kept.png", make_image("PNG", (30, 40)))
    page.reload()
    gone_item = page.locator(f'#gallery li[data-photo-id="{gone["id"]}"]')
    kept_item = page.locator(f'#gallery li[data-photo-id="{kept["id"]}"]')

    gone_item.locator("button.delete").click()
    expect(gone_item.locator(".confirm")).to_be_visible()
    gone_item.locator("button.confirm-no").click()
    expect(gone_item.locator(".confirm")).to_be_hidden()
    expect(page.locator("#gallery li")).to_have_count(2)

    token = page.locator('meta[name="csrf-token"]').get_attribute("content") or ""
    deleted = page.request.delete(
        f"{app_server.url}/photos/{gone['id']}", headers={"X-CSRFToken": token, "Origin": app_server.url}
    )
    assert deleted.status == 204
    gone_item.locator("button.delete").click()
    gone_item.locator("button.confirm-yes").click()
    expect(page.locator("#gallery-message")).to_have_text("gone.png was already deleted.")
    expect(page.locator("#gallery li")).to_have_count(1)

    # What the service answers when the session ended or storage is down, played by the route.
    for status, words in ((401, "your session ended: sign in again"), (503, "try again in a moment")):
        page.route(f"{app_server.url}/photos/*", answering(status))
        kept_item.locator("button.delete").click()
        kept_item.locator("button.confirm-yes").click()
        expect(kept_item.locator(".error")).to_contain_text(words)
        page.unroute(f"{app_server.url}/photos/*")
    kept_item.locator("button.delete").click()
    kept_item.locator("button.confirm-yes").click()
    expect(page.locator("#gallery li")).to_have_count(0)
    expect(page.locator("#empty-gallery")).to_be_visible()


def test_the_sign_in_link_after_a_session_ended(page: Page, app_server: Site):
    photo = upload_behind_the_page(page, app_server, "late.png", make_image("PNG", (20, 20)))
    page.reload()
    page.context.clear_cookies()  # signed out behind the page's back: the real 401
    item = page.locator(f'#gallery li[data-photo-id="{photo["id"]}"]')
    item.locator("button.delete").click()
    item.locator("button.confirm-yes").click()
    expect(item.locator(".error")).to_have_text("Not deleted: your session ended: sign in again Sign in")
    expect(item.locator(".error a")).to_have_attribute("href", "/auth/login?next=/")


def test_a_thumbnail_opens_the_viewer_inside_the_app(page: Page, app_server: Site):
    older = upload_behind_the_page(page, app_server, "older.png", make_image("PNG", (50, 20)))
    upload_behind_the_page(page, app_server, "newer.png", make_image("PNG", (20, 50)))
    page.reload()
    page.locator("#gallery li a.thumb").first.click()
    expect(page).to_have_title("newer.png · photoshare")
    expect(page.locator("#dimensions")).to_have_text("20 × 50 pixels")
    image = page.locator("#viewer-image")
    page.wait_for_function("img => img.complete && img.naturalWidth === 20", arg=image.element_handle())
    page.click("#next")
    expect(page).to_have_url(f"{app_server.url}/photos/{older['id']}/view")
    expect(page.locator("#previous")).to_be_visible()
    assert page.problems == []  # type: ignore[attr-defined]


def sign_in_on_the_fake(page: Page, email: str) -> None:
    signin = page.locator("form#signin")
    signin.locator("input[name=email]").fill(email)
    signin.locator("input[name=password]").fill(PASSWORD)
    signin.locator("button[type=submit]").click()


def test_a_photo_link_opened_signed_out_comes_back_to_the_photo(page: Page, app_server: Site):
    photo = upload_behind_the_page(page, app_server, "shared.png", make_image("PNG", (30, 20)))
    page.context.clear_cookies()  # the app's and the fake's: signed out everywhere
    viewer_url = f"{app_server.url}/photos/{photo['id']}/view"
    page.goto(viewer_url)
    expect(page.locator("form#signin")).to_be_visible()
    assert not page.url.startswith(app_server.url)  # on the identity provider's page
    sign_in_on_the_fake(page, page.email)  # type: ignore[attr-defined]
    page.wait_for_url(viewer_url)
    expect(page.locator("#viewer-title")).to_have_text("shared.png")

    page.context.clear_cookies()
    page.goto(f"{app_server.url}/photos/{photo['id']}")  # the image itself
    sign_in_on_the_fake(page, page.email)  # type: ignore[attr-defined]
    page.wait_for_url(re.compile(r"/devstoreaccount1/images/"))
    assert page.evaluate("document.contentType") == "image/png"
    # Shown as a document of its own, the image makes Chromium ask Storage for /favicon.ico.
    problems = page.problems  # type: ignore[attr-defined]
    assert [p for p in problems if not p.endswith("/favicon.ico)")] == []


def tab_to(page: Page, selector: str, limit: int = 30) -> None:
    """Press Tab until the focus is on `selector`, as a person without a mouse would."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"{selector} is not reachable with Tab")


def test_the_keyboard_opens_the_viewer_walks_it_and_deletes(
    page: Page, app_server: Site, screenshot: Callable[[Page, str], None]
):
    older = upload_behind_the_page(page, app_server, "older.png", make_image("PNG", (50, 20)))
    newer = upload_behind_the_page(page, app_server, "newer.png", make_image("PNG", (20, 50)))
    page.reload()
    tab_to(page, "#gallery a.thumb")
    focused = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert focused == "solid"  # :focus-visible draws the ring
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{app_server.url}/photos/{newer['id']}/view")
    expect(page.locator("#viewer-image")).to_have_attribute("alt", "newer.png")

    tab_to(page, "#next")
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{app_server.url}/photos/{older['id']}/view")
    wait_for_images(page, "#viewer-image")
    screenshot(page, "viewer")
    page.keyboard.press("ArrowLeft")
    expect(page).to_have_url(f"{app_server.url}/photos/{newer['id']}/view")
    page.keyboard.press("ArrowLeft")  # the newest has no previous: the page stays
    page.keyboard.press("ArrowRight")
    expect(page).to_have_url(f"{app_server.url}/photos/{older['id']}/view")

    page.goto(f"{app_server.url}/")
    item = page.locator(f'#gallery li[data-photo-id="{older["id"]}"]')
    tab_to(page, f'li[data-photo-id="{older["id"]}"] button.delete')
    page.keyboard.press("Enter")
    expect(item.locator(".confirm")).to_be_visible()
    expect(item.locator("button.confirm-yes")).to_be_focused()
    expect(item.locator(".confirm")).to_have_attribute("aria-label", "Delete older.png?")
    screenshot(page, "delete-confirmation")
    page.keyboard.press("Escape")
    expect(item.locator(".confirm")).to_be_hidden()
    expect(item.locator("button.delete")).to_be_focused()

    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    expect(item.locator("button.confirm-no")).to_be_focused()
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Enter")
    expect(page.locator("#gallery li")).to_have_count(1)
    expect(page.locator(f'#gallery li[data-photo-id="{newer["id"]}"] a.thumb')).to_be_focused()
    assert page.problems == []  # type: ignore[attr-defined]


def test_a_missing_photo_is_the_error_page_with_the_icon(
    page: Page, app_server: Site, screenshot: Callable[[Page, str], None]
):
    answer = page.goto(f"{app_server.url}/photos/{uuid.uuid4()}/view")
    assert answer is not None and answer.status == 404
    expect(page.locator("main a.button[href='/']")).to_be_visible()
    screenshot(page, "error-page")
    icon = page.locator('link[rel="icon"]').get_attribute("href") or ""
    assert icon.endswith(".svg")
    served = page.request.get(f"{app_server.url}{icon}")
    assert served.status == 200 and served.headers["content-type"].startswith("image/svg+xml")
    assert "img-src 'self'" in answer.headers["content-security-policy"]
    # Chromium reports the 404 document itself on the console; nothing else may appear there.
    assert [p for p in page.problems if "404" not in p] == []  # type: ignore[attr-defined]


def test_the_header_fits_a_phone(page: Page, app_server: Site, screenshot: Callable[[Page, str], None]):
    upload_behind_the_page(page, app_server, "pocket.png", make_image("PNG", (40, 30)))
    page.reload()
    page.set_viewport_size({"width": 390, "height": 800})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    header = page.locator("header").bounding_box()
    assert header is not None and header["height"] < 80, header
    # One line: the brand and every item of the header's navigation share a row.
    rows = page.evaluate(
        "[...document.querySelectorAll('header .brand, header nav > *')]"
        ".map(e => { const r = e.getBoundingClientRect(); return [r.top, r.bottom]; })"
    )
    middles = [(top + bottom) / 2 for top, bottom in rows]
    assert len(middles) >= 3 and max(middles) - min(middles) < 8, rows
    fonts = page.evaluate(
        "[...document.querySelectorAll('button')].map(b => getComputedStyle(b).fontFamily)"
        ".concat(getComputedStyle(document.body).fontFamily)"
    )
    assert len(set(fonts)) == 1, fonts
    wait_for_images(page, "#gallery img")
    screenshot(page, "phone-390")


# --- the viewer, over HTTP ------------------------------------------------------------------------


def viewer(client: AppClient, photo_id: str) -> str:
    response = client.get(f"/photos/{photo_id}/view", headers={"Accept": "text/html"})
    assert response.status_code == 200, response.text
    return response.text


def link(page: str, element_id: str) -> str | None:
    found = re.search(rf'id="{element_id}"[^>]*href="([^"]+)"', page)
    return html.unescape(found.group(1)) if found else None


def test_the_viewer_shows_the_photo_its_neighbours_and_downloads_it_under_its_name(
    signed_in: AppClient, client_factory, make_user
):
    names = ["first.png", "été à Paris.png", "last.png"]  # uploaded in this order: last is newest
    ids = []
    for index, name in enumerate(names):
        response = signed_in.upload((name, make_image("PNG", (40 + index, 30)), "image/png"))
        assert response.status_code == 201, response.text
        ids.append(response.json()["photos"][0]["id"])

    middle = viewer(signed_in, ids[1])
    assert "<title>été à Paris.png · photoshare</title>" in middle
    assert "41 × 30 pixels" in middle
    assert link(middle, "previous") == f"/photos/{ids[2]}/view"  # newer, as the gallery shows
    assert link(middle, "next") == f"/photos/{ids[0]}/view"
    assert link(viewer(signed_in, ids[2]), "previous") is None
    assert link(viewer(signed_in, ids[0]), "next") is None

    image_url = re.search(r'id="viewer-image" src="([^"]+)"', middle)
    assert image_url
    shown = requests.get(html.unescape(image_url.group(1)), timeout=10)
    assert shown.status_code == 200 and "Content-Disposition" not in shown.headers
    download_url = link(middle, "download")
    assert download_url
    download = requests.get(download_url, timeout=10)
    assert download.status_code == 200
    assert download.content == shown.content
    assert download.headers["Content-Disposition"] == (
        "attachment; filename=\"_t_ _ Paris.png\"; filename*=UTF-8''%C3%A9t%C3%A9%20%C3%A0%20Paris.png"
    )
    written = requests.put(download_url, data=b"x", headers={"x-ms-blob-type": "BlockBlob"}, timeout=10)
    assert written.status_code == 403  # still read-only
    plain = requests.get(link(viewer(signed_in, ids[0]), "download") or "", timeout=10)
    assert plain.headers["Content-Disposition"] == 'attachment; filename="first.png"'

    other = client_factory()
    other.sign_in(make_user())
    refused = other.get(f"/photos/{ids[1]}/view", headers={"Accept": "text/html"})
    assert refused.status_code == 404 and "text/html" in refused.headers["Content-Type"]
    assert "Paris" not in refused.text
    signed_out = client_factory().get(f"/photos/{ids[1]}/view", headers={"Accept": "text/html"})
    assert signed_out.status_code == 302
    assert signed_out.headers["Location"].endswith(f"/auth/login?next=/photos/{ids[1]}/view")
