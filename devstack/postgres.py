"""A throw-away PostgreSQL from the machine's server binaries, on a loopback port.

The server runs as our own child (not daemonized by pg_ctl) so it shares the process handling of
every other local service and cannot outlive its owner.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from devstack.fake_identity.tls import TlsFiles
from devstack.process import LOOPBACK, LocalService, ManagedProcess, ServiceError, run_as

USER = "photoshare"  # the cluster's superuser: tests and tools, never the app
DATABASE = "photoshare"
# Least privilege, as in Azure: migrations run as the schema's owner, the app as a role that may
# only read and write rows (granted by the migrations, app/db.py).
OWNER_ROLE = "photoshare_owner"
APP_ROLE = "photoshare_app"
START_TIMEOUT = 30.0
_SERVER_BINARIES = ("initdb", "postgres")


def database_url(server_url: str, name: str) -> str:
    """The URL of database `name` on the server that `server_url` (any of its databases) reaches."""
    parts = urlsplit(server_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def create_database(server_url: str, name: str, template: str | None = None, owner: str | None = None) -> str:
    """Create `name` through `server_url` (a copy of `template` if given: fast per-test databases),
    owned by `owner` if given, and return its URL. The template must have no open connections."""
    query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        query = sql.SQL("{} TEMPLATE {}").format(query, sql.Identifier(template))
    if owner is not None:
        query = sql.SQL("{} OWNER {}").format(query, sql.Identifier(owner))
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(query)
    return database_url(server_url, name)


@dataclass(frozen=True)
class RoleUrls:
    """Where the app connects (`app`, DATABASE_URL) and its migrations run (`owner`)."""

    app: str
    owner: str


def least_privilege_roles(admin_url: str, database: str = DATABASE, query: str = "") -> RoleUrls:
    """Make `database` (on the server `admin_url` reaches as a superuser) owned by OWNER_ROLE
    and create APP_ROLE with no privilege beyond logging in; return both roles' URLs, with
    `query` (libpq's TLS parameters, say). Each gets a new random password (checked where
    pg_hba.conf asks for one); the roles are kept."""
    passwords = {role: secrets.token_hex(16) for role in (OWNER_ROLE, APP_ROLE)}
    with psycopg.connect(database_url(admin_url, "postgres"), autocommit=True) as conn:
        for role, password in passwords.items():
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(
                sql.SQL(verb + " ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(password)
                )
            )
        conn.execute(
            sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                sql.Identifier(database), sql.Identifier(OWNER_ROLE)
            )
        )
    with psycopg.connect(database_url(admin_url, database), autocommit=True) as conn:
        # PostgreSQL 15+ already lets only the database's owner create in `public`; older ones
        # let everyone.
        conn.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(sql.Identifier(OWNER_ROLE)))
        conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    parts = urlsplit(database_url(admin_url, database))

    def as_role(role: str) -> str:
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=f"{role}:{passwords[role]}@{host}", query=query))

    return RoleUrls(app=as_role(APP_ROLE), owner=as_role(OWNER_ROLE))


def drop_database(server_url: str, name: str) -> None:
    """Drop `name` if it exists, disconnecting its sessions first."""
    query = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(query)


def find_bin_dir(explicit: Path | None = None) -> Path:
    """Where initdb/postgres live: argument, $PG_BIN, `pg_config --bindir`, the newest
    /usr/lib/postgresql/*/bin (Debian keeps them off PATH), then PATH."""
    candidates: list[Path] = []
    if explicit is not None:
        candidates.append(Path(explicit))
    elif os.environ.get("PG_BIN"):
        candidates.append(Path(os.environ["PG_BIN"]))
    else:
        pg_config = shutil.which("pg_config")
        if pg_config:
            try:
                out = subprocess.run(
                    [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
                ).stdout.strip()
                candidates.append(Path(out))
            except (OSError, subprocess.SubprocessError):
                pass

        def version_key(path: Path) -> tuple[int, ...]:
            return tuple(int(n) for n in re.findall(r"\d+", path.parent.name)) or (0,)

        candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version_key)[::-1]
        on_path = shutil.which("initdb")
        if on_path:
            candidates.append(Path(on_path).resolve().parent)
    for bin_dir in candidates:
        if all((bin_dir / name).is_file() for name in _SERVER_BINARIES):
            return bin_dir
    where = ", ".join(str(c) for c in candidates) or "nowhere"
    raise ServiceError(
        f"PostgreSQL server binaries (initdb, postgres) not found (looked in: {where}): "
        "install them (Debian/Ubuntu: `apt-get install postgresql`) "
        "or set PG_BIN to their directory"
    )


class Postgres(LocalService):
    """A PostgreSQL cluster in a temp data dir, superuser `photoshare` with trust auth.

    `stop()` keeps the data dir, so `start()` brings the same databases back on the same port
    (tests use this to check the app recovers); `destroy()` stops and deletes the data dir.
    """

    label = "PostgreSQL"
    log_name = "postgres.log"

    def __init__(
        self,
        *,
        port: int = 0,
        base_dir: Path | None = None,
        bin_dir: Path | None = None,
        start_timeout: float = START_TIMEOUT,
        tls: TlsFiles | None = None,
    ) -> None:
        super().__init__(
            port=port, base_dir=base_dir, temp_prefix="photoshare-pg-", start_timeout=start_timeout
        )
        self._bin_dir_arg = bin_dir
        self._bin_dir: Path | None = None
        self.data_dir = self.base_dir / "data"
        # TLS with a certificate for 127.0.0.1/localhost, so clients can verify it
        # (`sslmode=verify-full`) as the app does in Azure; plain connections stay accepted.
        self.tls = tls
        # PostgreSQL refuses to run as root: drop to the system user that owns the binaries.
        self._run_as = "postgres" if os.geteuid() == 0 else None

    # -- what clients need -------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.url_for(DATABASE)

    def url_for(self, dbname: str) -> str:
        return f"postgresql://{USER}@{LOOPBACK}:{self._require_port()}/{dbname}"

    @property
    def verified_tls(self) -> str:
        """The URL query that makes libpq verify this server (empty without TLS): against the
        system trust store, as in Azure; the tests add their CA there through SSL_CERT_FILE."""
        return "sslmode=verify-full&sslrootcert=system" if self.tls is not None else ""

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create `name` (a copy of `template` if given) and return its URL."""
        return create_database(self.url_for("postgres"), name, template)

    def drop_database(self, name: str) -> None:
        """Drop `name` if it exists, disconnecting its sessions first."""
        drop_database(self.url_for("postgres"), name)

    # -- internals ---------------------------------------------------------------------------
    def _bin(self, name: str) -> str:
        assert self._bin_dir is not None
        return str(self._bin_dir / name)

    def _env(self) -> dict[str, str]:
        # Plain C messages in logs; no PG* variables leaking in from the caller's shell.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "LC_", "LANG"))}
        env["LC_ALL"] = "C"
        return env

    def _prepare(self) -> None:
        """initdb on first use."""
        if self._bin_dir is None:
            self._bin_dir = find_bin_dir(self._bin_dir_arg)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()

    def _remove_files(self) -> None:
        """The whole base dir if we created it, else only the data dir and the log in it."""
        super()._remove_files()
        if not self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.log_path.unlink(missing_ok=True)

    def _prepare_dirs(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        if self._run_as is not None:
            shutil.chown(self.data_dir, user=self._run_as, group=self._run_as)
            if self._own_dir:
                self.base_dir.chmod(0o711)  # mkdtemp is 0700: let the postgres user traverse it

    def _tls_file(self, which: str) -> Path:
        """A copy the server's user owns: PostgreSQL refuses a key others may read."""
        assert self.tls is not None
        source = self.tls.cert_pem if which == "cert" else self.tls.key_pem
        copy = self.base_dir / f"server-{which}.pem"
        copy.write_bytes(source.read_bytes())
        copy.chmod(0o600)
        if self._run_as is not None:
            shutil.chown(copy, user=self._run_as, group=self._run_as)
        return copy

    def _initdb(self) -> None:
        self._prepare_dirs()
        argv = [
            self._bin("initdb"),
            "-D", str(self.data_dir),
            "-U", USER,
            "-A", "trust",
            "-E", "UTF8",
            "--no-locale",  # the C locale exists everywhere; others may not be installed
            "--no-sync",
        ]  # fmt: skip
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            env=self._env(),
            cwd=self.base_dir,
            timeout=120,
            **run_as(self._run_as),
        )
        if result.returncode != 0:
            hint = ""
            if self._run_as is not None:
                hint = (
                    f"\nas root, initdb runs as '{self._run_as}', which must be able to reach "
                    f"{self.data_dir}: leave base_dir unset (a fresh temp dir) or use a base_dir "
                    "whose parents are world-traversable (pytest's tmp_path is not)"
                )
            output = (result.stdout + result.stderr).strip().splitlines()[-20:]
            raise ServiceError(
                f"initdb failed with code {result.returncode}:\n    " + "\n    ".join(output) + hint
            )

    def _launch(self) -> ManagedProcess:
        argv = [
            self._bin("postgres"),
            "-D", str(self.data_dir),
            "-p", str(self.port),
            "-c", f"listen_addresses={LOOPBACK}",
            "-c", "unix_socket_directories=",  # TCP only: no socket path limits or permissions
            "-c", "fsync=off",
            "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off",
            "-c", "max_connections=200",
        ]  # fmt: skip
        if self.tls is not None:
            argv += ["-c", "ssl=on", "-c", f"ssl_cert_file={self._tls_file('cert')}",
                     "-c", f"ssl_key_file={self._tls_file('key')}"]  # fmt: skip
        return ManagedProcess(
            argv,
            name=f"PostgreSQL on port {self.port}",
            log_path=self.log_path,
            stop_signal=signal.SIGINT,  # fast shutdown: roll back and disconnect clients
            env=self._env(),
            cwd=self.base_dir,
            user=self._run_as,
        )

    def _on_ready(self) -> None:
        """The app's database, created on first start (kept in the data dir after that)."""
        with psycopg.connect(self.url_for("postgres")) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
        if exists is None:
            self.create_database(DATABASE)

    def _ready(self) -> bool:
        pg_isready = self._bin("pg_isready")
        if not Path(pg_isready).is_file():
            return self._connects()
        argv = [pg_isready, "-q", "-h", LOOPBACK, "-p", str(self.port), "-U", USER, "-d",
                "postgres", "-t", "1"]  # fmt: skip
        return subprocess.run(argv, env=self._env(), timeout=10, check=False).returncode == 0

    def _connects(self) -> bool:
        try:
            with psycopg.connect(self.url_for("postgres"), connect_timeout=1):
                return True
        except psycopg.OperationalError:
            return False
