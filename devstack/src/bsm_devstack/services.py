"""The bsm services and the mail sink as background processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bsm_devstack import procs
from bsm_devstack.envfile import read_env_file
from bsm_devstack.paths import (
    GATEWAY_URL,
    HOST,
    METRICS_URL,
    SMTP_RELAY_PORT,
    StackPaths,
)
from bsm_devstack.ui import Progress, StackError, fail, file_size, ok, show_tail, step, warn


@dataclass(frozen=True)
class Service:
    name: str
    health_url: str | None = None  # readiness by HTTP GET → 200; else by liveness/ready file
    address: str = "-"

    @property
    def module(self) -> str:
        return f"bsm_{self.name}"


SERVICES: tuple[Service, ...] = (
    Service("alias"),
    Service("policy"),
    Service("delivery"),
    Service("metrics", f"{METRICS_URL}/health", METRICS_URL),
    Service("gateway", f"{GATEWAY_URL}/health", GATEWAY_URL),
)
SERVICE_NAMES = tuple(s.name for s in SERVICES)
MAILSINK = "mailsink"

READY_TIMEOUT = 60.0
SETTLE_SECONDS = 2.0


def service(name: str) -> Service:
    for svc in SERVICES:
        if svc.name == name:
            return svc
    raise KeyError(name)


# --------------------------------------------------------------------------------------------
# interpreters and environment
# --------------------------------------------------------------------------------------------


def service_python(paths: StackPaths) -> Path:
    """The interpreter that runs the services: ``BSM_SERVICE_PYTHON`` or ``<repo>/.venv``."""
    override = os.environ.get("BSM_SERVICE_PYTHON")
    return Path(override) if override else paths.root / ".venv" / "bin" / "python"


def installed_modules(python: Path, modules: list[str]) -> dict[str, bool]:
    """Which of ``modules`` the interpreter ``python`` can import (importlib find_spec)."""
    if not python.exists():
        return {m: False for m in modules}
    code = ("import importlib.util, json, sys; "
            "print(json.dumps({m: importlib.util.find_spec(m) is not None "
            "for m in sys.argv[1:]}))")
    try:
        result = subprocess.run([str(python), "-c", code, *modules], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True, timeout=60)
        return {m: bool(v) for m, v in json.loads(result.stdout.strip().splitlines()[-1]).items()}
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        return {m: False for m in modules}


def process_env(paths: StackPaths) -> dict[str, str]:
    env = dict(os.environ)
    env.update(read_env_file(paths.env_file))
    env.update(read_env_file(paths.secrets_file))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


# --------------------------------------------------------------------------------------------
# mail sink
# --------------------------------------------------------------------------------------------


def mailsink_markers(paths: StackPaths) -> list[str]:
    return ["bsm_devstack.mailsink", f"--dir={paths.mailsink}"]


def mailsink_pid(paths: StackPaths) -> int | None:
    return procs.running_pid(paths.pid_file(MAILSINK), mailsink_markers(paths))


def _smtp_ready(host: str, port: int) -> bool:
    import smtplib

    try:
        with smtplib.SMTP(host, port, timeout=2) as smtp:
            code, _ = smtp.noop()
            return code == 250
    except (OSError, smtplib.SMTPException):
        return False


def mailsink_python(paths: StackPaths) -> Path:
    """The services' interpreter if bsm_devstack is installed there, else this one."""
    python = service_python(paths)
    if all(installed_modules(python, ["bsm_devstack", "aiosmtpd"]).values()):
        return python
    return Path(sys.executable)


def start_mailsink(paths: StackPaths) -> None:
    pid = mailsink_pid(paths)
    if pid is not None:
        ok(MAILSINK, f"already running (pid {pid})")
        return
    if procs.port_open(HOST, SMTP_RELAY_PORT):
        raise StackError(f"mail sink: port {HOST}:{SMTP_RELAY_PORT} is in use by another "
                         "process (not started by this stack)")
    log = paths.log(MAILSINK)
    offset = file_size(log)
    cmd = [str(mailsink_python(paths)), "-m", "bsm_devstack.mailsink", f"--host={HOST}",
           f"--port={SMTP_RELAY_PORT}", f"--dir={paths.mailsink}"]
    proc = procs.spawn(cmd, log=log, cwd=paths.root, env=process_env(paths),
                       pid_file=paths.pid_file(MAILSINK))
    step(MAILSINK, f"started (pid {proc.pid}), waiting for SMTP on {HOST}:{SMTP_RELAY_PORT}")
    deadline = time.monotonic() + 20
    while True:
        if proc.poll() is not None:
            fail(MAILSINK, f"exited with code {proc.returncode}")
            show_tail(log, since=offset)
            paths.pid_file(MAILSINK).unlink(missing_ok=True)
            raise StackError("mail sink failed to start")
        if _smtp_ready(HOST, SMTP_RELAY_PORT):
            ok(MAILSINK, f"ready on {HOST}:{SMTP_RELAY_PORT} → {paths.mailsink}")
            return
        if time.monotonic() > deadline:
            fail(MAILSINK, "no SMTP greeting after 20 s")
            show_tail(log, since=offset)
            raise StackError("mail sink not ready")
        time.sleep(0.2)


# --------------------------------------------------------------------------------------------
# services
# --------------------------------------------------------------------------------------------


def service_markers(svc: Service) -> list[str]:
    return ["-m", svc.module]


def service_pid(paths: StackPaths, svc: Service) -> int | None:
    return procs.running_pid(paths.pid_file(svc.name), service_markers(svc), cwd=paths.root)


def start_services(paths: StackPaths, names: tuple[str, ...] = SERVICE_NAMES) -> None:
    python = service_python(paths)
    wanted = [service(n) for n in names]
    available = installed_modules(python, [s.module for s in wanted])
    if not python.exists():
        warn("services", f"{python} not found: services skipped (create the repo venv and "
                         "install the services)")
    for svc in wanted:
        pid = service_pid(paths, svc)
        if pid is not None:
            ok(svc.name, f"already running (pid {pid})")
            continue
        if not available.get(svc.module):
            if python.exists():
                warn(svc.name, f"{svc.module} not installed in {python}, skipped")
            continue
        start_service(paths, svc, python)


def start_service(paths: StackPaths, svc: Service, python: Path) -> int:
    log = paths.log(svc.name)
    ready_file = paths.ready_file(svc.name)
    ready_file.unlink(missing_ok=True)
    offset = log.stat().st_size if log.exists() else 0
    proc = procs.spawn([str(python), "-m", svc.module], log=log, cwd=paths.root,
                       env=process_env(paths), pid_file=paths.pid_file(svc.name))
    what = f"GET {svc.health_url} → 200" if svc.health_url else "readiness"
    step(svc.name, f"started (pid {proc.pid}), waiting for {what}")
    progress = Progress(svc.name, what)

    def died() -> None:
        fail(svc.name, f"exited with code {proc.returncode}")
        show_tail(log, since=offset)
        paths.pid_file(svc.name).unlink(missing_ok=True)
        raise StackError(f"{svc.name} failed to start")

    with httpx.Client(timeout=2.0) as http:
        while True:
            if proc.poll() is not None:
                died()
            if ready_file.exists():
                break
            if svc.health_url:
                try:
                    if http.get(svc.health_url).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
            elif progress.elapsed >= SETTLE_SECONDS and not _traceback_since(log, offset):
                break
            if progress.elapsed > READY_TIMEOUT:
                fail(svc.name, f"not ready after {READY_TIMEOUT:.0f} s")
                show_tail(log, since=offset)
                raise StackError(f"{svc.name} not ready")
            progress.tick()
            time.sleep(0.25)
    if proc.poll() is not None:
        died()
    ok(svc.name, f"ready (pid {proc.pid}, {progress.elapsed:.1f} s)")
    return proc.pid


def _traceback_since(log: Path, offset: int) -> bool:
    try:
        with open(log, "rb") as fh:
            fh.seek(offset)
            return b"Traceback" in fh.read()
    except FileNotFoundError:
        return False


def stop_named(paths: StackPaths, name: str, pid: int | None) -> None:
    if pid is None:
        paths.pid_file(name).unlink(missing_ok=True)
        return
    outcome = procs.terminate(pid)
    paths.pid_file(name).unlink(missing_ok=True)
    paths.ready_file(name).unlink(missing_ok=True)
    if outcome == "killed":
        warn(name, f"did not stop within 15 s, killed (pid {pid})")
    else:
        ok(name, f"stopped (pid {pid})")
