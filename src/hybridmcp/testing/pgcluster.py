"""A throwaway PostgreSQL server for tests and benchmarks: a real cluster under a temp dir.

``initdb`` makes a cluster in a fresh directory, ``pg_ctl`` starts it on a free loopback port
(and a unix socket in the same directory) and stops it again; the directory is removed after.
The binaries come from ``$PATH`` or the distribution's ``/usr/lib/postgresql/<version>/bin``
(Debian's ``postgresql`` package). PostgreSQL refuses to run as root: as root, the cluster's
directory is given to the ``postgres`` user and every command runs as that user (``runuser``).

    with TempCluster() as cluster:
        url = cluster.create_database("runs")   # postgresql://postgres@127.0.0.1:PORT/runs
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

SUPERUSER = "postgres"


class ClusterError(RuntimeError):
    """The throwaway cluster could not be made or started."""


def find_binary(name: str) -> str:
    """``initdb``/``pg_ctl``/... on ``$PATH``, else the newest one Debian installed."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: [int(x) if x.isdigit() else 0 for x in Path(p).parts[-3].split(".")],
    )
    if not candidates:
        raise ClusterError(
            f"PostgreSQL's {name} was not found on $PATH or under /usr/lib/postgresql/*/bin "
            "(install the distribution's postgresql package)"
        )
    return candidates[-1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TempCluster:
    """One PostgreSQL cluster in a temp dir, trust authentication on loopback only."""

    def __init__(self, *, settings: dict[str, str] | None = None) -> None:
        self._as_root = os.geteuid() == 0
        # As root the cluster runs as ``postgres``, who must reach its directory: under /tmp,
        # not under a $TMPDIR only root may enter.
        base = "/tmp" if self._as_root and os.path.isdir("/tmp") else None
        self.root = Path(tempfile.mkdtemp(prefix="hybridmcp-pg-", dir=base))
        self.data = self.root / "data"
        self.port = free_port()
        self.settings = {
            # A throwaway cluster: durability off for speed; enough connections for the
            # concurrency tests (each process holds a small pool).
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
            **(settings or {}),
        }
        self.started = False

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        command = list(args)
        if self._as_root:
            command = ["runuser", "-u", SUPERUSER, "--", *command]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise ClusterError(
                f"{Path(args[0]).name} failed ({proc.returncode}): "
                f"{(proc.stderr or proc.stdout).strip()[-2000:]}"
            )
        return proc

    def start(self) -> TempCluster:
        """Make the cluster (the first time) and start its server."""
        initdb, pg_ctl = find_binary("initdb"), find_binary("pg_ctl")
        if not self.data.exists():
            if self._as_root:
                shutil.chown(self.root, user=SUPERUSER, group=None)
            self._run(
                initdb,
                *("-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8"),
                "--no-locale",
            )
        options = " ".join(
            [
                f"-p {self.port}",
                f"-k {self.root}",
                "-c listen_addresses=127.0.0.1",
                *(f"-c {k}={v}" for k, v in self.settings.items()),
            ]
        )
        self._run(
            pg_ctl,
            *("-D", str(self.data), "-l", str(self.root / "server.log"), "-o", options),
            *("-w", "-t", "60", "start"),
        )
        self.started = True
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database on the cluster; its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def halt(self, mode: str = "fast") -> None:
        """Stop the server, keeping the cluster (``start`` starts it again): its clients'
        connections are closed (``fast``: each session told so; ``immediate``: as a crash)."""
        if self.started:
            self._run(find_binary("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")
            self.started = False

    def stop(self) -> None:
        try:
            self.halt("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> TempCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
