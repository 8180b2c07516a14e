"""A throw-away PostgreSQL server for the tests: initdb + pg_ctl on a loopback port, password authentication.

`start_server(root)` creates a cluster in `root/data` (as the `postgres`
user when the tests run as root: PostgreSQL refuses to run as root), listening
on 127.0.0.1 only, TCP logins with a password (scram-sha-256); its Unix
socket, in the data folder, is trusted for the set-up. It creates the role
`alice` with a random password and her database `optuna`. `Server.stop()`
stops it by its data folder (`pg_ctl stop`), never by process name.
`unavailable()` says why no server can be started here (None when one can).
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path


def _bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    return candidates[-1] if candidates else None


def _run_as() -> list[str]:
    """The prefix that runs a PostgreSQL program as a non-root user ([] when not root)."""
    if os.geteuid() != 0:
        return []
    return [shutil.which("runuser") or "runuser", "-u", "postgres", "--"]


def unavailable() -> str | None:
    """Why a test server cannot be started here, or None."""
    for name in ("initdb", "pg_ctl", "psql"):
        if _bin(name) is None:
            return f"PostgreSQL's {name} not found (Debian: apt-get install postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run the server as"
        if not (shutil.which("runuser")):
            return "running as root without runuser to start the server as 'postgres'"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "the PostgreSQL driver is not installed (pip install -e '.[postgres]')"
    return None


@dataclass
class Server:
    data: Path
    port: int
    user: str
    password: str
    database: str

    def url(self, password: bool = True) -> str:
        secret = f":{self.password}" if password else ""
        return f"postgresql://{self.user}{secret}@127.0.0.1:{self.port}/{self.database}"

    def passfile(self, path: Path) -> Path:
        """A libpq password file for this server (mode 0600, as libpq requires)."""
        path.write_text(f"127.0.0.1:{self.port}:{self.database}:{self.user}:{self.password}\n")
        path.chmod(0o600)
        return path

    def stop(self) -> None:
        subprocess.run(
            [*_run_as(), _bin("pg_ctl"), "-D", str(self.data), "stop", "-m", "immediate", "-w"],
            capture_output=True,
            timeout=60,
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(root: Path) -> Server:
    """Start a server under `root` (module docstring); raises RuntimeError with the server's log if it fails."""
    root.mkdir(parents=True, exist_ok=True)
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    as_user = _run_as()
    port = _free_port()
    password = "pw-" + secrets.token_hex(12)
    init = subprocess.run(
        [
            *as_user,
            _bin("initdb"),
            "-D",
            str(data),
            "-U",
            "admin",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--no-sync",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if init.returncode != 0:
        raise RuntimeError(f"initdb failed: {init.stderr[-2000:]}")
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {data} -c fsync=off"
    start = subprocess.run(
        [
            *as_user,
            _bin("pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(data / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    server = Server(data, port, "alice", password, "optuna")
    if start.returncode != 0:
        log = (data / "server.log").read_text(errors="replace")[-2000:] if (data / "server.log").is_file() else ""
        server.stop()
        raise RuntimeError(f"pg_ctl start failed: {start.stderr[-1000:]} {log}")
    sql = f"CREATE ROLE alice LOGIN PASSWORD '{password}'; CREATE DATABASE optuna OWNER alice;"
    setup = subprocess.run(
        [
            *as_user,
            _bin("psql"),
            "-h",
            str(data),
            "-p",
            str(port),
            "-U",
            "admin",
            "-d",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql.split("; ")[0],
            "-c",
            sql.split("; ")[1],
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if setup.returncode != 0:
        server.stop()
        raise RuntimeError(f"creating the role and database failed: {setup.stderr[-2000:]}")
    return server
