"""The throwaway PostgreSQL server of the store tests: real, isolated, local only, and gone afterwards."""

from __future__ import annotations

import os
import secrets
import socket
import time
from pathlib import Path

import psycopg
import pytest
from psycopg import errors, sql
from psycopg.conninfo import conninfo_to_dict

import pg_cluster
from pg_cluster import PostgresCluster, find_bin

LOOPBACK_HEX = "0100007F"  # 127.0.0.1 as /proc/net/tcp writes it
LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp


def database_of(url: str) -> str:
    return str(conninfo_to_dict(url)["dbname"])


def unique(prefix: str) -> str:
    """A name no other test of the session uses: roles, unlike databases, are cluster-wide."""
    return f"{prefix}_{secrets.token_hex(4)}"


def live_processes() -> dict[int, tuple[int, str]]:
    """Every process that has not exited: pid -> (parent pid, command line)."""
    found: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # exited while we looked
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ")".
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
        # A zombie has exited; only its exit status waits for init to collect it.
        if state != "Z":
            found[int(entry.name)] = (int(ppid), cmdline)
    return found


def listening(port: int, table: str) -> list[str]:
    """The local addresses (hex, as the kernel writes them) listening on ``port`` in /proc/net/``table``."""
    addresses = []
    for line in Path("/proc/net", table).read_text().splitlines()[1:]:
        local, _remote, state = line.split()[1:4]
        address, port_hex = local.split(":")
        if state == LISTEN and int(port_hex, 16) == port:
            addresses.append(address)
    return addresses


def test_the_server_is_postgresql_15_or_later(postgres: PostgresCluster) -> None:
    [(version, number)] = postgres.execute("SELECT version(), current_setting('server_version_num')::int")
    assert version.startswith("PostgreSQL ")
    assert number >= 150000, version


def test_the_server_does_not_run_as_root(postgres: PostgresCluster) -> None:
    status = Path(f"/proc/{postgres.pid}/status").read_text()
    real, effective = (
        int(uid) for uid in next(ln for ln in status.splitlines() if ln.startswith("Uid:")).split()[1:3]
    )
    expected = postgres.account.uid if postgres.account else os.getuid()
    assert real == effective == expected
    assert real != 0
    assert postgres.data_dir.stat().st_uid == expected


def test_databases_are_isolated(postgres: PostgresCluster, pg_database: str) -> None:
    other_name = unique("other")
    other = postgres.create_database(other_name)
    try:
        with psycopg.connect(pg_database) as mine:
            mine.execute("CREATE TABLE notes (body text)")
            mine.execute("INSERT INTO notes VALUES ('only here')")
        with psycopg.connect(other) as theirs:
            [(name,)] = theirs.execute("SELECT current_database()").fetchall()
            assert name == other_name
            with pytest.raises(errors.UndefinedTable):
                theirs.execute("SELECT body FROM notes")
        with psycopg.connect(pg_database) as mine:
            assert mine.execute("SELECT body FROM notes").fetchall() == [("only here",)]
    finally:
        postgres.drop_database(other_name)


def test_each_test_has_its_own_database_and_it_is_dropped_after(
    postgres: PostgresCluster, pg_database: str
) -> None:
    # The isolation test above had a database of its own too: only this test's is left.
    names = postgres.execute("SELECT datname FROM pg_database WHERE datname LIKE 'test\\_%'")
    assert names == [(database_of(pg_database),)]


def test_a_role_without_grants_cannot_read_anothers_table(
    postgres: PostgresCluster, pg_database: str
) -> None:
    reader = unique("reader")
    postgres.create_role(reader)
    with psycopg.connect(pg_database) as owner:
        owner.execute("CREATE TABLE victims (name text)")
        owner.execute("INSERT INTO victims VALUES ('private')")
    reader_url = postgres.url(database_of(pg_database), user=reader)
    with psycopg.connect(reader_url) as connection:
        [(who,)] = connection.execute("SELECT current_user").fetchall()
        assert who == reader
        with pytest.raises(errors.InsufficientPrivilege, match="permission denied"):
            connection.execute("SELECT name FROM victims")
    # The same read succeeds once granted: the refusal above was the missing grant, nothing else.
    grant = sql.SQL("GRANT SELECT ON victims TO {}").format(sql.Identifier(reader))
    postgres.execute(grant, database=database_of(pg_database))
    with psycopg.connect(reader_url) as connection:
        assert connection.execute("SELECT name FROM victims").fetchall() == [("private",)]


def test_tcp_connections_need_the_password(postgres: PostgresCluster) -> None:
    with psycopg.connect(postgres.url(tcp=True)) as connection:
        [(address,)] = connection.execute("SELECT host(inet_server_addr())").fetchall()
        assert address == "127.0.0.1"
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(postgres.url(tcp=True, password="wrong"))
    role = unique("tcp_user")
    postgres.create_role(role, password="s3cret")
    with psycopg.connect(postgres.url(user=role, password="s3cret", tcp=True)) as connection:
        assert connection.execute("SELECT current_user").fetchall() == [(role,)]


def test_the_server_listens_on_127_0_0_1_only(postgres: PostgresCluster) -> None:
    assert listening(postgres.port, "tcp") == [LOOPBACK_HEX]
    assert listening(postgres.port, "tcp6") == []
    with socket.create_connection(("127.0.0.1", postgres.port), timeout=5):
        pass
    # Linux routes all of 127.0.0.0/8 to the loopback: a server bound to 0.0.0.0 would answer here.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.2", postgres.port), timeout=5).close()


def test_stopping_leaves_no_server_behind_even_when_the_test_fails() -> None:
    with pytest.raises(RuntimeError, match="the test failed"), PostgresCluster() as cluster:
        postmaster = cluster.pid
        # A session left open, as a failing test may leave one: the fast stop must end it.
        left_open = psycopg.connect(cluster.url())
        backend = left_open.info.backend_pid
        server = {pid for pid, (ppid, _) in live_processes().items() if postmaster in (pid, ppid)}
        assert backend in server
        assert len(server) >= 3  # the postmaster, this session's backend and the checkpointer at least
        raise RuntimeError("the test failed")
    left_open.close()
    deadline = time.monotonic() + 5  # children see the postmaster go within moments
    while (remaining := server & live_processes().keys()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not remaining
    assert not [cmd for _, cmd in live_processes().values() if str(cluster.data_dir) in cmd]
    assert not cluster.base.exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(cluster.url(), connect_timeout=2)
    cluster.stop()  # a second stop is harmless


def test_a_missing_server_fails_the_tests_rather_than_skipping_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(pg_cluster, "VERSIONED_BINS", tmp_path / "postgresql")
    with pytest.raises(pytest.fail.Exception, match="apt-get install postgresql"):
        find_bin("initdb")
    # With several versions installed the newest is taken, compared as numbers (10 is after 9).
    for version in ("9", "10"):
        program = tmp_path / "postgresql" / version / "bin" / "initdb"
        program.parent.mkdir(parents=True)
        program.write_text("#!/bin/sh\n")
        program.chmod(0o755)
    assert find_bin("initdb") == tmp_path / "postgresql" / "10" / "bin" / "initdb"
