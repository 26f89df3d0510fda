"""Where the tests' Azurite and PostgreSQL come from: `TEST_SERVICES=auto|containers|local|external`.

- containers: testcontainers (needs a Docker engine); images pinned.
- local: devstack's processes, the same code `make dev` uses.
- external: `TEST_DATABASE_URL` and `TEST_STORAGE_CONNECTION_STRING` from the environment.
- auto (default): containers when a Docker engine answers, else local.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from azure.storage.blob import BlobServiceClient, ContainerClient

from devstack.fake_identity.tls import TlsFiles
from devstack.postgres import RoleUrls, database_url, least_privilege_roles

AZURITE_IMAGE = "mcr.microsoft.com/azure-storage/azurite:3.35.0"
IMAGES_CONTAINER = "images"  # the app's AZURE_STORAGE_CONTAINER in the tests
POSTGRES_IMAGE = "postgres:16.6-alpine"
PROVIDERS = ("auto", "containers", "local", "external")


@dataclass
class Services:
    provider: str
    database_url: str  # a superuser's, for what tests check and set up behind the app's back
    storage_connection_string: str
    # The local provider's handles, for tests that stop and start a service mid-test.
    postgres: Any = None
    azurite: Any = None
    # The app's least-privilege role and the schema owner its migrations run as (devstack's
    # roles); an external server is used as given, with one role.
    roles: RoleUrls | None = None

    def app_database(self, database: str | None = None) -> dict[str, str]:
        """DATABASE_URL and DATABASE_OWNER_URL for the app, on the database the superuser's URL
        `database` names (default: the app's own)."""
        if self.roles is None:
            return {"DATABASE_URL": database or self.database_url}
        name = urlsplit(database or self.database_url).path.lstrip("/")
        return {
            "DATABASE_URL": database_url(self.roles.app, name),
            "DATABASE_OWNER_URL": database_url(self.roles.owner, name),
        }

    def images(self) -> ContainerClient:
        """The app's images container, as the tests see it."""
        return BlobServiceClient.from_connection_string(self.storage_connection_string).get_container_client(
            IMAGES_CONTAINER
        )

    def blobs_of(self, oid: str) -> set[str]:
        """Names of a user's committed blobs (staged, uncommitted blocks are not a blob)."""
        return {b.name for b in self.images().list_blobs(name_starts_with=f"{oid}/")}


def docker_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
        client.close()
        return True
    except Exception:  # noqa: BLE001  # any failure means "no engine here"
        return False


def chosen_provider() -> str:
    provider = os.environ.get("TEST_SERVICES", "auto").strip().lower() or "auto"
    if provider not in PROVIDERS:
        raise ValueError(f"TEST_SERVICES must be one of {', '.join(PROVIDERS)}, got {provider!r}")
    if provider == "auto":
        return "containers" if docker_answers() else "local"
    return provider


@contextlib.contextmanager
def provide(provider: str, tls: TlsFiles | None = None) -> Iterator[Services]:
    """The services; with `tls`, the local PostgreSQL serves TLS with its certificate and the
    app's URLs verify it."""
    if provider == "local":
        yield from _local(tls)
    elif provider == "containers":
        yield from _containers()
    elif provider == "external":
        yield _external()
    else:
        raise ValueError(f"unknown provider {provider!r}")


def _local(tls: TlsFiles | None) -> Iterator[Services]:
    from devstack.azurite import Azurite
    from devstack.postgres import Postgres

    with Postgres(tls=tls) as postgres, Azurite() as azurite:
        roles = least_privilege_roles(postgres.url, query=postgres.verified_tls)
        yield Services("local", postgres.url, azurite.connection_string, postgres, azurite, roles)


def _containers() -> Iterator[Services]:
    from testcontainers.community.azurite import AzuriteContainer
    from testcontainers.community.postgres import PostgresContainer

    postgres = PostgresContainer(
        POSTGRES_IMAGE,
        username="photoshare",
        password="photoshare",  # noqa: S106
        dbname="photoshare",
        driver=None,
    )
    azurite = AzuriteContainer(AZURITE_IMAGE).with_command(
        "azurite-blob --blobHost 0.0.0.0 --skipApiVersionCheck --inMemoryPersistence"
    )
    with postgres, azurite:
        url = postgres.get_connection_url()
        roles = least_privilege_roles(url)
        yield Services("containers", url, azurite.get_connection_string(), roles=roles)


def _external() -> Services:
    missing = [n for n in ("TEST_DATABASE_URL", "TEST_STORAGE_CONNECTION_STRING") if not os.environ.get(n)]
    if missing:
        raise ValueError(f"TEST_SERVICES=external needs {' and '.join(missing)}")
    return Services("external", os.environ["TEST_DATABASE_URL"], os.environ["TEST_STORAGE_CONNECTION_STRING"])
