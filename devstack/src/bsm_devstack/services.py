"""The bsm services (one or more instances each) and the mail sink as background processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bsm_devstack import postgres, procs
from bsm_devstack.envfile import read_env_file
from bsm_devstack.paths import HOST, StackPaths
from bsm_devstack.topology import SERVICE_NAMES, Instance, Topology
from bsm_devstack.ui import Progress, StackError, fail, file_size, ok, show_tail, step, warn

MAILSINK = "mailsink"

READY_TIMEOUT = 60.0
SETTLE_SECONDS = 2.0

__all__ = ["MAILSINK", "SERVICE_NAMES"]


def module(service: str) -> str:
    return f"bsm_{service}"


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


def process_env(paths: StackPaths, instance: Instance | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(read_env_file(paths.env_file))
    env.update(read_env_file(paths.secrets_file))
    if instance is not None:
        env.update(instance.env())
        if "BSM_DATABASE_URL" in env:
            env["BSM_DATABASE_URL"] = postgres.socket_url(paths, env["BSM_DATABASE_URL"])
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


def start_mailsink(paths: StackPaths, topology: Topology) -> None:
    port = topology.smtp_relay_port
    pid = mailsink_pid(paths)
    if pid is not None:
        ok(MAILSINK, f"already running (pid {pid})")
        return
    if procs.port_open(HOST, port):
        raise StackError(f"mail sink: port {HOST}:{port} is in use by another "
                         "process (not started by this stack)")
    log = paths.log(MAILSINK)
    offset = file_size(log)
    cmd = [str(mailsink_python(paths)), "-m", "bsm_devstack.mailsink", f"--host={HOST}",
           f"--port={port}", f"--dir={paths.mailsink}"]
    proc = procs.spawn(cmd, log=log, cwd=paths.root, env=process_env(paths),
                       pid_file=paths.pid_file(MAILSINK))
    step(MAILSINK, f"started (pid {proc.pid}), waiting for SMTP on {HOST}:{port}")
    deadline = time.monotonic() + 20
    while True:
        if proc.poll() is not None:
            fail(MAILSINK, f"exited with code {proc.returncode}")
            show_tail(log, since=offset)
            paths.pid_file(MAILSINK).unlink(missing_ok=True)
            raise StackError("mail sink failed to start")
        if _smtp_ready(HOST, port):
            ok(MAILSINK, f"ready on {HOST}:{port} → {paths.mailsink}")
            return
        if time.monotonic() > deadline:
            fail(MAILSINK, "no SMTP greeting after 20 s")
            show_tail(log, since=offset)
            raise StackError("mail sink not ready")
        time.sleep(0.2)


# --------------------------------------------------------------------------------------------
# service instances
# --------------------------------------------------------------------------------------------


def instance_markers(instance: Instance) -> list[str]:
    """Each instance runs as ``python -X bsm-instance=<service>-<k> -m bsm_<service>``: the
    ``-X`` option (ignored by the program, kept by the kernel's command line) tells the
    instances of one service apart when their pid files are lost."""
    return ["-m", module(instance.service), instance.marker]


def instance_pid(paths: StackPaths, instance: Instance) -> int | None:
    return procs.running_pid(paths.pid_file(instance.name), instance_markers(instance),
                             cwd=paths.root)


def stray_instances(paths: StackPaths, topology: Topology) -> list[tuple[str, int]]:
    """Instances running in this checkout that ``topology`` does not have (a scale-down, or
    processes whose pid files were lost): ``(marker, pid)``."""
    wanted = {i.marker for i in topology.instances()}
    found: list[tuple[str, int]] = []
    for pid in procs.find_processes(["-X", "bsm-instance="], cwd=paths.root):
        marker = next((a for a in procs.cmdline(pid) if a.startswith("bsm-instance=")), None)
        try:
            leader = os.getsid(pid) == pid
        except ProcessLookupError:
            continue
        if marker is not None and marker not in wanted and leader:
            found.append((marker, pid))
    return found


def start_services(paths: StackPaths, topology: Topology,
                   names: tuple[str, ...] = SERVICE_NAMES) -> None:
    python = service_python(paths)
    available = installed_modules(python, [module(n) for n in names])
    if not python.exists():
        warn("services", f"{python} not found: services skipped (create the repo venv and "
                         "install the services)")
    for marker, pid in stray_instances(paths, topology):
        name = marker.removeprefix("bsm-instance=")
        if name.rsplit("-", 1)[0] in names:
            step(name, f"not in this stack's scale ({topology.describe()}): stopping")
            procs.terminate(pid)
            ok(name, f"stopped (pid {pid})")
    for name in names:
        for inst in topology.instances(name):
            pid = instance_pid(paths, inst)
            if pid is not None:
                ok(inst.name, f"already running (pid {pid}) {inst.address}".rstrip(" -"))
                continue
            if not available.get(module(name)):
                if python.exists():
                    warn(inst.name, f"{module(name)} not installed in {python}, skipped")
                continue
            start_instance(paths, inst, python)


def start_instance(paths: StackPaths, inst: Instance, python: Path, *,
                   quiet: bool = False) -> int:
    """Start one instance and wait until it is ready (HTTP health, or the ready file the
    runtime writes holding this process's pid, or a settle time without a traceback)."""
    for port in (inst.port, inst.prometheus_port):
        if port is not None and procs.port_open(HOST, port):
            raise StackError(f"{inst.name}: port {HOST}:{port} is in use by another process "
                             "(not started by this stack)")
    log = paths.log(inst.name)
    ready_file = paths.ready_file(inst.service)  # the runtime names it after the service
    offset = file_size(log)
    proc = procs.spawn([str(python), "-X", inst.marker, "-m", module(inst.service)], log=log,
                       cwd=paths.root, env=process_env(paths, inst),
                       pid_file=paths.pid_file(inst.name))
    what = f"GET {inst.health_url} → 200" if inst.health_url else "readiness"
    if not quiet:
        step(inst.name, f"started (pid {proc.pid}), waiting for {what}")
    progress = Progress(inst.name, what) if not quiet else None
    started = time.monotonic()

    def died() -> None:
        fail(inst.name, f"exited with code {proc.returncode}")
        show_tail(log, since=offset)
        paths.pid_file(inst.name).unlink(missing_ok=True)
        raise StackError(f"{inst.name} failed to start")

    with httpx.Client(timeout=2.0) as http:
        while True:
            elapsed = time.monotonic() - started
            if proc.poll() is not None:
                died()
            if _ready_file_names(ready_file, proc.pid):
                break
            if inst.health_url:
                try:
                    if http.get(inst.health_url).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
            elif elapsed >= SETTLE_SECONDS and not _traceback_since(log, offset):
                break
            if elapsed > READY_TIMEOUT:
                fail(inst.name, f"not ready after {READY_TIMEOUT:.0f} s")
                show_tail(log, since=offset)
                raise StackError(f"{inst.name} not ready")
            if progress is not None:
                progress.tick()
            time.sleep(0.25)
    if proc.poll() is not None:
        died()
    if not quiet:
        ok(inst.name, f"ready (pid {proc.pid}, {time.monotonic() - started:.1f} s)"
                      + (f" {inst.address}" if inst.port is not None else ""))
    return proc.pid


def _ready_file_names(path: Path, pid: int) -> bool:
    """The runtime writes ``run/<service>.ready`` with its pid once it consumes and publishes;
    all instances of a service share the name, so only this pid in it counts."""
    try:
        return path.read_text().strip() == str(pid)
    except OSError:
        return False


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
    if outcome == "killed":
        warn(name, f"did not stop within 15 s, killed (pid {pid})")
    else:
        ok(name, f"stopped (pid {pid})")


def stop_instances(paths: StackPaths, topology: Topology,
                   names: tuple[str, ...] = SERVICE_NAMES) -> None:
    """Stop every instance of ``names`` (in reverse order), strays included."""
    for name in reversed(names):
        for inst in reversed(topology.instances(name)):
            pid = instance_pid(paths, inst)
            if pid is None:
                step(inst.name, "not running")
            stop_named(paths, inst.name, pid)
        paths.ready_file(name).unlink(missing_ok=True)
    for marker, pid in stray_instances(paths, topology):
        if marker.removeprefix("bsm-instance=").rsplit("-", 1)[0] in names:
            stop_named(paths, marker.removeprefix("bsm-instance="), pid)
