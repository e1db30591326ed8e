"""A throwaway PostgreSQL cluster for tests that must restart, stop or reconfigure the server."""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from typing import Iterator

from cliquet_wsgi.testing import require_service

PG_BIN = "/usr/lib/postgresql/15/bin"


class PrivateCluster:
    """A cluster on a free loopback port, trust authentication, started with extra ``-c`` settings.

    ``initdb`` refuses to run as root, so as root it runs as ``postgres``
    (RELIABILITY §3, "PostgreSQL control"); files put in the cluster's
    directory with :meth:`add_file` belong to the server's user.
    """

    def __init__(self, base: str, settings: dict[str, str] | None = None) -> None:
        bindir = os.environ.get("CLIQUET_TEST_PG_BIN", PG_BIN)
        self.initdb, self.pg_ctl = os.path.join(bindir, "initdb"), os.path.join(bindir, "pg_ctl")
        if not os.path.exists(self.initdb):
            require_service("postgresql binaries", f"no initdb in {bindir} (set CLIQUET_TEST_PG_BIN)")
        self.as_root = os.geteuid() == 0
        self.prefix: list[str] = []
        if self.as_root:
            runuser = shutil.which("runuser")
            if runuser is None:
                require_service("runuser", "needed to run initdb as postgres when root")
            self.prefix = [runuser, "-u", "postgres", "--"]
        self.settings = dict(settings or {})
        self.dir = os.path.join(base, "pgdata")
        os.makedirs(self.dir)
        if self.as_root:
            shutil.chown(base, "postgres")
            shutil.chown(self.dir, "postgres")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._run(self.initdb, "-D", self.dir, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def add_file(self, name: str, content: bytes) -> str:
        """Write ``content`` in the cluster's directory, readable by the server only (key files must be)."""
        path = os.path.join(self.dir, name)
        with open(path, "wb") as file:
            file.write(content)
        os.chmod(path, 0o600)
        if self.as_root:
            shutil.chown(path, "postgres")
        return path

    def _run(self, *args: str) -> None:
        subprocess.run([*self.prefix, *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=60)

    def ctl(self, action: str) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        options += "".join(f" -c {name}={value}" for name, value in self.settings.items())
        self._run(self.pg_ctl, "-D", self.dir, "-o", options, "-m", "fast", "-w", action)


@contextlib.contextmanager
def private_cluster(prepare=None, **settings: str) -> Iterator[PrivateCluster]:
    """A started :class:`PrivateCluster`, stopped and deleted at the end.

    ``prepare(cluster)`` runs before the start (to add files the settings name).
    """
    # Not pytest's tmp_path: its parents are private to root, and postgres must enter.
    base = tempfile.mkdtemp(prefix="cliquet-pgcluster-")
    try:
        cluster = PrivateCluster(base, settings)
        if prepare is not None:
            prepare(cluster)
        cluster.ctl("start")
        try:
            yield cluster
        finally:
            cluster.ctl("stop")
    finally:
        shutil.rmtree(base, ignore_errors=True)
