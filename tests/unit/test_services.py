"""How the tests choose their services (TEST_SERVICES)."""

import pytest

from tests import services


def test_auto_uses_containers_only_when_docker_answers(monkeypatch):
    monkeypatch.setenv("TEST_SERVICES", "auto")
    monkeypatch.setattr(services, "docker_answers", lambda: False)
    assert services.chosen_provider() == "local"
    monkeypatch.setattr(services, "docker_answers", lambda: True)
    assert services.chosen_provider() == "containers"


@pytest.mark.parametrize("value", ["local", "containers", "external", "LOCAL "])
def test_explicit_choice_wins(monkeypatch, value):
    monkeypatch.setenv("TEST_SERVICES", value)
    monkeypatch.setattr(services, "docker_answers", lambda: pytest.fail("not asked"))
    assert services.chosen_provider() == value.strip().lower()


def test_unknown_choice_is_refused(monkeypatch):
    monkeypatch.setenv("TEST_SERVICES", "cloud")
    with pytest.raises(ValueError, match="TEST_SERVICES must be one of"):
        services.chosen_provider()


def test_external_needs_both_urls(monkeypatch):
    monkeypatch.delenv("TEST_STORAGE_CONNECTION_STRING", raising=False)
    monkeypatch.setenv("TEST_DATABASE_URL", "postgresql://x@127.0.0.1/db")
    with pytest.raises(ValueError, match="TEST_STORAGE_CONNECTION_STRING"), services.provide("external"):
        pass


def test_images_are_pinned():
    for image in (services.AZURITE_IMAGE, services.POSTGRES_IMAGE):
        assert ":" in image and not image.endswith(":latest")
