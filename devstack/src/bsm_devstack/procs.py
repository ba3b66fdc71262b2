"""Background processes with pid files: start, identify, stop."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path


def pid_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie — a zombie leader whose other threads are
    still exiting counts as alive: until the last one is gone its files (a listening port) are
    still open. A killed service's leader turns zombie first; restarting it then found its port
    "in use by another process" (seen in a chaos run, reproduced in 14 of 20 kills of a
    40-thread process)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    state = _state(Path(f"/proc/{pid}/stat"))
    if state is None:
        return False
    if state not in _GONE:
        return True
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return False
    return any(_state(task / "stat") not in (*_GONE, None) for task in tasks)


_GONE = ("Z", "X")


def _state(stat_file: Path) -> str | None:
    """A process's or thread's state letter (None: it is gone)."""
    try:
        stat = stat_file.read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError:
        return "?"  # there, but not ours to read: alive
    # "pid (comm) S ...": comm may contain spaces/parens, the state follows the last ')'.
    return stat.rsplit(")", 1)[-1].split()[0]


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip().splitlines()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None


def write_pid(pid_file: Path, pid: int) -> None:
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = pid_file.with_suffix(".pid.tmp")
    tmp.write_text(f"{pid}\n")
    os.replace(tmp, pid_file)


def matches(pid: int, markers: Sequence[str], cwd: Path | None = None) -> bool:
    """True if ``pid``'s command line holds every marker (as a substring of some argument)
    and, if given, its working directory is ``cwd``."""
    args = cmdline(pid)
    if not args or not all(any(marker in arg for arg in args) for marker in markers):
        return False
    if cwd is not None:
        try:
            if Path(os.readlink(f"/proc/{pid}/cwd")) != cwd:
                return False
        except OSError:
            return False
    return True


def find_processes(markers: Sequence[str], cwd: Path | None = None) -> list[int]:
    """Live processes whose command line holds every marker (oldest first)."""
    found: list[int] = []
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        pid = int(entry.name)
        if pid_alive(pid) and matches(pid, markers, cwd):
            found.append(pid)
    return sorted(found)


def running_pid(pid_file: Path, markers: Sequence[str], cwd: Path | None = None,
                scan: bool = True) -> int | None:
    """The pid of our process: the one recorded in ``pid_file`` if it is alive and its command
    line holds every marker (so a recycled pid is not mistaken for ours). Removes stale pid
    files. With ``scan``, a matching process whose pid file was lost is found and adopted."""
    pid = read_pid(pid_file)
    if pid is not None and pid_alive(pid) and matches(pid, markers, cwd):
        return pid
    pid_file.unlink(missing_ok=True)
    if scan:
        # Only session leaders: the process we spawned, not children it may have forked.
        for candidate in find_processes(markers, cwd):
            try:
                if os.getsid(candidate) == candidate:
                    write_pid(pid_file, candidate)
                    return candidate
            except ProcessLookupError:
                continue
    return None


def spawn(args: Sequence[str], *, log: Path, cwd: Path, env: Mapping[str, str] | None = None,
          pid_file: Path | None = None) -> subprocess.Popen[bytes]:
    """Start ``args`` in its own session (so it and its children form one process group),
    stdout and stderr appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: "
                  f"{' '.join(args)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            list(args),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    if pid_file is not None:
        write_pid(pid_file, proc.pid)
    return proc


def terminate(pid: int, timeout: float = 15.0) -> str:
    """SIGTERM the process group of ``pid`` (the process itself if it leads no group), wait up
    to ``timeout`` s, then SIGKILL. Returns "stopped", "killed" or "gone"."""
    return terminate_all([pid], timeout)[pid]


def terminate_all(pids: Sequence[int], timeout: float = 15.0) -> dict[int, str]:
    """:func:`terminate` for several processes at once: all get SIGTERM together (the nodes of
    a Kafka cluster shut down while their quorum still stands), then each is waited for."""
    outcome = {pid: "gone" for pid in pids if not pid_alive(pid)}
    live = [pid for pid in pids if pid not in outcome]
    for pid in live:
        signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while live and time.monotonic() < deadline:
        for pid in list(live):
            if not pid_alive(pid) and not _group_alive(pid):
                outcome[pid] = "stopped"
                live.remove(pid)
        time.sleep(0.1)
    for pid in live:
        signal_group(pid, signal.SIGKILL)
        outcome[pid] = "killed"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(pid_alive(pid) for pid in live):
        time.sleep(0.1)
    return outcome


def signal_group(pid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to the process group ``pid`` leads (to ``pid`` alone if it leads none)."""
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        return
    try:
        if pgid == pid:
            os.killpg(pgid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _group_alive(pgid: int) -> bool:
    """True if a live (non-zombie) process is still in process group ``pgid``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        # fields: state ppid pgrp ...
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True
    return False


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def exclusive_lock(path: Path, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold an exclusive flock on ``path`` (one stack command at a time)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
