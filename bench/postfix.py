"""A Postfix instance of the mail benchmark's own: installed from Debian's packages when
missing, configured under ``.stack/bench/postfix`` (its own ``main.cf``, ``master.cf``, queue and
log), listening on loopback only, on a port of its own, relaying everything to one next hop (the
sink the bench starts). The machine's own Postfix, if any, is left alone.

Needs root (Postfix's master runs as root and drops to ``postfix``), as the local stack does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

POSTFIX = Path("/usr/sbin/postfix")

MAIN_CF = """\
# The bench's Postfix (bench/postfix.py): loopback only, relays everything to {relay}.
compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix-bench.localhost
mydomain = localhost
myorigin = $myhostname
mydestination =
local_recipient_maps =
local_transport = error:5.1.1 no local delivery in the benchmark
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions = permit_mynetworks, reject
relayhost = {relay}
smtp_dns_support_level = disabled
smtp_tls_security_level = none
smtpd_tls_security_level = none
biff = no
append_dot_mydomain = no
maillog_file = {log}
maillog_file_prefixes = {base}
message_size_limit = 26214400
"""

#: Postfix's standard services, none chrooted; smtpd only on the bench's loopback port.
MASTER_CF = """\
# service type  private unpriv  chroot  wakeup  maxproc command
{listen} inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def render(base: Path, port: int, relay_port: int) -> dict[str, str]:
    """The configuration files (name → text) of an instance under ``base``: smtpd on
    ``127.0.0.1:port`` only, everything relayed to ``127.0.0.1:relay_port``."""
    main = MAIN_CF.format(queue=base / "queue", data=base / "data",
                          relay=f"[127.0.0.1]:{relay_port}", log=base / "postfix.log", base=base)
    return {"main.cf": main, "master.cf": MASTER_CF.format(listen=f"127.0.0.1:{port}")}


class PostfixError(RuntimeError):
    pass


def ensure_installed(say=print) -> None:  # noqa: ANN001
    """``apt-get install postfix`` when it is missing, without configuring or starting the
    machine's own instance (debconf: "No configuration")."""
    if POSTFIX.exists():
        return
    if os.geteuid() != 0:
        raise PostfixError("Postfix is not installed and this is not root: "
                           "apt-get install -y postfix, then run the bench again")
    say("installing Postfix from Debian's packages (apt-get install -y postfix)…")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["debconf-set-selections"], input=b"postfix postfix/main_mailer_type "
                   b"select No configuration\n", check=True, env=env)
    install = ["apt-get", "install", "-y", "--no-install-recommends", "postfix"]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=False)
        result = subprocess.run(install, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise PostfixError(f"apt-get install postfix failed:\n{result.stderr[-2000:]}")


class Instance:
    """The bench's Postfix under ``base``: ``smtpd`` on ``127.0.0.1:port``, relaying to
    ``127.0.0.1:relay_port``."""

    def __init__(self, base: Path, port: int, relay_port: int) -> None:
        self.base, self.port, self.relay_port = base.resolve(), port, relay_port
        self.conf = self.base / "conf"
        self.queue = self.base / "queue"
        self.log = self.base / "postfix.log"

    def _postfix(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([str(POSTFIX), "-c", str(self.conf), *args],
                                capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            raise PostfixError(f"postfix {' '.join(args)}: {result.stderr or result.stdout}")
        return result

    def configure(self) -> None:
        """A fresh configuration and an empty queue (a previous run's leftovers removed)."""
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)
        for d in (self.conf, self.queue, self.base / "data"):
            d.mkdir(parents=True, exist_ok=True)
        for name, text in render(self.base, self.port, self.relay_port).items():
            (self.conf / name).write_text(text)
        shutil.chown(self.base / "data", "postfix", "postfix")
        self._postfix("set-permissions")
        self._postfix("check")

    def start(self) -> None:
        self._postfix("start")

    @property
    def master_pid(self) -> int | None:
        try:
            return int((self.queue / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def queued(self) -> int:
        """Messages still in the queue (files under its queue folders)."""
        total = 0
        for name in ("incoming", "active", "deferred", "maildrop", "hold"):
            for _, _, files in os.walk(self.queue / name):
                total += len(files)
        return total

    def stop(self) -> None:
        if (self.conf / "main.cf").exists() and self.master_pid is not None:
            self._postfix("stop", check=False)
