"""The stack's process checks (bsm_devstack.procs) against real processes: a killed service
counts as gone only once its ports are free, so the chaos nemesis can start it again at once."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from bsm_devstack import procs

#: A service-like process: a listening socket and busy threads (a killed multi-threaded
#: process's leader turns zombie first, while its other threads, which share its files, exit).
CHILD = r"""
import socket, sys, threading, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
print(s.getsockname()[1], flush=True)
for _ in range(16):
    threading.Thread(target=lambda: [sum(range(10_000)) for _ in iter(int, 1)],
                     daemon=True).start()
time.sleep(60)
"""


def test_a_killed_multithreaded_process_is_alive_until_its_listening_port_is_closed():
    for _ in range(8):  # the old check failed 14 kills in 20 this way
        child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE,
                                 start_new_session=True)
        try:
            port = int(child.stdout.readline())  # type: ignore[union-attr]
            time.sleep(0.3)  # the threads running
            os.killpg(child.pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while procs.pid_alive(child.pid) and time.monotonic() < deadline:
                time.sleep(0.001)
            assert not procs.pid_alive(child.pid)
            with socket.socket() as probe:
                assert probe.connect_ex(("127.0.0.1", port)) != 0, "port still open"
        finally:
            child.kill()
            child.wait()
