"""App Service's managed identity endpoint, as azure-identity calls it on a site.

App Service sets IDENTITY_ENDPOINT and IDENTITY_HEADER; a token is
`GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=…[&client_id=…]` with the header
`X-IDENTITY-HEADER`, answered with `access_token`, `expires_on` (epoch seconds, as text),
`resource`, `token_type` and `client_id` ("Managed identities for App Service", REST protocol).
No `client_id`: the site's system-assigned identity; with one, that user-assigned identity,
which must be attached to the site (here: named in `ManagedIdentities.user_assigned`).

The tokens are access tokens signed by the fake's key for the requested resource, with the
identity's object id in `oid`. What a resource does with them is up to its own fake: the tests
give PostgreSQL a role whose password is the last token issued for it (`on_issue`).
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from .context import current
from .managed_identity_state import MANAGED_IDENTITY_PATH

bp = Blueprint("fake_managed_identity", __name__)


def _error(status: int, error: str, description: str) -> Response:
    response = jsonify({"error": error, "error_description": description})
    response.status_code = status
    return response


@bp.get(MANAGED_IDENTITY_PATH)
def token() -> Response:
    fake = current()
    identities = fake.managed_identities
    if request.headers.get("X-IDENTITY-HEADER") != identities.header:
        return _error(401, "unauthorized", "The X-IDENTITY-HEADER header is missing or wrong.")
    resource = request.args.get("resource", "")
    if not resource:
        return _error(400, "invalid_request", "The resource parameter is required.")
    client_id = request.args.get("client_id") or identities.system_client_id
    if client_id != identities.system_client_id and client_id not in identities.user_assigned:
        return _error(400, "invalid_request", f"No identity with client id {client_id} is assigned here.")
    issued = identities.issue(client_id, resource.removesuffix("/.default"), fake.key.sign)
    return jsonify(
        {
            "access_token": issued.token,
            "expires_on": str(issued.expires_on),
            "resource": issued.resource,
            "token_type": "Bearer",
            "client_id": issued.client_id,
        }
    )
