"""Where the repository and the ``.stack/`` directory are, and fixed addresses of the stack."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

# Where the stack listens: bsm_devstack.topology (ports follow BSM_STACK_PORT_OFFSET).
HOST = "127.0.0.1"
MAIL_DOMAIN = "marketplace.example"


class RepoNotFound(RuntimeError):
    pass


def _is_repo_root(path: Path) -> bool:
    return (path / "pom.xml").is_file() and (path / "devstack").is_dir()


def find_repo_root() -> Path:
    """The repository root.

    ``BSM_ROOT`` if set; else the nearest directory, from the working directory upwards, that
    holds ``pom.xml`` (and ``devstack/``); else the checkout this package was installed from
    (editable install: ``<repo>/devstack/src/bsm_devstack``).
    """
    env = os.environ.get("BSM_ROOT")
    if env:
        root = Path(env).expanduser().resolve()
        if not (root / "pom.xml").is_file():
            raise RepoNotFound(f"BSM_ROOT={env} does not contain pom.xml")
        return root
    cwd = Path.cwd().resolve()
    for candidate in (cwd, *cwd.parents):
        if _is_repo_root(candidate):
            return candidate
    here = Path(__file__).resolve()
    for candidate in here.parents:
        if _is_repo_root(candidate):
            return candidate
    raise RepoNotFound(
        "cannot find the bsm repository (a directory with pom.xml and devstack/): "
        "run from inside the checkout or set BSM_ROOT"
    )


def _others_can_traverse(path: Path) -> bool:
    """Whether every directory from ``/`` down to ``path`` lets other users through."""
    for d in (path, *path.parents):
        if not d.stat().st_mode & 0o001:
            return False
    return True


@dataclass(frozen=True)
class StackPaths:
    root: Path

    @classmethod
    def discover(cls) -> StackPaths:
        return cls(find_repo_root())

    @cached_property
    def stack(self) -> Path:
        return self.root / ".stack"

    @cached_property
    def pom(self) -> Path:
        return self.root / "pom.xml"

    # --- files shared with services and tests -------------------------------------------------
    @cached_property
    def env_file(self) -> Path:
        return self.stack / "env"

    @cached_property
    def secrets_file(self) -> Path:
        return self.stack / "secrets.env"

    @cached_property
    def logs(self) -> Path:
        return self.stack / "logs"

    @cached_property
    def run(self) -> Path:
        return self.stack / "run"

    @cached_property
    def mailsink(self) -> Path:
        return self.stack / "mailsink"

    @cached_property
    def blobs(self) -> Path:
        return self.stack / "blobs"

    # --- kafka ---------------------------------------------------------------------------------
    @cached_property
    def kafka(self) -> Path:
        return self.stack / "kafka"

    @cached_property
    def kafka_libs(self) -> Path:
        return self.kafka / "libs"

    @cached_property
    def kafka_libs_marker(self) -> Path:
        return self.kafka_libs / ".complete"

    def kafka_home(self, brokers: int) -> Path:
        """The folder of one cluster layout: ``.stack/kafka`` for the single broker (where it
        always was), ``.stack/kafka/cluster3`` for three nodes (each its own cluster id and
        data: switching layouts never mixes their logs)."""
        return self.kafka if brokers == 1 else self.kafka / f"cluster{brokers}"

    def kafka_node(self, brokers: int, node_id: int) -> Path:
        home = self.kafka_home(brokers)
        return home if brokers == 1 else home / f"node-{node_id}"

    @cached_property
    def topology_file(self) -> Path:
        """What the last ``up`` started (ports, brokers, instances): see topology.py."""
        return self.stack / "topology.json"

    # --- postgres ------------------------------------------------------------------------------
    @cached_property
    def pg(self) -> Path:
        """PostgreSQL's folder: ``.stack/pg``, unless the unprivileged user PostgreSQL runs as
        (when we are root) could not reach it — a checkout under ``/root`` (mode 700), say.
        Then the folder lives in ``/var/tmp/bsm-pg-<hash of the checkout>`` and ``.stack/pg``
        is a symbolic link to it, so it is still found under the stack folder."""
        link = self.stack / "pg"
        if link.is_symlink():
            return link.resolve()
        if os.geteuid() == 0 and not link.exists() and not _others_can_traverse(self.root):
            digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:12]
            target = Path("/var/tmp") / f"bsm-pg-{digest}"
            target.mkdir(mode=0o755, parents=True, exist_ok=True)
            self.stack.mkdir(parents=True, exist_ok=True)
            link.symlink_to(target, target_is_directory=True)
            return target
        return link

    @cached_property
    def pg_data(self) -> Path:
        return self.pg / "data"

    @cached_property
    def pg_sockets(self) -> Path:
        return self.pg / "run"

    @cached_property
    def lock_file(self) -> Path:
        return self.run / "stack.lock"

    # --- helpers -------------------------------------------------------------------------------
    def log(self, name: str) -> Path:
        if name == "postgres" and self.pg != self.stack / "pg":
            # PostgreSQL writes its own log: keep it where its user can reach it.
            return self.pg / "postgres.log"
        return self.logs / f"{name}.log"

    def pid_file(self, name: str) -> Path:
        return self.run / f"{name}.pid"

    def ready_file(self, name: str) -> Path:
        return self.run / f"{name}.ready"

    def make_dirs(self) -> None:
        for d in (self.stack, self.logs, self.run, self.mailsink, self.blobs, self.kafka,
                  self.pg):
            d.mkdir(parents=True, exist_ok=True)
        # The unprivileged PostgreSQL user must be able to traverse .stack and .stack/pg.
        for d in (self.stack, self.pg, self.logs):
            d.chmod(d.stat().st_mode | 0o755)
        shown = self.logs / "postgres.log"
        if self.log("postgres") != shown and not shown.is_symlink():
            shown.unlink(missing_ok=True)
            shown.symlink_to(self.log("postgres"))  # all logs in one place for people
