"""A fake Entra ID / Azure AD B2C / Entra External ID / Microsoft Graph server for `make dev` and
the tests.

It speaks the real endpoints, token shapes and error bodies over real HTTPS, so the real MSAL
library runs against it unmodified (`instance_discovery=False` for B2C and Entra,
`oidc_authority=` for External ID, which has a listener of its own). Never deployed.
"""

from .client import AuthorizeResult, FakeIdentityClient
from .config import DEFAULT_POLICIES, FakeConfig
from .server import FakeIdentityServer, create_external_id_app, create_fake_app
from .state import DIRECTORIES, EXTERNAL_USER_KINDS, ID_TOKEN_DEFECTS, USER_KINDS
from .tls import TlsFiles, make_tls

__all__ = [
    "DEFAULT_POLICIES",
    "DIRECTORIES",
    "EXTERNAL_USER_KINDS",
    "ID_TOKEN_DEFECTS",
    "USER_KINDS",
    "AuthorizeResult",
    "FakeConfig",
    "FakeIdentityClient",
    "FakeIdentityServer",
    "TlsFiles",
    "create_external_id_app",
    "create_fake_app",
    "make_tls",
]
