"""Errors for people: a browser gets a page whose title says what happened and what to do, never
an error code or a form field's name; JSON only for the API and for clients that ask for it."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.unit.test_views import BROWSER, JSON, https_client, offline_app, sign_in


@pytest.fixture(scope="module")
def app() -> Flask:
    return offline_app()


@pytest.fixture
def client(app: Flask) -> Iterator[FlaskClient]:
    with https_client(app) as client:
        yield client


def title_of(page: str) -> str:
    found = re.search(r"<h1>(.*?)</h1>", page)
    assert found, page
    return found.group(1)


def test_a_signed_out_browser_opening_a_photo_link_signs_in_and_comes_back(client: FlaskClient):
    photo = f"/photos/{uuid.uuid4()}"
    response = client.get(photo, headers={"Accept": BROWSER})
    assert response.status_code == 302
    assert response.headers["Location"] == f"/auth/login?next={photo}"


def test_a_photo_that_is_not_there_is_a_page_for_a_browser_and_json_for_a_script(client: FlaskClient):
    sign_in(client)
    path = "/photos/not-a-uuid"
    page = client.get(path, headers={"Accept": BROWSER})
    assert page.status_code == 404 and page.mimetype == "text/html"
    text = page.get_data(as_text=True)
    assert title_of(text) == "Not found"
    assert "Check the link, or go back to your photos." in text
    assert "not_found" not in text and '{"error"' not in text
    script = client.get(path, headers={"Accept": JSON})
    assert script.status_code == 404 and script.get_json()["error"] == "not_found"
    assert client.get(path).get_json()["error"] == "not_found"  # Accept: */* (curl): JSON


@pytest.mark.parametrize(
    ("headers", "title"),
    [
        ({}, "That did not work"),  # no token, no origin: over HTTPS, 400 origin_missing
        ({"Origin": "https://localhost"}, "That did not work"),  # 400 csrf_token_missing
        ({"Origin": "https://evil.example"}, "Not allowed"),  # 403 cross_origin
    ],
)
def test_a_refused_form_post_is_a_page_in_a_persons_words(client: FlaskClient, headers, title):
    sign_in(client)
    page = client.post(
        "/photos", data={}, content_type="multipart/form-data", headers={"Accept": BROWSER, **headers}
    )
    assert page.mimetype == "text/html"
    text = page.get_data(as_text=True)
    assert title_of(text) == title
    for developer_words in ("csrf", "Csrf", "X-CSRFToken", "csrf_token", "origin_missing", "cross_origin"):
        assert developer_words not in title_of(text)
    assert "X-CSRFToken" not in text and "form field" not in text
    assert "Back to your photos" in text


def test_a_signed_out_form_post_offers_sign_in(client: FlaskClient):
    page = client.post("/photos", data={}, content_type="multipart/form-data", headers={"Accept": BROWSER})
    text = page.get_data(as_text=True)
    assert page.status_code == 401 and title_of(text) == "Please sign in"
    assert 'href="/auth/login?next=/"' in text  # back to the gallery, not to a form's POST
