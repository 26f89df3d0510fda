"""A fake Entra ID / Azure AD B2C / Microsoft Graph server for `make dev` and the tests.

It speaks the real endpoints, token shapes and error bodies over real HTTPS, so the real MSAL
library runs against it unmodified (with `instance_discovery=False`). Never deployed.
"""

from .client import AuthorizeResult, FakeIdentityClient
from .config import DEFAULT_POLICIES, FakeConfig
from .server import FakeIdentityServer, create_fake_app
from .state import ID_TOKEN_DEFECTS, USER_KINDS
from .tls import TlsFiles, make_tls

__all__ = [
    "DEFAULT_POLICIES",
    "ID_TOKEN_DEFECTS",
    "USER_KINDS",
    "AuthorizeResult",
    "FakeConfig",
    "FakeIdentityClient",
    "FakeIdentityServer",
    "TlsFiles",
    "create_fake_app",
    "make_tls",
]
