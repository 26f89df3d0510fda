"""Microsoft Graph v1.0 `users` and the app's own `applications(appId=…)`, as B2C directories and
External ID external tenants expose them.

The shapes are the point of the source article: a B2C local account has `mail: null` and its
address in `identities[signInType=emailAddress].issuerAssignedId`; a social account has it in
`otherMails`. External ID adds the email one-time passcode account (a `federated` identity whose
issuer is `mail`). Only an app-only token from the B2C or the external tenant with a
directory-read role gets in, and it sees that tenant's users only; its app registration (with
the client secret's dates) takes Application.Read.All or a directory-read role.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Any

import jwt
from flask import Blueprint, Response, jsonify, request

from .config import FakeConfig
from .context import FakeIdentity, base_url, current
from .errors import Rejected, graph_error
from .state import LOCAL_ACCOUNT_KINDS, SOCIAL_IDP, FakeUser
from .tokens import GRAPH_AUDIENCES

bp = Blueprint("fake_graph", __name__)

READ_ROLES = {"User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
# Application permissions that read an application object (learn.microsoft.com/graph/api/
# application-get). Application.ReadWrite.OwnedBy is left out: it reaches only the apps the app
# owns, and an app registration is not its own owner.
APPLICATION_READ_ROLES = {
    "Application.Read.All",
    "Application.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
}
# The application properties the fake knows; also its projection without $select.
APPLICATION_PROPERTIES = ("id", "appId", "displayName", "keyCredentials", "passwordCredentials")
_APPLICATION_BY_LOWER = {p.lower(): p for p in APPLICATION_PROPERTIES}
# The display name the Pulumi program gives the client secret it creates (infra/app_registration.py).
SECRET_DISPLAY_NAME = "photoshare sign-in and app-only Graph token"
# Returned when no $select is given (Graph v1.0's default user projection).
DEFAULT_PROPERTIES = (
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
)
ALL_PROPERTIES = (
    *DEFAULT_PROPERTIES,
    "accountEnabled",
    "createdDateTime",
    "creationType",
    "identities",
    "otherMails",
    "userType",
)
_BY_LOWER = {p.lower(): p for p in ALL_PROPERTIES}
WWW_AUTHENTICATE = (
    'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/'
    'authorize", client_id="00000003-0000-0000-c000-000000000000"'
)


def _unauthenticated(message: str) -> Rejected:
    return Rejected(
        graph_error(
            401,
            "InvalidAuthenticationToken",
            message,
            headers={"WWW-Authenticate": WWW_AUTHENTICATE},
        )
    )


def _token_claims(fake: FakeIdentity, token: str) -> dict[str, Any]:
    """The claims of a token this server issued: a JWT signed by a published key, or an opaque
    token (the `opaque_access_token` knob) looked up in its state."""
    audiences = [*GRAPH_AUDIENCES, base_url(), base_url() + "/"]
    opaque = fake.state.opaque_token_claims(token)
    if opaque is not None:
        if opaque["exp"] <= time.time():
            raise _unauthenticated("Lifetime validation failed, the token is expired.")
        if opaque["aud"] not in audiences:
            raise _unauthenticated("Access token validation failure. Invalid audience.")
        return opaque
    try:
        return fake.key.verify(
            token,
            # Graph's ids, plus this origin: a client deriving the scope from its Graph endpoint
            # (`{endpoint}/.default`, right for national clouds) asks for a token for us.
            audience=audiences,
            options={"require": ["exp", "iat", "nbf", "tid"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise _unauthenticated("Lifetime validation failed, the token is expired.") from exc
    except jwt.InvalidAudienceError as exc:
        raise _unauthenticated("Access token validation failure. Invalid audience.") from exc
    except jwt.PyJWTError as exc:
        raise _unauthenticated("Access token validation failure.") from exc


def _before_each(fake: FakeIdentity, roles: set[str] = READ_ROLES) -> str:
    """Count the call, apply scheduled failures, then authenticate it and authorize it for one of
    `roles`; returns the directory (`b2c` or `external`) of the token's tenant."""
    fake.state.count("graph")
    failure = fake.state.take_graph_failure()
    if failure is not None:
        status = failure["status"]
        headers = {}
        if "retry_after" in failure:
            headers["Retry-After"] = str(failure["retry_after"])
        if failure["kind"] == "graph_throttle" and status == 429:
            code, message = "TooManyRequests", "Too many requests. Please retry after the delay."
        elif status == 503:
            code, message = "ServiceUnavailable", "The service is temporarily unavailable."
        else:
            code, message = "generalException", "An unspecified error has occurred."
        raise Rejected(graph_error(status, code, message, headers=headers))

    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthenticated("Access token is empty.")
    claims = _token_claims(fake, token.strip())
    directory = fake.directory_of(claims["tid"])
    if directory is None:
        raise _unauthenticated("Access token validation failure. Invalid issuer.")
    if not roles & set(claims.get("roles") or []):
        raise Rejected(
            graph_error(
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            )
        )
    return directory


def _selected(known: dict[str, str] = _BY_LOWER, entity: str = "user") -> list[str] | None:
    """Parse `$select` (or `select`, which v1.0 also accepts); unknown names are a 400."""
    raw = request.args.get("$select", request.args.get("select"))
    if raw is None:
        return None
    names = [n.strip() for n in raw.split(",") if n.strip()]
    for name in names:
        if name.lower() not in known:
            raise Rejected(
                graph_error(
                    400,
                    "BadRequest",
                    "Parsing OData Select and Expand failed: Could not find a property named "
                    f"'{name}' on type 'microsoft.graph.{entity}'.",
                )
            )
    return names


def _identities(user: FakeUser, domain: str, upn: str) -> list[dict[str, str]]:
    """The user's `identities`, the sign-in one first, then the userPrincipalName one.

    Shapes from Graph's objectIdentity resource (learn.microsoft.com/graph/api/resources/
    objectidentity): local accounts are `emailAddress` with the tenant's default domain as
    issuer; `federated` identities name their provider, the documented issuers being
    google.com, facebook.com, mail (email one-time passcode) and phone, with the provider's own
    opaque id (for Google, its numeric account id) as issuerAssignedId.
    """
    if user.kind == "email_otp":
        first = {"signInType": "federated", "issuer": "mail", "issuerAssignedId": user.email}
    elif user.is_social:
        first = {"signInType": "federated", "issuer": SOCIAL_IDP, "issuerAssignedId": user.social_id}
    else:
        first = {"signInType": "emailAddress", "issuer": domain, "issuerAssignedId": user.email}
    return [first, {"signInType": "userPrincipalName", "issuer": domain, "issuerAssignedId": upn}]


def graph_user(user: FakeUser, config: FakeConfig) -> dict[str, Any]:
    """Every property the fake knows for a user, shaped as Graph returns them for its directory.

    B2C's UPN is `{oid}@` (`cpim_{oid}@` for social accounts); an external tenant's is a GUID
    of its own at the tenant's initial domain. A federated account's address lives in
    `otherMails` (B2C social and External ID Google alike); `mail` is null unless set.
    """
    if user.directory == "external":
        domain = config.external_domain
        upn = f"{user.upn_id}@{domain}"
    else:
        domain = config.b2c_domain
        upn = f"{'cpim_' if user.is_social else ''}{user.oid}@{domain}"
    return {
        "businessPhones": [],
        "displayName": user.name,
        "givenName": None,
        "jobTitle": None,
        "mail": user.mail,
        "mobilePhone": None,
        "officeLocation": None,
        "preferredLanguage": None,
        "surname": None,
        "userPrincipalName": upn,
        "id": user.oid,
        "accountEnabled": True,
        "createdDateTime": user.created,
        "creationType": "LocalAccount" if user.kind in LOCAL_ACCOUNT_KINDS else None,
        "identities": _identities(user, domain, upn),
        "otherMails": [user.email] if user.is_social else [],
        "userType": "Member",
    }


def _project(full: dict[str, Any], selected: list[str] | None) -> dict[str, Any]:
    if selected is None:
        return {name: full[name] for name in DEFAULT_PROPERTIES}
    return {name: full[_BY_LOWER[name.lower()]] for name in selected}


def _context(selected: list[str] | None, entity: bool) -> str:
    projection = f"({','.join(selected)})" if selected else ""
    return f"{base_url()}/v1.0/$metadata#users{projection}{'/$entity' if entity else ''}"


def _find(fake: FakeIdentity, directory: str, user_id: str) -> FakeUser | None:
    """Graph resolves /users/{id} by object id or by userPrincipalName, in the token's tenant:
    a user of the other directory is as unknown as one that does not exist."""
    user = fake.state.user_by_oid(user_id)
    if user is not None:
        return user if user.directory == directory else None
    wanted = user_id.lower()
    return next(
        (
            u
            for u in fake.state.users(directory)
            if graph_user(u, fake.config)["userPrincipalName"].lower() == wanted
        ),
        None,
    )


@bp.get("/v1.0/users/<user_id>")
def get_user(user_id: str) -> Response:
    fake = current()
    directory = _before_each(fake)
    selected = _selected()
    user = _find(fake, directory, user_id)
    if user is None:
        return graph_error(
            404,
            "Request_ResourceNotFound",
            f"Resource '{user_id}' does not exist or one of its queried reference-property "
            "objects are not present.",
        )
    body = {"@odata.context": _context(selected, entity=True)}
    body.update(_project(graph_user(user, fake.config), selected))
    return jsonify(body)


@bp.get("/v1.0/users")
def list_users() -> Response:
    fake = current()
    directory = _before_each(fake)
    selected = _selected()
    try:
        top = int(request.args.get("$top", request.args.get("top", "100")))
        skip = int(request.args.get("$skiptoken", "0"))
    except ValueError:
        top, skip = 0, 0
    if not 1 <= top <= 999:
        return graph_error(
            400,
            "Request_UnsupportedQuery",
            f"Invalid page size specified: '{request.args.get('$top')}'. Must be between 1 and "
            "999 inclusive.",
        )
    users = fake.state.users(directory)
    page = users[skip : skip + top]
    body: dict[str, Any] = {"@odata.context": _context(selected, entity=False)}
    if skip + top < len(users):
        query = f"$top={top}&$skiptoken={skip + top}"
        if selected:
            query += f"&$select={','.join(selected)}"
        body["@odata.nextLink"] = f"{base_url()}/v1.0/users?{query}"
    body["value"] = [_project(graph_user(u, fake.config), selected) for u in page]
    return jsonify(body)


def _graph_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def graph_application(fake: FakeIdentity, directory: str) -> dict[str, Any]:
    """The directory's app registration as Graph's application resource: one password
    credential, whose `hint` is the secret's first three characters (learn.microsoft.com/graph/
    api/resources/passwordcredential) and whose dates follow the secret knobs."""
    cfg = fake.config
    if directory == "external":
        client_id, secret = cfg.external_client_id, cfg.external_client_secret
    else:
        client_id, secret = cfg.client_id, cfg.client_secret
    start, end = fake.state.secret_lifetime()
    return {
        # Stable per registration: the object id and the secret's keyId are GUIDs of their own.
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"application:{client_id}")),
        "appId": client_id,
        "displayName": "photoshare",
        "keyCredentials": [],
        "passwordCredentials": [
            {
                "customKeyIdentifier": None,
                "displayName": SECRET_DISPLAY_NAME,
                "endDateTime": _graph_time(end),
                "hint": secret[:3],
                "keyId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"password:{client_id}")),
                "secretText": None,
                "startDateTime": _graph_time(start),
            }
        ],
    }


@bp.get("/v1.0/applications(appId='<app_id>')")
def get_application(app_id: str) -> Response:
    """The token's own tenant's registration only: another tenant's app id is Graph's 404."""
    fake = current()
    directory = _before_each(fake, APPLICATION_READ_ROLES)
    selected = _selected(_APPLICATION_BY_LOWER, "application")
    application = graph_application(fake, directory)
    if app_id.lower() != application["appId"]:
        return graph_error(
            404,
            "Request_ResourceNotFound",
            f"Resource '{app_id}' does not exist or one of its queried reference-property objects "
            "are not present.",
        )
    names = selected or list(APPLICATION_PROPERTIES)
    projection = f"({','.join(selected)})" if selected else ""
    body: dict[str, Any] = {"@odata.context": f"{base_url()}/v1.0/$metadata#applications{projection}/$entity"}
    body.update({name: application[_APPLICATION_BY_LOWER[name.lower()]] for name in names})
    return jsonify(body)
