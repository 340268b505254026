"""A throw-away PostgreSQL server for tests: a fresh cluster in a temp dir on 127.0.0.1.

``SEAL_AGENT_TEST_POSTGRES_URL`` points the tests at an existing server instead. The
binaries are found through ``pg_config``, ``/usr/lib/postgresql/*/bin`` or PATH
(``make test`` installs them where absent). PostgreSQL refuses to run as root, so under
root the cluster is owned by, and run as, the unprivileged ``postgres`` user (or
``nobody``).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

URL_ENV = "SEAL_AGENT_TEST_POSTGRES_URL"


def find_bindir() -> Path | None:
    candidates: list[str] = []
    if pg_config := shutil.which("pg_config"):
        result = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        candidates.append(result.stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    if initdb := shutil.which("initdb"):
        candidates.append(str(Path(initdb).resolve().parent))
    for folder in candidates:
        if folder and all((Path(folder) / b).is_file() for b in ("initdb", "pg_ctl", "postgres")):
            return Path(folder)
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_as() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and no unprivileged user to run PostgreSQL as")


@contextmanager
def postgres_server(bindir: Path) -> Iterator[str]:
    """Start a cluster, yield its connection URL, stop and delete it."""
    user = _run_as()
    root = Path(tempfile.mkdtemp(prefix="seal-pg-"))
    data, log = root / "data", root / "server.log"
    kwargs: dict = {"capture_output": True, "text": True, "timeout": 120}
    if user is not None:
        os.chown(root, user.pw_uid, user.pw_gid)
        kwargs |= {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    port = _free_port()

    def run(*args: str) -> None:
        result = subprocess.run(list(args), **kwargs)
        if result.returncode != 0:
            detail = log.read_text() if log.is_file() else ""
            raise RuntimeError(f"{args[0]} failed: {result.stderr}{result.stdout}{detail}")

    run(str(bindir / "initdb"), "-D", str(data), "-U", "seal", "--auth=trust", "-E", "UTF8",
        "--no-sync")  # fmt: skip
    options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={root}"
    options += " -c fsync=off"
    run(str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w", "start")
    try:
        yield f"postgresql://seal@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], **kwargs
        )
        shutil.rmtree(root, ignore_errors=True)
