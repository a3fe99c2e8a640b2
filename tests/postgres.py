"""A real PostgreSQL for the tests of the team's tracking server: Debian's `postgresql` binaries
(scripts/test.sh installs them when missing), a cluster made by `initdb` in a temporary folder,
its socket there too, listening on a free loopback port. Never a mock.

`initdb` refuses to run as root: as root, the cluster's commands run as the `postgres` user.
Password logins over TCP (scram-sha-256), as a team's database would want them.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.servers import free_port

USER = "team"
PASSWORD = "pg-pa55-for-tests"  # a test cluster's, on 127.0.0.1 only


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's bin folder, or None."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    return Path(found[-1]).parent if found else None


@dataclass
class Postgres:
    """A running test cluster: `uri(db)` for SQLAlchemy/MLflow, `create(db)` for a fresh
    database, `stop()`/`start()` to take it away and bring it back."""

    bin: Path
    data: Path
    port: int
    run_as: list[str]

    def uri(self, db: str) -> str:
        return f"postgresql+psycopg://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{db}"

    def create(self, db: str) -> str:
        import psycopg

        dsn = f"host=127.0.0.1 port={self.port} user={USER} password={PASSWORD} dbname=postgres"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{db}"')
        return self.uri(db)

    def pg_ctl(self, *args: str) -> None:
        command = [*self.run_as, str(self.bin / "pg_ctl"), "-D", str(self.data), *args]
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=60)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1"
        self.pg_ctl("-o", options, "-l", str(self.data / "server.log"), "-w", "start")

    def stop(self) -> None:
        self.pg_ctl("-m", "fast", "-w", "stop")


@contextmanager
def running_postgres(folder: Path) -> Iterator[Postgres]:
    """initdb + start in `folder`; stopped and removed at the end."""
    bin = postgres_bin()
    assert bin is not None, "PostgreSQL is not installed: scripts/test.sh installs it"
    run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    folder.mkdir(parents=True, exist_ok=True)  # outside pytest's root-only tmp: postgres reads it
    data = folder / "data"
    pwfile = folder / "pw"
    pwfile.write_text(PASSWORD)
    if run_as:
        for path in (folder, pwfile):
            shutil.chown(path, "postgres")
    subprocess.run(
        [*run_as, str(bin / "initdb"), "-D", str(data), "-U", USER, f"--pwfile={pwfile}",
         "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync"],
        check=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    server = Postgres(bin, data, free_port(), run_as)
    server.start()
    try:
        yield server
    finally:
        server.stop()
