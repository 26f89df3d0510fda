"""Throw-away PostgreSQL: real SQL, template databases, restart on the same data, clean stop."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from devstack.postgres import Postgres, find_bin_dir
from devstack.process import ServiceError, port_accepts, port_is_free
from tests.devstack.helpers import assert_gone


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    with Postgres() as service:
        yield service


def test_url_points_at_the_photoshare_database(postgres: Postgres) -> None:
    assert postgres.url == f"postgresql://photoshare@127.0.0.1:{postgres.port}/photoshare"
    with psycopg.connect(postgres.url) as conn:
        row = conn.execute("SELECT current_database(), current_user").fetchone()
    assert row == ("photoshare", "photoshare")


def test_create_database_from_a_template(postgres: Postgres) -> None:
    template_url = postgres.create_database("tmpl")
    with psycopg.connect(template_url) as conn:
        conn.execute("CREATE TABLE photo (id serial PRIMARY KEY, name text NOT NULL)")
        conn.execute("INSERT INTO photo (name) VALUES ('seed')")

    url = postgres.create_database("test_1", template="tmpl")

    assert url == postgres.url_for("test_1")
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT name FROM photo").fetchall() == [("seed",)]
    postgres.drop_database("test_1")
    with pytest.raises(psycopg.OperationalError, match="does not exist"):
        psycopg.connect(url).close()


def test_stop_leaves_nothing_and_start_brings_the_data_back(postgres: Postgres) -> None:
    with psycopg.connect(postgres.url) as conn:
        conn.execute("CREATE TABLE kept (v int)")
        conn.execute("INSERT INTO kept VALUES (42)")
    held = psycopg.connect(postgres.url)  # an open client must not hold up the shutdown
    pid, port = postgres.pid, postgres.port
    assert pid is not None

    postgres.stop()

    assert postgres.pid is None
    assert_gone(pid)  # the postmaster and every backend/helper in its group
    assert not port_accepts(port)
    assert port_is_free(port)
    with pytest.raises(psycopg.OperationalError):
        held.execute("SELECT 1")
    held.close()

    postgres.start()

    assert postgres.port == port
    with psycopg.connect(postgres.url) as conn:
        assert conn.execute("SELECT v FROM kept").fetchone() == (42,)


def test_a_failed_first_start_can_be_retried_and_destroy_leaves_nothing() -> None:
    # A caller-given base dir, not tmp_path: as root, the postgres user cannot reach tmp_path.
    base = Path(tempfile.mkdtemp(prefix="photoshare-test-pg-"))
    base.chmod(0o711)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        service = Postgres(port=busy.getsockname()[1], base_dir=base)
        with pytest.raises(ServiceError, match="Address already in use"):
            service.start()
    try:
        service.start()
        with psycopg.connect(service.url) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("photoshare",)
        pid, port = service.pid, service.port
        assert pid is not None

        service.destroy()

        assert_gone(pid)
        assert port_is_free(port)
        assert not service.data_dir.exists()
        assert list(base.iterdir()) == []  # only what it created is deleted
    finally:
        service.destroy()
        shutil.rmtree(base)


def test_missing_binaries_say_how_to_get_them(tmp_path: Path) -> None:
    with pytest.raises(ServiceError, match=r"initdb, postgres\) not found.*PG_BIN"):
        Postgres(bin_dir=tmp_path, base_dir=tmp_path).start()


def test_bin_dir_from_pg_bin(monkeypatch: pytest.MonkeyPatch) -> None:
    found = find_bin_dir()
    monkeypatch.setenv("PG_BIN", str(found))
    assert find_bin_dir() == found
    assert (found / "initdb").is_file()


def test_an_owner_that_forgets_to_stop_leaves_nothing_behind() -> None:
    script = textwrap.dedent(
        """
        from devstack.postgres import Postgres
        service = Postgres().start()
        print(service.pid, service.base_dir, flush=True)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    pid, base = out.split()
    assert_gone(int(pid))
    assert not Path(base).exists()
