"""Local PostgreSQL cluster under ``.stack/pg`` (TCP 127.0.0.1, port from the topology, trust auth).

initdb and postgres refuse to run as root; as root the cluster runs as the ``postgres`` system
user (or ``bsmpg``, created on demand), through ``runuser``.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from bsm_devstack.paths import HOST, StackPaths

PG_ROOT = Path("/usr/lib/postgresql")
ROLE = "bsm"
PASSWORD = "bsm"
DATABASE = "bsm"
FALLBACK_USER = "bsmpg"
MAX_CONNECTIONS = 200


class PostgresError(RuntimeError):
    pass


# --------------------------------------------------------------------------------------------
# binaries and the user postgres runs as
# --------------------------------------------------------------------------------------------


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", path.name)) or (0,)


def find_bin_dir(data_dir: Path | None = None) -> Path:
    """Binaries of the installed PostgreSQL: those matching an existing cluster's version,
    else the highest version under /usr/lib/postgresql."""
    candidates = sorted(
        (d for d in PG_ROOT.glob("*") if (d / "bin" / "initdb").is_file()
         and (d / "bin" / "pg_ctl").is_file()),
        key=_version_key,
    )
    if not candidates:
        raise PostgresError(
            f"no PostgreSQL server binaries under {PG_ROOT}/*/bin (initdb, pg_ctl): "
            "install them (e.g. apt-get install postgresql-15) via the bootstrap"
        )
    if data_dir is not None and (data_dir / "PG_VERSION").is_file():
        version = (data_dir / "PG_VERSION").read_text().strip()
        for cand in candidates:
            if cand.name == version:
                return cand / "bin"
        raise PostgresError(
            f"{data_dir} was created by PostgreSQL {version}, but only "
            f"{', '.join(c.name for c in candidates)} is installed; remove {data_dir.parent} "
            "to start over (this deletes the local database)"
        )
    return candidates[-1] / "bin"


@dataclass(frozen=True)
class RunAs:
    """Who runs initdb / pg_ctl: ``user`` None means the current user."""

    user: str | None
    uid: int
    gid: int

    def wrap(self, cmd: list[str]) -> list[str]:
        if self.user is None:
            return cmd
        return ["runuser", "-u", self.user, "--", *cmd]


def run_as(paths: StackPaths, create: bool = True) -> RunAs:
    if os.geteuid() != 0:
        return RunAs(None, os.getuid(), os.getgid())
    # An existing cluster keeps running as its owner.
    if paths.pg_data.exists():
        st = paths.pg_data.stat()
        if st.st_uid != 0:
            try:
                pw = pwd.getpwuid(st.st_uid)
                return RunAs(pw.pw_name, pw.pw_uid, pw.pw_gid)
            except KeyError:
                pass
    for name in ("postgres", FALLBACK_USER):
        try:
            pw = pwd.getpwnam(name)
            return RunAs(pw.pw_name, pw.pw_uid, pw.pw_gid)
        except KeyError:
            continue
    if not create:
        raise PostgresError("no 'postgres' or 'bsmpg' system user")
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                    FALLBACK_USER], check=True)
    pw = pwd.getpwnam(FALLBACK_USER)
    return RunAs(pw.pw_name, pw.pw_uid, pw.pw_gid)


def _run(who: RunAs, cmd: list[str], paths: StackPaths,
         check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C.UTF-8"
    result = subprocess.run(who.wrap(cmd), cwd=paths.pg, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if check and result.returncode != 0:
        raise PostgresError(f"{' '.join(cmd)} failed (exit {result.returncode}):\n"
                            + result.stdout[-4000:])
    return result


# --------------------------------------------------------------------------------------------
# cluster lifecycle
# --------------------------------------------------------------------------------------------


def is_initialized(paths: StackPaths) -> bool:
    return (paths.pg_data / "PG_VERSION").is_file()


def _prepare_dirs(paths: StackPaths, who: RunAs) -> None:
    paths.pg.mkdir(parents=True, exist_ok=True)
    paths.pg.chmod(0o755)
    for d, mode in ((paths.pg_data, 0o700), (paths.pg_sockets, 0o755)):
        d.mkdir(exist_ok=True)
        os.chown(d, who.uid, who.gid)
        d.chmod(mode)
    log = paths.log("postgres")
    log.parent.mkdir(parents=True, exist_ok=True)
    log.touch(exist_ok=True)
    os.chown(log, who.uid, who.gid)
    if who.user is not None:
        # Every directory above the data directory must be traversable by that user.
        probe = subprocess.run(who.wrap(["test", "-w", str(paths.pg_data)]), cwd="/")
        if probe.returncode != 0:
            raise PostgresError(
                f"user {who.user} cannot reach {paths.pg_data}: make every parent directory "
                "traversable (chmod o+x)"
            )


def initdb(paths: StackPaths, who: RunAs) -> None:
    _prepare_dirs(paths, who)
    if is_initialized(paths):
        return
    # A half-made data directory (interrupted initdb) would make initdb refuse: start clean.
    for child in paths.pg_data.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    bin_dir = find_bin_dir()
    locale_args = ["--locale=C.UTF-8"] if _has_c_utf8() else ["--no-locale"]
    _run(who, [str(bin_dir / "initdb"), "-D", str(paths.pg_data), "--auth=trust",
               "--username=postgres", "-E", "UTF8", *locale_args], paths)


def _has_c_utf8() -> bool:
    try:
        out = subprocess.run(["locale", "-a"], stdout=subprocess.PIPE, text=True,
                             stderr=subprocess.DEVNULL).stdout
    except FileNotFoundError:
        return False
    return any(line.strip().lower() in ("c.utf8", "c.utf-8") for line in out.splitlines())


def socket_url(paths: StackPaths, url: str) -> str:
    """``url`` (TCP, as ``.stack/env`` publishes it for every client) through the cluster's
    Unix socket instead, for the stack's services on this box: a round trip costs about a
    quarter less CPU there than over loopback TCP, where the sending process pays for both
    ends' TCP stacks, and a message makes a dozen of them."""
    parts = urlsplit(url)
    user = parts.netloc.rpartition("@")[0]
    query = urlencode({"host": str(paths.pg_sockets), "port": parts.port or 5432})
    return f"{parts.scheme}://{user + '@' if user else ''}{parts.path}?{query}"


def server_options(paths: StackPaths, port: int) -> str:
    return " ".join([
        "-p", str(port),
        "-k", shlex.quote(str(paths.pg_sockets)),
        "-c", f"listen_addresses={HOST}",
        "-c", f"max_connections={MAX_CONNECTIONS}",
    ])


def is_running(paths: StackPaths, who: RunAs | None = None) -> bool:
    if not is_initialized(paths):
        return False
    who = who or run_as(paths, create=False)
    bin_dir = find_bin_dir(paths.pg_data)
    result = _run(who, [str(bin_dir / "pg_ctl"), "status", "-D", str(paths.pg_data)], paths,
                  check=False)
    return result.returncode == 0


def postmaster_pid(paths: StackPaths) -> int | None:
    try:
        return int((paths.pg_data / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None


def start(paths: StackPaths, who: RunAs, port: int) -> None:
    _prepare_dirs(paths, who)
    bin_dir = find_bin_dir(paths.pg_data)
    result = _run(who, [str(bin_dir / "pg_ctl"), "-D", str(paths.pg_data),
                        "-l", str(paths.log("postgres")), "-o", server_options(paths, port),
                        "-w", "-t", "60", "start"], paths, check=False)
    if result.returncode != 0:
        raise PostgresError(f"pg_ctl start failed (exit {result.returncode}):\n"
                            + result.stdout[-2000:])


def stop(paths: StackPaths, mode: str = "fast") -> bool:
    """Stop the cluster; False if it was not running. ``mode`` ``fast`` (the default: roll
    back open transactions, checkpoint) or ``immediate`` (a crash: every process quits at once,
    the next start recovers from the WAL — what the fault primitives use)."""
    if mode not in ("fast", "immediate"):
        raise ValueError(f"unknown stop mode {mode!r}")
    if not is_initialized(paths):
        return False
    who = run_as(paths, create=False)
    if not is_running(paths, who):
        return False
    bin_dir = find_bin_dir(paths.pg_data)
    result = _run(who, [str(bin_dir / "pg_ctl"), "-D", str(paths.pg_data), "-m", mode,
                        "-w", "-t", "60", "stop"], paths, check=False)
    if result.returncode != 0:
        raise PostgresError(f"pg_ctl stop failed (exit {result.returncode}):\n"
                            + result.stdout[-2000:])
    return True


# --------------------------------------------------------------------------------------------
# role, database, readiness (asyncpg over TCP)
# --------------------------------------------------------------------------------------------


async def _connect(port: int, user: str, database: str, password: str | None = None,
                   timeout: float = 5):
    import asyncpg

    return await asyncpg.connect(host=HOST, port=port, user=user, password=password,
                                 database=database, timeout=timeout)


async def wait_accepting(port: int, timeout: float = 30.0) -> None:
    """Wait until the server accepts a superuser connection."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            conn = await _connect(port, "postgres", "postgres")
            await conn.close()
            return
        except Exception as exc:
            if loop.time() > deadline:
                raise PostgresError(f"PostgreSQL not accepting connections: {exc}") from exc
            await asyncio.sleep(0.3)


RECORD_WRITER = "bsm_record_writer"


async def _create_once(conn, exists: str, name: str, create: str, created: list[str],  # noqa: ANN001
                       kind: str = "role") -> bool:
    """Run ``create`` unless ``exists`` finds ``name``; a concurrent creation is not an error.
    Returns whether it already existed."""
    if await conn.fetchval(exists, name) is not None:
        return True
    try:
        await conn.execute(create)
        created.append(f"{kind} {name}")
    except Exception as exc:  # another `up` created it meanwhile
        if "already exists" not in str(exc):
            raise
    return False


async def ensure_role_and_database(port: int) -> list[str]:
    """Create role ``bsm`` (LOGIN PASSWORD 'bsm') and database ``bsm`` owned by it, if missing.
    Returns what was created."""
    created: list[str] = []
    role_exists = "SELECT 1 FROM pg_roles WHERE rolname = $1"
    conn = await _connect(port, "postgres", "postgres")
    try:
        if await _create_once(conn, role_exists, ROLE,
                              f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'", created):
            await conn.execute(f"ALTER ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'")
        # The record's writer: the metrics service works as this role, which may INSERT into
        # the archive but not UPDATE, DELETE or TRUNCATE it (G1; a trigger refuses it anyway).
        await _create_once(conn, role_exists, RECORD_WRITER,
                           f"CREATE ROLE {RECORD_WRITER} NOLOGIN", created)
        await conn.execute(f"GRANT {RECORD_WRITER} TO {ROLE}")
        await _create_once(conn, "SELECT 1 FROM pg_database WHERE datname = $1", DATABASE,
                           f"CREATE DATABASE {DATABASE} OWNER {ROLE} ENCODING 'UTF8'", created,
                           kind="database")
    finally:
        await conn.close()
    return created


async def ready(port: int) -> bool:
    """True if ``SELECT 1`` as bsm on database bsm succeeds."""
    try:
        conn = await _connect(port, ROLE, DATABASE, PASSWORD, timeout=3)
    except Exception:
        return False
    try:
        return await conn.fetchval("SELECT 1") == 1
    except Exception:
        return False
    finally:
        await conn.close()
