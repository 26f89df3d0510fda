"""PostgreSQL: a connection pool, the schema migrations and the app's queries.

psycopg 3 with psycopg_pool: connections are checked before use, so the app serves again by
itself after PostgreSQL restarts. Every failure leaves this module as DatabaseUnavailable (an
outage) or DatabaseConfigurationError (a role, password, grant or database name to fix).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import select
import ssl
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from azure.core.exceptions import ClientAuthenticationError
from flask import Flask, current_app
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import args_row, dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from app.service_errors import ConfigurationError, ServiceError, ServiceUnavailable, raised_as_causes

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

    from app.settings import Settings

log = logging.getLogger(__name__)

# The audience of Microsoft Entra tokens for Azure Database for PostgreSQL ("Use Microsoft
# Entra ID for authentication with Azure Database for PostgreSQL").
ENTRA_SCOPE = "https://ossrdbms-aad.database.windows.net/.default"
# Any fixed 64-bit key: every instance that starts at once queues on it.
_MIGRATION_LOCK_KEY = 0x70686F746F  # "photo"
# The direct connection that finds out why the pool had none to give (libpq's minimum is 2 s).
_PROBE_TIMEOUT = 2
# A pooled connection back from a request less than this long ago, whose socket has nothing to
# read, is handed out without the check's round trip (`Database._check`): a server that closed
# it (a restart, a terminated backend) has made the socket readable. Longer idle ones are
# checked with a query, which also finds connections a network path dropped silently.
FRESH_SECONDS = 30.0
# Photos of rows listed lately, kept per process (~1 KB each).
PHOTOS_KEPT = 4096


class DatabaseUnavailable(ServiceUnavailable):
    """PostgreSQL did not answer: refused, timed out, shut down, or the connection was lost."""

    code = "database_unavailable"
    messages = {"database_unavailable": "The database is unavailable; try again shortly."}


class DatabaseConfigurationError(ConfigurationError):
    """PostgreSQL answered and refused the app's role, password, grants or database name."""

    messages = {
        "database_auth_failed": (
            "PostgreSQL refused the app's credentials: a wrong password in DATABASE_URL, "
            "or an invalid or expired Entra token for its role."
        ),
        "database_role_missing": (
            "The database role named in DATABASE_URL does not exist or may not log in: "
            "create it (with LOGIN) or fix the user name."
        ),
        "database_host_rejected": (
            "PostgreSQL does not accept this role from the app's host (no pg_hba.conf entry; "
            "in Azure, the server's firewall or its authentication settings)."
        ),
        "database_forbidden": (
            "The app's database role lacks privileges on its database or tables: "
            "grant it CONNECT and access to the app's schema."
        ),
        "database_missing": "The database named in DATABASE_URL does not exist: create it or fix the name.",
        "database_principal_missing": (
            "The app's Microsoft Entra role does not exist in PostgreSQL and the schema's owner "
            "could not create it: make DATABASE_OWNER_URL's identity a Microsoft Entra "
            "administrator of the server, with DATABASE_URL's user the app's managed identity's name."
        ),
        "database_token_failed": (
            "The app could not get a Microsoft Entra token for PostgreSQL from its managed identity "
            "(DATABASE_AUTH=entra): check that the site has the identity turned on (and, for "
            "DATABASE_OWNER_CLIENT_ID, that user-assigned identity attached)."
        ),
    }


# SQLSTATEs of errors the server returns on a working connection.
_CONFIGURATION_SQLSTATES = {"42501": "database_forbidden", "3D000": "database_missing"}
# A refused connection carries no SQLSTATE (libpq keeps only the server's text), so these match
# the server's messages for 28P01 and 28000 (password, ident…; missing role; pg_hba), 42501 (no
# CONNECT privilege) and 3D000, and libpq's own "no password supplied".
_CONFIGURATION_REFUSALS = (
    (re.compile(r"authentication failed|no password supplied"), "database_auth_failed"),
    (re.compile(r'role ".*" does not exist|role ".*" is not permitted to log in'), "database_role_missing"),
    (re.compile(r"no pg_hba\.conf entry|pg_hba\.conf rejects connection"), "database_host_rejected"),
    (re.compile(r"permission denied for database"), "database_forbidden"),
    (re.compile(r'database ".*" does not exist'), "database_missing"),
)


def database_error(exc: psycopg.Error) -> ServiceError | None:
    """What a psycopg error means for the app; None for the rest (a bug in a query, say)."""
    sqlstate = exc.sqlstate or ""
    if sqlstate.startswith("28"):  # invalid authorization specification
        return DatabaseConfigurationError(str(exc), code="database_auth_failed")
    if sqlstate in _CONFIGURATION_SQLSTATES:
        return DatabaseConfigurationError(str(exc), code=_CONFIGURATION_SQLSTATES[sqlstate])
    if isinstance(exc, psycopg.OperationalError):
        if not sqlstate:
            for pattern, code in _CONFIGURATION_REFUSALS:
                if pattern.search(str(exc)):
                    return DatabaseConfigurationError(str(exc), code=code)
        return DatabaseUnavailable(str(exc))  # refused, timed out, shut down, connection lost
    return None


def _as_causes() -> contextlib.AbstractContextManager[None]:
    """Raise psycopg's errors as what they mean (see `database_error`)."""
    return raised_as_causes(psycopg.Error, database_error)


@dataclass(frozen=True)
class Photo:
    id: uuid.UUID
    owner_oid: str
    owner_email: str | None
    blob_name: str
    thumb_blob_name: str | None
    filename: str
    content_type: str
    size: int
    width: int
    height: int
    created_at: datetime


# The photos table's columns in Photo's field order: a listing's rows become Photos positionally.
_PHOTO_COLUMNS = ", ".join(f.name for f in fields(Photo))


class Database:
    """The app's PostgreSQL access; bound to Flask with `init_app`.

    Nothing connects until the first `connection()`: that opens the pool and checks the schema
    once (see `_require_schema`), so building the app needs no database.
    """

    def __init__(
        self,
        *,
        url: str,
        owner_url: str | None = None,
        credential: TokenCredential | None = None,
        owner_credential: TokenCredential | None = None,
        max_connections: int = 10,
        connect_timeout: int = 5,
        migration_retry_seconds: float = 5.0,
    ) -> None:
        self.url = with_system_roots(url)
        # Migrations connect as the schema's owner when one is named; the pool never does, so
        # nothing a request runs can change the schema.
        self.owner_url = with_system_roots(owner_url) if owner_url else None
        # With credentials, each new connection signs in with a fresh Microsoft Entra token.
        self._connection = _connection_class(credential)
        self._owner_connection = _connection_class(owner_credential or credential)
        self._entra = credential is not None
        self.connect_timeout = connect_timeout
        self.pool = ConnectionPool(
            url,
            min_size=1,
            max_size=max_connections,
            timeout=connect_timeout,
            check=self._check,
            # psycopg_pool's reconnect back-off doubles without a cap; abandoning an attempt after
            # a few seconds lets the next request start a fresh one, so recovery after an outage
            # takes seconds, not minutes.
            reconnect_timeout=5,
            # Autocommit: every query the app sends through the pool is a single statement, its
            # own transaction; BEGIN and COMMIT would be two more round trips for each.
            kwargs={"connect_timeout": connect_timeout, "row_factory": dict_row, "autocommit": True},
            connection_class=self._connection,
            open=False,
            name="photoshare",
        )
        self._opened = False
        self._open_lock = threading.Lock()
        self._returned_at: weakref.WeakKeyDictionary[psycopg.Connection[Any], float] = (
            weakref.WeakKeyDictionary()
        )
        # The Photo of each row seen lately: a gallery page's rows are mostly the last page's,
        # and a Photo shared is one not built again (Photos are frozen).
        self._photo_of: Callable[..., Photo] = functools.lru_cache(maxsize=PHOTOS_KEPT)(Photo)
        # Whether the schema was found current; until it is, why not (an outage or the
        # configuration) and when that was last tried, so a retry comes at most every few seconds.
        self._schema_current = False
        self._schema_problem: ServiceError | None = None
        self._schema_tried_at = 0.0
        self._migration_retry = migration_retry_seconds
        self._schema_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> Database:
        """The app's database; with DATABASE_AUTH=entra, signed in to by the site's managed
        identity (the owner by DATABASE_OWNER_CLIENT_ID's, when set)."""
        if settings.database_auth == "entra":
            from azure.identity import DefaultAzureCredential

            options.setdefault("credential", DefaultAzureCredential())
            if settings.database_owner_client_id:
                owner = DefaultAzureCredential(managed_identity_client_id=settings.database_owner_client_id)
                options.setdefault("owner_credential", owner)
        return cls(url=settings.database_url, owner_url=settings.database_owner_url, **options)

    def init_app(self, app: Flask) -> None:
        app.extensions["db"] = self

    def open(self) -> None:
        """Start filling the pool in the background; the first `connection()` calls it. Once
        only: a closed pool stays closed."""
        with self._open_lock:
            if not self._opened:
                self.pool.open(wait=False)
                self._opened = True

    def close(self) -> None:
        self.pool.close()

    def _check(self, conn: psycopg.Connection[Any]) -> None:
        """The pool's check before it hands a connection out: psycopg_pool's query, unless the
        connection is fresh (see FRESH_SECONDS); raises for a connection that no longer works."""
        returned = self._returned_at.get(conn)
        if returned is not None and time.monotonic() - returned < FRESH_SECONDS and _quiet(conn):
            return
        ConnectionPool.check_connection(conn)

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection; errors come out as DatabaseUnavailable or
        DatabaseConfigurationError. Nothing is served against a schema not yet applied."""
        self._require_schema()
        if not self._opened:
            self.open()
        with _as_causes():
            try:
                with self.pool.connection() as conn:
                    try:
                        yield conn
                    finally:
                        self._returned_at[conn] = time.monotonic()
            except PoolTimeout as exc:
                # The pool logs why it could not connect and raises only "no connection after
                # N s": one direct attempt raises the real cause (a refused role, a dead server).
                self._connection.connect(self.url, connect_timeout=_PROBE_TIMEOUT).close()
                raise DatabaseUnavailable(
                    f"{exc}, though the server accepts connections: the pool is busy"
                ) from exc

    # --- schema -------------------------------------------------------------------------

    def migrate(self) -> list[str]:
        """Apply pending migrations once, however many instances start at the same moment.

        A session-level advisory lock serialises the instances; PostgreSQL drops it if the
        holder dies, so a crashed start never leaves a stale lock behind (unlike lock-row
        schemes such as yoyo's). Each migration runs in its own transaction.

        With an owner (`DATABASE_OWNER_URL`) the migrations run as it, and the app's role is
        then granted what the app does with the data, on every table and sequence of the schema,
        present and future (default privileges), and nothing else. The grants (and an Entra
        role's creation) hold the same lock: concurrent GRANTs on one object fail in PostgreSQL
        ("tuple concurrently updated").
        """
        url, connection = self.url, self._connection
        if self.owner_url is not None:
            url, connection = self.owner_url, self._owner_connection
        with (
            _as_causes(),
            connection.connect(url, autocommit=True, connect_timeout=10) as conn,
            _migration_lock(conn),
        ):
            applied = _apply_migrations(conn)
            if self.owner_url is not None:
                role = self._app_role()
                if self._entra:
                    self._ensure_entra_principal(role)
                _grant_data_access(conn, role)
            return applied

    def _ensure_entra_principal(self, role: str) -> None:
        """With Microsoft Entra authentication, the app's role exists in Azure's PostgreSQL only
        once a Microsoft Entra administrator of the server has created it for the identity:
        `pgaadauth_create_principal(<the managed identity's name>, false, false)` in the
        `postgres` database, which resolves the name to the identity's object id ("Manage
        Microsoft Entra roles", Azure Database for PostgreSQL). The owner does that here, once."""
        assert self.owner_url is not None
        administration = urlunsplit(urlsplit(self.owner_url)._replace(path="/postgres"))
        try:
            with self._owner_connection.connect(administration, autocommit=True, connect_timeout=10) as conn:
                if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is None:
                    conn.execute("SELECT * FROM pgaadauth_create_principal(%s, false, false)", (role,))
                    log.info("created the Microsoft Entra principal %s", role)
        except psycopg.Error as exc:
            cause = database_error(exc)
            if isinstance(cause, DatabaseUnavailable):
                raise cause from exc
            raise DatabaseConfigurationError(
                f"could not create the Microsoft Entra principal {role}: {exc}",
                code="database_principal_missing",
            ) from exc

    def _app_role(self) -> str:
        """The role DATABASE_URL logs in as: its user, or (libpq's defaults) as the server says."""
        user = conninfo_to_dict(self.url).get("user")
        if user:
            return str(user)
        with self._connection.connect(self.url, connect_timeout=self.connect_timeout) as conn:
            row = conn.execute("SELECT current_user").fetchone()
        assert row is not None
        return str(row[0])

    def migrate_at_start(self) -> None:
        """`migrate` for a server's start (gunicorn's master, app/gunicorn_conf.py), which no
        failure stops: a configuration error (a missing role, no grants) is logged as one, an
        outage as a warning, and each worker's first use of the database finds the schema
        still pending and applies it once the cause is gone (see `_require_schema`)."""
        try:
            self.migrate()
        except DatabaseConfigurationError as exc:
            log.error("configuration error: %s (schema not applied; retried once it is fixed)", exc)
        except DatabaseUnavailable as exc:
            log.warning("%s (schema not applied at start; applied once the database answers)", exc)

    def _require_schema(self) -> None:
        """On first use, find the schema current (one query) or apply what is pending (under
        `migrate`'s lock); until that succeeds, raise why, trying again at most every
        `migration_retry_seconds`, and serve nothing."""
        if self._schema_current:
            return
        with self._schema_lock:
            if self._schema_current:
                return
            kept = self._schema_problem
            if kept is not None and time.monotonic() - self._schema_tried_at < self._migration_retry:
                raise type(kept)(kept.detail, code=kept.code)  # not one instance raised in many threads
            self._schema_tried_at = time.monotonic()
            try:
                with (
                    _as_causes(),
                    self._connection.connect(
                        self.url, autocommit=True, connect_timeout=self.connect_timeout
                    ) as conn,
                ):
                    pending = _pending_migrations(conn)
                if pending:
                    self.migrate()
            except ServiceError as exc:
                if kept is None or kept.code != exc.code:
                    if isinstance(exc, ConfigurationError):
                        log.error(
                            "configuration error: %s (schema not applied; retried once it is fixed)", exc
                        )
                    else:
                        log.warning("%s (schema not checked; retried once the database answers)", exc)
                self._schema_problem = exc
                raise
            if kept is not None:
                log.info("schema current: the database answers and accepts the app")
            self._schema_problem = None
            self._schema_current = True

    def ping(self) -> None:
        with self.connection() as conn:
            conn.execute("SELECT 1")

    # --- photos -------------------------------------------------------------------------

    def insert_photo(self, photo: Photo) -> Photo:
        with self.connection() as conn:
            row = conn.execute(
                "INSERT INTO photos (id, owner_oid, owner_email, blob_name, thumb_blob_name, filename,"
                " content_type, size, width, height)"
                " VALUES (%(id)s, %(owner_oid)s, %(owner_email)s, %(blob_name)s, %(thumb_blob_name)s,"
                " %(filename)s, %(content_type)s, %(size)s, %(width)s, %(height)s)"
                " RETURNING created_at",
                photo.__dict__,
            ).fetchone()
        assert row is not None
        return Photo(**{**photo.__dict__, "created_at": row["created_at"]})

    def list_photos(
        self, owner_oid: str, *, limit: int, before: tuple[datetime, uuid.UUID] | None = None
    ) -> list[Photo]:
        """One indexed keyset query: newest first, strictly after the cursor when one is given.
        Rows become Photos positionally, the same Photo for a row seen lately."""
        with self.connection() as conn, conn.cursor(row_factory=args_row(self._photo_of)) as cur:
            if before is None:
                return cur.execute(
                    f"SELECT {_PHOTO_COLUMNS} FROM photos WHERE owner_oid = %s"  # noqa: S608  # fixed names
                    " ORDER BY created_at DESC, id DESC LIMIT %s",
                    (owner_oid, limit),
                ).fetchall()
            return cur.execute(
                f"SELECT {_PHOTO_COLUMNS} FROM photos WHERE owner_oid = %s"  # noqa: S608  # fixed names
                " AND (created_at, id) < (%s, %s) ORDER BY created_at DESC, id DESC LIMIT %s",
                (owner_oid, before[0], before[1], limit),
            ).fetchall()

    def neighbours(self, photo: Photo) -> tuple[uuid.UUID | None, uuid.UUID | None]:
        """The ids of the photos just newer and just older than this one in the gallery's
        order (newest first): keyset queries on (owner_oid, created_at, id), the older one
        the gallery's own next page."""
        with self.connection() as conn:
            newer = conn.execute(
                "SELECT id FROM photos WHERE owner_oid = %s AND (created_at, id) > (%s, %s)"
                " ORDER BY created_at, id LIMIT 1",
                (photo.owner_oid, photo.created_at, photo.id),
            ).fetchone()
        older = self.list_photos(photo.owner_oid, limit=1, before=(photo.created_at, photo.id))
        return (newer["id"] if newer else None), (older[0].id if older else None)

    def get_photo(self, owner_oid: str, photo_id: uuid.UUID) -> Photo | None:
        with self.connection() as conn:
            row = conn.execute(
                "SELECT * FROM photos WHERE id = %s AND owner_oid = %s", (photo_id, owner_oid)
            ).fetchone()
        return Photo(**row) if row else None

    def delete_photo(self, owner_oid: str, photo_id: uuid.UUID) -> Photo | None:
        with self.connection() as conn:
            row = conn.execute(
                "DELETE FROM photos WHERE id = %s AND owner_oid = %s RETURNING *", (photo_id, owner_oid)
            ).fetchone()
        return Photo(**row) if row else None

    def referenced_blob_names(self, names: list[str]) -> set[str]:
        """Which of these blob names a photo row still points at (originals or thumbnails)."""
        if not names:
            return set()
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT blob_name AS name FROM photos WHERE blob_name = ANY(%s)"
                " UNION SELECT thumb_blob_name FROM photos WHERE thumb_blob_name = ANY(%s)",
                (names, names),
            ).fetchall()
        return {row["name"] for row in rows}

    # --- email cache --------------------------------------------------------------------

    def cached_email(self, oid: str, *, max_age_seconds: int) -> tuple[str | None, str] | None:
        """The stored (email, source) for a user if it is younger than the TTL."""
        with self.connection() as conn:
            row = conn.execute(
                "SELECT email, source FROM user_emails WHERE oid = %s"
                " AND resolved_at > now() - make_interval(secs => %s)",
                (oid, max_age_seconds),
            ).fetchone()
        return (row["email"], row["source"]) if row else None

    def store_email(self, oid: str, email: str | None, source: str) -> None:
        with self.connection() as conn:
            conn.execute(
                "INSERT INTO user_emails (oid, email, source, resolved_at) VALUES (%s, %s, %s, now())"
                " ON CONFLICT (oid) DO UPDATE SET email = EXCLUDED.email, source = EXCLUDED.source,"
                " resolved_at = EXCLUDED.resolved_at",
                (oid, email, source),
            )

    # --- sessions -----------------------------------------------------------------------

    def create_session(self, id_hash: bytes, oid: str, *, lifetime_seconds: int) -> None:
        with self.connection() as conn:
            conn.execute(
                "INSERT INTO sessions (id_hash, oid, expires_at)"
                " VALUES (%s, %s, now() + make_interval(secs => %s))",
                (id_hash, oid, lifetime_seconds),
            )

    def live_session_oid(self, id_hash: bytes, *, idle_seconds: int, touch_seconds: int) -> str | None:
        """The user of a session neither revoked, past its absolute end, nor idle too long; its
        `last_seen_at` moves on when older than `touch_seconds`. One statement, by primary key."""
        with self.connection() as conn:
            row = conn.execute(
                "WITH live AS ("
                " SELECT id_hash, oid, last_seen_at FROM sessions WHERE id_hash = %(h)s"
                " AND revoked_at IS NULL AND expires_at > now()"
                " AND last_seen_at > now() - make_interval(secs => %(idle)s)),"
                " touched AS ("
                " UPDATE sessions SET last_seen_at = now() FROM live"
                " WHERE sessions.id_hash = live.id_hash"
                " AND live.last_seen_at < now() - make_interval(secs => %(touch)s))"
                " SELECT oid FROM live",
                {"h": id_hash, "idle": idle_seconds, "touch": touch_seconds},
            ).fetchone()
        return row["oid"] if row else None

    def revoke_session(self, id_hash: bytes) -> None:
        with self.connection() as conn:
            conn.execute(
                "UPDATE sessions SET revoked_at = now(), expires_at = least(expires_at, now())"
                " WHERE id_hash = %s AND revoked_at IS NULL",
                (id_hash,),
            )

    def purge_sessions(self, *, idle_seconds: int, batch: int) -> int:
        """Delete up to `batch` ended sessions (expired or idle; a revoked one has expired at its
        revocation), found through the two indexes; how many went."""
        with self.connection() as conn:
            cursor = conn.execute(
                "DELETE FROM sessions WHERE id_hash IN ("
                " SELECT id_hash FROM sessions WHERE expires_at <= now()"
                " OR last_seen_at <= now() - make_interval(secs => %s)"
                " LIMIT %s)",
                (idle_seconds, batch),
            )
            return cursor.rowcount


def _quiet(conn: psycopg.Connection[Any]) -> bool:
    """Whether an idle connection is open and the server has sent nothing on it: a server
    closing a connection (shutdown, a terminated backend) sends an error and EOF, which make the
    socket readable."""
    if conn.closed or conn.broken:
        return False
    try:
        poller = select.poll()
        poller.register(conn.pgconn.socket, select.POLLIN)
        return not poller.poll(0)
    except (psycopg.OperationalError, OSError, ValueError):
        return False


def _migration_files() -> list[tuple[str, str]]:
    folder = resources.files("app") / "migrations"
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [(f.name.removesuffix(".sql"), f.read_text(encoding="utf-8")) for f in files]


def _pending_migrations(conn: psycopg.Connection[Any]) -> list[str]:
    """The shipped migrations `schema_migrations` does not list (all of them before the first)."""
    try:
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    except psycopg.errors.UndefinedTable:
        done = set()
    return [version for version, _sql in _migration_files() if version not in done]


@contextmanager
def _migration_lock(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """The advisory lock every instance's migrating queues on; `conn` is in autocommit mode."""
    conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK_KEY,))
    try:
        yield
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK_KEY,))


def _apply_migrations(conn: psycopg.Connection[Any]) -> list[str]:
    """Apply what is pending; the caller holds `_migration_lock`."""
    applied: list[str] = []
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
    )
    done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    for version, script in _migration_files():
        if version in done:
            continue
        with conn.transaction():
            conn.execute(script)  # trusted files shipped with the app
            conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
        log.info("applied migration %s", version)
        applied.append(version)
    return applied


def _grant_data_access(conn: psycopg.Connection[Any], role: str) -> None:
    """Let `role` read and write the rows of the schema's tables (as the owner, who made them);
    it gets no CREATE on the schema, so it cannot add, alter or drop anything."""
    with conn.transaction():
        row = conn.execute("SELECT current_user, current_schema()").fetchone()
        assert row is not None
        owner, schema = row
        if role == owner:
            return
        names = {"schema": sql.Identifier(schema), "role": sql.Identifier(role)}
        for statement in (
            "GRANT USAGE ON SCHEMA {schema} TO {role}",
            "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}",
            "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {role}",
            "ALTER DEFAULT PRIVILEGES IN SCHEMA {schema}"
            " GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}",
            "ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT USAGE, SELECT ON SEQUENCES TO {role}",
        ):
            conn.execute(sql.SQL(statement).format(**names))


def _connection_class(credential: TokenCredential | None) -> type[psycopg.Connection[Any]]:
    """psycopg's connection, or one whose password is a Microsoft Entra token for Azure
    Database for PostgreSQL taken as it connects: azure-identity keeps a token until shortly
    before it lapses, so the pool's new connections never present an expired one (an open
    connection stays valid after its token expires: PostgreSQL checks it only at sign-in)."""
    if credential is None:
        return psycopg.Connection
    source = credential

    class EntraConnection(psycopg.Connection[Any]):
        @classmethod
        def _get_connection_params(cls, conninfo: str, **kwargs: Any) -> dict[str, Any]:
            params = super()._get_connection_params(conninfo, **kwargs)
            try:
                params["password"] = source.get_token(ENTRA_SCOPE).token
            except ClientAuthenticationError as exc:
                raise DatabaseConfigurationError(
                    f"no Microsoft Entra token for PostgreSQL: {type(exc).__name__}: {exc.message}",
                    code="database_token_failed",
                ) from None
            return params

    return EntraConnection


def with_system_roots(url: str) -> str:
    """`url` with libpq's `sslrootcert=system` made the machine's own CA bundle.

    psycopg's binary wheels carry their own OpenSSL, whose default trust store
    (OPENSSLDIR `/usr/lib/psycopg-openssl`) is empty: with `system`, libpq would refuse every
    server unless SSL_CERT_FILE happens to be set. Python's `ssl` uses the system's OpenSSL
    and finds the bundle (honouring SSL_CERT_FILE too), so that file is given to libpq instead.
    """
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if ("sslrootcert", "system") not in query:
        return url
    bundle = ssl.get_default_verify_paths().cafile
    if bundle is None:
        return url
    query = [(k, bundle if (k, v) == ("sslrootcert", "system") else v) for k, v in query]
    return urlunsplit(parts._replace(query=urlencode(query, safe="/")))


def get_db() -> Database:
    return current_app.extensions["db"]
