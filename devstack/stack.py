"""The local stack: Azurite, PostgreSQL and the fake Entra/B2C/Graph server, plus the app's
environment pointing at them.

`make dev` (devstack/__main__.py) and the tests' `local` provider start services through
the same classes; this module only wires them together.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from devstack.azurite import Azurite
from devstack.fake_identity.config import FakeConfig
from devstack.fake_identity.server import FakeIdentityServer
from devstack.fake_identity.tls import load_or_make_tls, make_tls
from devstack.postgres import Postgres, RoleUrls, least_privilege_roles

# Per IDENTITY_PLATFORM, the settings that, all present (in the environment or .env), mean
# "use the real tenant" rather than the fake.
REAL_TENANT_SETTINGS = {
    "b2c": (
        "AZURE_AD_B2C_TENANT_NAME",
        "AZURE_AD_B2C_TENANT_ID",
        "AZURE_AD_B2C_CLIENT_ID",
        "AZURE_AD_B2C_CLIENT_SECRET",
    ),
    "external_id": (
        "EXTERNAL_ID_TENANT_SUBDOMAIN",
        "EXTERNAL_ID_TENANT_ID",
        "EXTERNAL_ID_CLIENT_ID",
        "EXTERNAL_ID_CLIENT_SECRET",
    ),
}
PLATFORMS = tuple(REAL_TENANT_SETTINGS)
# requests lets the first two override a Session's verify=, and OpenSSL reads SSL_CERT_FILE for
# its default trust (libpq's `sslrootcert=system`, via app/db.py); set to a bundle of the system
# roots plus the tests' CA, for the app and for any process of ours that talks to the fake.
CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")


def identity_env(fake: FakeIdentityServer, bundle_pem: Path, platform: str = "b2c") -> dict[str, str]:
    """The app's identity and Graph settings for a running fake, on `platform`, and the trust
    for its CA. The fake's main port plays login.microsoftonline.com, b2clogin.com and Graph;
    its second port ciamlogin.com."""
    config = fake.config
    host = f"{config.public_host}:{fake.port}"
    common = {
        "IDENTITY_PLATFORM": platform,
        "AZURE_AUTHORITY_HOST": host,
        "GRAPH_ENDPOINT": fake.base_url,
        **dict.fromkeys(CA_BUNDLE_VARIABLES, str(bundle_pem)),
    }
    if platform == "external_id":
        return {
            "EXTERNAL_ID_TENANT_SUBDOMAIN": config.external_subdomain,
            "EXTERNAL_ID_TENANT_ID": config.external_tenant_id,
            "EXTERNAL_ID_CLIENT_ID": config.external_client_id,
            "EXTERNAL_ID_CLIENT_SECRET": config.external_client_secret,
            "EXTERNAL_ID_AUTHORITY": f"{fake.external_id_url}/{config.external_tenant_id}/v2.0",
            **common,
        }
    return {
        "AZURE_AD_B2C_TENANT_NAME": config.b2c_tenant_name,
        "AZURE_AD_B2C_TENANT_ID": config.b2c_tenant_id,
        "AZURE_AD_B2C_CLIENT_ID": config.client_id,
        "AZURE_AD_B2C_CLIENT_SECRET": config.client_secret,
        "AZURE_AD_B2C_AUTHORITY_HOST": host,
        **common,
    }


def without_identity(env: Mapping[str, str]) -> dict[str, str]:
    """`env` without any platform's identity settings (each platform refuses the other's)."""
    prefixes = ("AZURE_AD_B2C_", "EXTERNAL_ID_", "IDENTITY_PLATFORM")
    return {k: v for k, v in env.items() if not k.startswith(prefixes)}


class LocalStack:
    """Everything the app needs, as local processes (and a thread for the fake identity server)."""

    def __init__(
        self,
        *,
        base_dir: Path | None = None,
        fake_identity: bool = True,
        tls_dir: Path | None = None,
        platform: str = "b2c",
        data_dir: Path | None = None,
    ) -> None:
        """With `data_dir`, what users create is kept there across runs: PostgreSQL's cluster,
        Azurite's blobs and the fake's accounts (`fake-identity.json`); without, it all goes
        when the stack stops."""
        self.platform = platform
        self._own_dir = base_dir is None
        self.base_dir = base_dir or Path(tempfile.mkdtemp(prefix="photoshare-devstack-"))
        self.base_dir.chmod(0o711)  # the postgres user must reach its data dir below
        self.data_dir = data_dir
        if data_dir is not None:
            data_dir.mkdir(parents=True, exist_ok=True)
            data_dir.chmod(0o711)
        kept = data_dir or self.base_dir
        self.postgres = Postgres(base_dir=kept / "postgres")
        self.azurite = Azurite(
            log_dir=self.base_dir / "azurite", data_dir=data_dir / "azurite" if data_dir else None
        )
        self.roles: RoleUrls | None = None
        self.fake: FakeIdentityServer | None = None
        self._want_fake = fake_identity
        self.bundle_pem: Path | None = None
        self.ca_pem: Path | None = None
        self._tls_dir = tls_dir

    def start(self) -> LocalStack:
        try:
            self.postgres.start()
            self.roles = least_privilege_roles(self.postgres.url)
            self.azurite.start()
            if self._want_fake:
                tls = load_or_make_tls(self._tls_dir) if self._tls_dir else make_tls(self.base_dir / "tls")
                self.bundle_pem, self.ca_pem = tls.bundle_pem, tls.ca_pem
                self.fake = FakeIdentityServer(self._fake_config(), tls=tls).start()
        except BaseException:
            self.stop()
            raise
        return self

    def app_env(self, base: Mapping[str, str] | None = None, **overrides: str) -> dict[str, str]:
        """A complete environment for the app process: `base` (default os.environ) + the stack."""
        env = dict(os.environ if base is None else base)
        if self.roles is None:
            raise RuntimeError("LocalStack.app_env needs a started stack")
        env.update(
            APP_ENV="development",
            SECRET_KEY=env.get("SECRET_KEY") or secrets.token_hex(32),
            DATABASE_URL=self.roles.app,
            DATABASE_OWNER_URL=self.roles.owner,
            AZURE_STORAGE_CONNECTION_STRING=self.azurite.connection_string,
        )
        env.pop("AZURE_STORAGE_ACCOUNT_URL", None)
        if self.fake is not None and self.bundle_pem is not None:
            env = without_identity(env)
            env.update(identity_env(self.fake, self.bundle_pem, self.platform))
        env.update(overrides)
        return env

    @property
    def _accounts_file(self) -> Path | None:
        return self.data_dir / "fake-identity.json" if self.data_dir else None

    def _fake_config(self) -> FakeConfig:
        """The kept tenant and accounts, or a new random tenant."""
        kept = self._accounts_file
        if kept is not None and kept.exists():
            return FakeConfig.from_json_file(kept)
        return FakeConfig.random()

    def _keep_accounts(self) -> None:
        kept = self._accounts_file
        if kept is None or self.fake is None:
            return
        users = [
            {
                "email": u.email,
                "name": u.name,
                "password": u.password,
                "kind": u.kind,
                "mail": u.mail,
                "oid": u.oid,
                "directory": u.directory,
            }
            for u in self.fake.fake.state.users()
        ]
        dataclasses.replace(self.fake.config, users=users).write_json(kept)
        kept.chmod(0o600)  # the fake's passwords: test accounts, but still only the owner's

    def stop(self) -> None:
        if self.fake is not None:
            self._keep_accounts()
            self.fake.stop()
            self.fake = None
        if self.data_dir is not None:
            self.azurite.stop()
            self.postgres.stop()
        else:
            self.azurite.destroy()
            self.postgres.destroy()
        if self._own_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
