"""A throwaway PostgreSQL server for the tests: its own cluster in a fresh temporary folder, reachable
on a unix socket and on 127.0.0.1 only, stopped and deleted at the end of the session.

``tests/conftest.py`` registers this module as a pytest plugin, so every test can ask for its
fixtures by name. ``postgres`` is the session's cluster (a :class:`PostgresCluster`);
``pg_database`` is the URL of a database made for one test and dropped after it.
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import socket
import stat
import subprocess
import tempfile
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql
from psycopg.abc import Params

MISSING_SERVER = "the PostgreSQL tests need a PostgreSQL server: apt-get install postgresql"
SUPERUSER = "postgres"  # the bootstrap superuser's name, whichever account runs the server
# Debian's packages put each major version's programs here and only some of them on PATH.
VERSIONED_BINS = Path("/usr/lib/postgresql")
# PostgreSQL refuses to run as root; these accounts exist on Debian and can run it instead
# (the package's own postgres first, nobody otherwise). One is created only if neither exists.
SERVER_ACCOUNTS = ("postgres", "nobody")
CREATED_ACCOUNT = "kobo-tip-pg"

# Throwaway cluster, so durability is traded for speed: a crash loses nothing anyone keeps.
SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "max_connections": "100",  # room for the store's concurrency tests
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


def find_bin(name: str) -> Path:
    """The PostgreSQL program ``name``: on PATH, else in the newest ``/usr/lib/postgresql/*/bin``."""
    on_path = shutil.which(name)
    if on_path:
        return Path(on_path)
    for bindir in sorted(VERSIONED_BINS.glob("*/bin"), key=_major_version, reverse=True):
        program = bindir / name
        if program.is_file() and os.access(program, os.X_OK):
            return program
    # A failure, not a skip: a machine without a server must not pass the store tests unseen.
    pytest.fail(MISSING_SERVER, pytrace=False)


def _major_version(bindir: Path) -> int:
    digits = re.match(r"\d+", bindir.parent.name)
    return int(digits.group()) if digits else -1


@dataclass(frozen=True)
class Account:
    """The unprivileged account the server runs as when the tests run as root."""

    uid: int
    gid: int

    @classmethod
    def for_server(cls) -> Account | None:
        """None when this process may run the server itself (it is not root)."""
        if os.geteuid() != 0:
            return None
        for name in SERVER_ACCOUNTS:
            try:
                entry = pwd.getpwnam(name)
            except KeyError:
                continue
            if entry.pw_uid != 0:
                return cls(entry.pw_uid, entry.pw_gid)
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", CREATED_ACCOUNT],
            check=True,
        )
        entry = pwd.getpwnam(CREATED_ACCOUNT)
        return cls(entry.pw_uid, entry.pw_gid)

    def give(self, path: Path) -> None:
        """Make ``path`` the account's, and check the account can reach it through its parents."""
        os.chown(path, self.uid, self.gid)
        for parent in path.parents:
            info = parent.stat()
            if info.st_uid != self.uid and not info.st_mode & stat.S_IXOTH:
                raise RuntimeError(
                    f"the PostgreSQL test server runs as uid {self.uid}, which cannot reach {path} "
                    f"through {parent}: point TMPDIR at a folder it can traverse, such as /tmp"
                )


def _run(args: list[str | Path], account: Account | None, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL program, as ``account`` when there is one; output captured, not checked."""
    # PG* variables of the developer's shell (PGDATA, PGPORT...) must not steer this cluster.
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    drop: dict[str, Any] = {}
    if account:
        drop = {"user": account.uid, "group": account.gid, "extra_groups": []}
    return subprocess.run(
        [str(arg) for arg in args],
        cwd=cwd,  # the account may not be able to enter the caller's working folder
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        **drop,
    )


def _checked(result: subprocess.CompletedProcess[str], what: str) -> None:
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed ({result.returncode}): {result.stdout}{result.stderr}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _running(pg_ctl: Path, data_dir: Path, account: Account | None, base: Path) -> bool:
    # pg_ctl status: 0 running, 3 not running, 4 no cluster there.
    return _run([pg_ctl, "status", "-D", data_dir], account, base).returncode == 0


def _shut_down(pg_ctl: Path, data_dir: Path, base: Path, account: Account | None) -> None:
    """Stop the server if it runs, then delete its folder (the finaliser of a cluster)."""
    if base.is_dir():
        # fast ends open sessions (a test may leave one); immediate if that does not end in time.
        for mode in ("fast", "immediate"):
            if not _running(pg_ctl, data_dir, account, base):
                break
            _run([pg_ctl, "-D", data_dir, "-m", mode, "-w", "-t", "30", "stop"], account, base)
        if _running(pg_ctl, data_dir, account, base):
            # Kept, so whoever looks can see which server would not stop.
            raise RuntimeError(f"the PostgreSQL test server in {data_dir} did not stop")
    shutil.rmtree(base, ignore_errors=True)


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-4000:] if log.exists() else ""


class PostgresCluster:
    """A PostgreSQL cluster of its own, started by :meth:`start` (or ``with``) and gone after :meth:`stop`.

    Local (unix-socket) connections are trusted: the socket's folder is private to the server's
    account, so only that account and root reach it. TCP connections, on 127.0.0.1 only, need a
    password (the superuser's is :attr:`password`).
    """

    def __init__(self) -> None:
        self.initdb = find_bin("initdb")
        # pg_ctl of the same version as initdb, which a PATH with several versions could mix up.
        sibling = self.initdb.resolve().parent / "pg_ctl"
        self.pg_ctl = sibling if sibling.is_file() else find_bin("pg_ctl")
        self.account = Account.for_server()
        self.password = secrets.token_urlsafe(18)
        self.port = 0
        self.base = Path()
        self._finalizer: weakref.finalize[..., PostgresCluster] | None = None

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base / "socket"

    @property
    def pid(self) -> int:
        """The postmaster's process id."""
        return int((self.data_dir / "postmaster.pid").read_text().split()[0])

    def start(self) -> PostgresCluster:
        """initdb a new cluster in a fresh temporary folder and start it; returns the cluster."""
        if self._finalizer is not None:
            raise RuntimeError("this PostgreSQL test cluster was already started")
        # A fresh folder, not pytest's tmp_path: /tmp/pytest-of-root is 0700, closed to the account.
        self.base = Path(tempfile.mkdtemp(prefix="kobo-tip-pg-"))
        # Registered first, so a failed start cleans up too; also runs at exit if stop() never came.
        self._finalizer = weakref.finalize(
            self, _shut_down, self.pg_ctl, self.data_dir, self.base, self.account
        )
        try:
            self._init()
            self._launch()
            password = sql.SQL("ALTER ROLE {} PASSWORD {}")
            self.execute(password.format(sql.Identifier(SUPERUSER), sql.Literal(self.password)))
        except BaseException:
            self.stop()
            raise
        return self

    def _init(self) -> None:
        self.socket_dir.mkdir(mode=0o700)
        if self.account:
            self.account.give(self.base)
            self.account.give(self.socket_dir)
        created = _run(
            [
                self.initdb,
                "-D",
                self.data_dir,
                "-U",
                SUPERUSER,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",  # byte-order collation, but upper() and regexes know non-ASCII
                "--no-sync",  # nothing to make durable in a throwaway cluster
                "--no-instructions",
            ],
            self.account,
            self.base,
        )
        _checked(created, "initdb")
        settings = {**SETTINGS, "unix_socket_directories": str(self.socket_dir)}
        # Appended settings override initdb's earlier lines; appending keeps the file's owner.
        with (self.data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\n# kobo-tip test cluster\n")
            for name, value in settings.items():
                escaped = value.replace("'", "''")
                conf.write(f"{name} = '{escaped}'\n")

    def _launch(self) -> None:
        log = self.base / "postgres.log"
        # The free port can be taken between the probe and the server's bind: then try another.
        for _attempt in range(3):
            self.port = _free_port()
            # -o: the port on the command line, the rest of the settings in postgresql.conf.
            start: list[str | Path] = ["-l", log, "-o", f"-p {self.port}", "-w", "-t", "60", "start"]
            started = _run([self.pg_ctl, "-D", self.data_dir, *start], self.account, self.base)
            if started.returncode == 0:
                return
            if "could not bind" not in _tail(log):
                break
        raise RuntimeError(f"pg_ctl start failed: {started.stderr}\n{_tail(log)}")

    def stop(self) -> None:
        """Stop the server (``pg_ctl -m fast stop``) and delete its folder; safe to call twice."""
        if self._finalizer is not None:
            self._finalizer()

    def __enter__(self) -> PostgresCluster:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def url(
        self,
        database: str = "postgres",
        user: str | None = None,
        *,
        password: str | None = None,
        tcp: bool = False,
    ) -> str:
        """A ``postgresql://`` URL for psycopg: over the unix socket, or over 127.0.0.1 with ``tcp``.

        Socket: ``postgresql://postgres@/name?host=%2Ftmp%2Fkobo-tip-pg-x%2Fsocket&port=40123``.
        TCP: ``postgresql://postgres:secret@127.0.0.1:40123/name`` (the superuser's password by default).
        """
        user = user or SUPERUSER
        if tcp:
            if password is None and user == SUPERUSER:
                password = self.password
            login = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "")
            return f"postgresql://{login}@127.0.0.1:{self.port}/{quote(database, safe='')}"
        host = quote(str(self.socket_dir), safe="")
        return f"postgresql://{quote(user, safe='')}@/{quote(database, safe='')}?host={host}&port={self.port}"

    def execute(
        self, query: str | sql.SQL | sql.Composed, params: Params | None = None, *, database: str = "postgres"
    ) -> list[Any]:
        """Run one statement as the superuser, autocommitted; returns its rows (none for a command)."""
        with psycopg.connect(self.url(database), autocommit=True) as connection:
            cursor = connection.execute(query, params)
            return cursor.fetchall() if cursor.description else []

    def create_database(self, name: str, owner: str | None = None) -> str:
        """Create database ``name`` (owned by ``owner``, else the superuser); returns its socket URL."""
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if owner:
            statement += sql.SQL(" OWNER {}").format(sql.Identifier(owner))
        self.execute(statement)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name``, ending any session a test left open in it."""
        self.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def create_role(self, name: str, password: str | None = None, login: bool = True) -> None:
        """Create role ``name`` with no privileges beyond PUBLIC's; ``password`` allows it in over TCP."""
        statement = sql.SQL("CREATE ROLE {} {}").format(
            sql.Identifier(name), sql.SQL("LOGIN" if login else "NOLOGIN")
        )
        if password is not None:
            # A literal: utility statements such as CREATE ROLE take no bound parameters.
            statement += sql.SQL(" PASSWORD {}").format(sql.Literal(password))
        self.execute(statement)


@pytest.fixture(scope="session")
def postgres(request: pytest.FixtureRequest) -> PostgresCluster:
    """The session's PostgreSQL cluster, started on first use and stopped when the session ends."""
    cluster = PostgresCluster().start()
    request.config.add_cleanup(cluster.stop)  # runs however the session ends, failures included
    return cluster


@pytest.fixture
def pg_database(postgres: PostgresCluster) -> Iterator[str]:
    """The socket URL of an empty database of the test's own, dropped after the test."""
    name = f"test_{secrets.token_hex(6)}"
    url = postgres.create_database(name)
    yield url
    postgres.drop_database(name)
