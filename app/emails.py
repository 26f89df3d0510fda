"""Which email a signed-in user has: the heart of the source article.

1. The ID token's email claim (B2C `emails`, External ID `email`), kept in the session at
   sign-in: no Graph call.
2. Else the address stored in PostgreSQL by any instance within the TTL.
3. Else one Graph call (`mail` → email sign-in identity → one-time-passcode identity →
   `otherMails[0]`), stored for the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.db import get_db
from app.graph import get_graph
from app.settings import get_settings


@dataclass(frozen=True)
class ResolvedEmail:
    email: str | None
    source: str  # "id_token" or "graph"


def resolve_email(user: dict[str, Any]) -> ResolvedEmail:
    """Raises app.graph.GraphError when Graph is needed and fails."""
    if user.get("email"):
        return ResolvedEmail(user["email"], "id_token")
    db = get_db()
    ttl = get_settings().email_cache_ttl
    cached = db.cached_email(user["oid"], max_age_seconds=ttl)
    if cached is not None:
        return ResolvedEmail(cached[0], cached[1])
    email = get_graph().user_email(user["oid"])
    db.store_email(user["oid"], email, "graph")
    return ResolvedEmail(email, "graph")
