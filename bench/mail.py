"""``make bench-mail``: bsm's mail path beside Postfix, on the running stack (a benchmark, never
a timed test).

The same mails (≈ 1.5 KB, from a registered buyer's address to the seller's alias), sent by the
same clients (``--connections`` SMTP connections, each reused for its share of the mails), in
one run, each path ending at the stack's mail sink:

1. **Postfix** — a Postfix of the bench's own (``bench/postfix.py``: installed from Debian's
   packages when missing, its own configuration directory under ``.stack/bench/postfix``,
   loopback only, on port 12527 + ``BSM_STACK_PORT_OFFSET``) relaying every mail to the sink;
   a mail is done when Postfix logs ``status=sent``;
2. **bsm** — the alias service's mail door → alias → policy → delivery → the sink; a mail is
   done when its ``Delivered`` (or ``Bounced``) is on Kafka.

Both with the CPU every process spent (``/proc/<pid>/stat``; Postfix with all its children).
The last line reads ``mail path: bsm X msg/s, Postfix Y msg/s, ratio Z``. When Postfix cannot
be installed or started, the bench says why and still measures bsm (the ratio is then 0).

    .venv/bin/python bench/mail.py [--mails 1000] [--connections 8] [--pairs 50]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email.policy
import re
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import aiosmtplib

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import harness, postfix  # noqa: E402
from bench.figures import Phase, cpu_rows, mail_line, only  # noqa: E402
from bench.harness import OUTCOMES, ROOT, console  # noqa: E402
from bench.processes import CLOCK_TICKS, Meter, stack_processes  # noqa: E402
from bench.throughput import show  # noqa: E402
from bsm_devstack.chaos.content import Pair  # noqa: E402

POSTFIX_PORT = 12527  # plus BSM_STACK_PORT_OFFSET: next to the mail door (12525), sink (12526)

#: The body of every bench mail: a buyer's question of a realistic length (with the headers the
#: mail is ≈ 1.5 KB, the size the issue's Postfix figures were measured with).
BODY = (
    "Buenos días:\n\n"
    "Les escribo por el pedido que hice la semana pasada. En la página figura como enviado, "
    "pero el número de seguimiento no muestra ningún movimiento desde hace cuatro días y la "
    "fecha de entrega prevista ya ha pasado. ¿Podrían confirmarme si el paquete salió de "
    "verdad del almacén y, si es así, con qué transportista?\n\n"
    "También quería preguntar si es posible cambiar la dirección de entrega: durante las "
    "próximas dos semanas no estaré en casa por las mañanas y preferiría recibirlo en mi "
    "trabajo, en la misma ciudad. Si el cambio tiene algún coste adicional, díganmelo antes "
    "de hacerlo, por favor.\n\n"
    "Por último, una de las sillas del pedido anterior llegó con una pata rayada. No es "
    "grave, pero me gustaría saber si pueden enviarme una pieza de repuesto o si debo "
    "devolverla entera.\n\n"
    "Muchas gracias por su atención. Quedo a la espera de su respuesta.\n\n"
    "Un saludo.\n"
)


@dataclass(frozen=True)
class Mail:
    sender: str  # envelope sender and From: the buyer's registered address
    to: str  # the seller's alias
    raw: bytes


def compose(run: str, k: int, pair: Pair, to_alias: str, now: datetime) -> Mail:
    """Mail ``k`` of a run: from the pair's buyer to the seller's alias (pure)."""
    m = EmailMessage()
    m["From"], m["To"] = pair.buyer_email, to_alias
    m["Subject"] = f"Pedido {pair.order}: envío y cambio de dirección ({k})"
    m["Date"] = format_datetime(now)
    m["Message-ID"] = f"<{run}.{k}@{pair.buyer_email.rpartition('@')[2]}>"
    m.set_content(BODY)
    return Mail(pair.buyer_email, to_alias, m.as_bytes(policy=email.policy.SMTP))


def mails(run: str, pairs: Sequence[Pair], aliases: dict[int, tuple[str, str]], count: int,
          now: datetime, *, first: int = 0) -> list[Mail]:
    """``count`` mails spread over the pairs in turn (``aliases``: pair index → (buyer's,
    seller's) alias)."""
    return [compose(run, k, pairs[k % len(pairs)], aliases[pairs[k % len(pairs)].index][1], now)
            for k in range(first, first + count)]


QUEUED_AS = re.compile(r"queued as (\S+)")


@dataclass
class Sent:
    """What the clients got back: per mail its send time and the server's reply."""

    at: list[float]
    replies: list[str]
    refused: dict[str, int]
    start: float
    end: float


async def send_all(port: int, batch: Sequence[Mail], connections: int, *,
                   label: str) -> Sent:
    """Every mail of ``batch`` through ``connections`` SMTP connections to 127.0.0.1:port, each
    connection reused for its share (mail ``k`` on connection ``k % connections``). A refused
    mail is counted by its reply code; a broken connection is opened again."""
    at = [0.0] * len(batch)
    replies = [""] * len(batch)
    refused: dict[str, int] = {}
    progress = {"done": 0}

    async def client(c: int) -> None:
        smtp: aiosmtplib.SMTP | None = None
        try:
            for k in range(c, len(batch), connections):
                mail = batch[k]
                for attempt in range(3):
                    try:
                        if smtp is None or not smtp.is_connected:
                            smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=60,
                                                   start_tls=False, use_tls=False)
                            await smtp.connect()
                        at[k] = time.time()
                        _errors, reply = await smtp.sendmail(mail.sender, [mail.to], mail.raw)
                        replies[k] = reply
                        break
                    except aiosmtplib.SMTPResponseException as exc:
                        refused[str(exc.code)] = refused.get(str(exc.code), 0) + 1
                        if exc.code < 500 and attempt < 2:
                            await asyncio.sleep(0.5)
                            continue
                        break
                    except (aiosmtplib.SMTPException, OSError) as exc:
                        if smtp is not None:
                            smtp.close()
                        smtp = None
                        if attempt == 2:
                            refused[type(exc).__name__] = refused.get(type(exc).__name__, 0) + 1
                progress["done"] += 1
                harness.status(f"{label}: sent {progress['done']:,}/{len(batch):,}")
        finally:
            if smtp is not None and smtp.is_connected:
                with contextlib.suppress(Exception):
                    await smtp.quit()

    start = time.time()
    await asyncio.gather(*(client(c) for c in range(min(connections, len(batch)))))
    return Sent(at, replies, refused, start, time.time())


# --------------------------------------------------------------------------------------------
# Postfix
# --------------------------------------------------------------------------------------------

SENT_LINE = re.compile(rb"status=sent\b")
DELAY = re.compile(rb"\bdelay=([0-9.]+)")


def relayed(lines: Sequence[bytes]) -> list[float | None]:
    """The ``delay=`` (seconds) of every mail these log lines say Postfix relayed
    (``status=sent``); None where a line gives none."""
    out: list[float | None] = []
    for line in lines:
        if SENT_LINE.search(line):
            d = DELAY.search(line)
            out.append(float(d.group(1)) if d else None)
    return out


class PostfixLog:
    """Follows the instance's log: how many mails it relayed (``status=sent``), each one's
    delay (Postfix's own: arrival to the next hop's 250), and when the count last grew."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.sent = 0
        self.delays: list[float] = []
        self.last = 0.0
        self._rest = b""

    def poll(self) -> int:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read()
        except FileNotFoundError:
            return self.sent
        self.offset += len(chunk)
        lines = (self._rest + chunk).split(b"\n")
        self._rest = lines.pop()
        delays = relayed(lines)
        if delays:
            self.sent += len(delays)
            self.delays.extend(d for d in delays if d is not None)
            self.last = time.time()
        return self.sent

    async def wait(self, want: int, *, timeout: float, label: str) -> int:
        deadline = time.monotonic() + timeout
        while self.poll() < want and time.monotonic() < deadline:
            harness.status(f"{label}: relayed {self.sent:,}/{want:,}")
            await asyncio.sleep(0.02)
        harness.status("")
        return self.sent


async def postfix_phase(env: dict[str, str], roots: dict[str, int], warm: list[Mail],
                        batch: list[Mail], args: argparse.Namespace) -> Phase | str:
    """The Postfix phase, or why it could not run."""
    offset = int(env.get("BSM_STACK_PORT_OFFSET", "0") or 0)
    sink_port = int(env["BSM_SMTP_RELAY"].rpartition(":")[2])
    try:
        postfix.ensure_installed(say=lambda text: console.print(f"  {text}"))
        instance = postfix.Instance(ROOT / ".stack" / "bench" / "postfix", POSTFIX_PORT + offset,
                                    sink_port)
        instance.configure()
        instance.start()
    except (postfix.PostfixError, OSError, LookupError) as exc:
        return f"Postfix not measured: {exc}"
    try:
        pid = None
        for _ in range(100):
            pid = instance.master_pid
            if pid is not None:
                break
            await asyncio.sleep(0.1)
        if pid is None:
            return f"Postfix not measured: its master did not start (see {instance.log})"
        log = PostfixLog(instance.log)
        await send_all(instance.port, warm, args.connections, label="Postfix warm-up")
        if await log.wait(len(warm), timeout=120, label="Postfix warm-up") < len(warm):
            return (f"Postfix not measured: {len(warm) - log.sent} warm-up mails not relayed "
                    f"within 120 s (see {instance.log})")
        base = log.sent
        meter = Meter({**only(roots, "mail sink"), "postfix": pid})
        before, w0 = meter.start(), time.monotonic()
        sent = await send_all(instance.port, batch, args.connections, label="Postfix")
        await log.wait(base + len(batch), timeout=args.timeout, label="Postfix")
        after, wall = await meter.stop(), time.monotonic() - w0
        done = min(log.sent - base, len(batch))
        phase = Phase("Postfix", len(batch), done, sent.start, log.last if done else sent.start,
                      latencies=log.delays[base:])
        phase.cpu = cpu_rows(before, after, messages=max(done, 1), seconds=wall,
                             clock_ticks=CLOCK_TICKS)
        phase.peak_rss = meter.peak_rss
        phase.notes.append(f"{args.connections} client connections; accepted in "
                           f"{sent.end - sent.start:,.2f} s; latency is Postfix's own delay= "
                           "(arrival to the sink's 250)")
        if sent.refused:
            phase.notes.append(f"refused: {sent.refused}")
        return phase
    finally:
        instance.stop()


# --------------------------------------------------------------------------------------------
# bsm
# --------------------------------------------------------------------------------------------


def door_port(env: dict[str, str]) -> int:
    return int(env["BSM_SMTP_INBOUND"].rpartition(":")[2])


async def bsm_phase(env: dict[str, str], roots: dict[str, int], watch: harness.Watch,
                    warm: list[Mail], batch: list[Mail], args: argparse.Namespace) -> Phase:
    port = door_port(env)
    w = await send_all(port, warm, args.connections, label="bsm warm-up")
    warm_ids = [m.group(1) for r in w.replies if (m := QUEUED_AS.search(r))]
    await watch.wait(warm_ids, OUTCOMES, timeout=120, label="bsm warm-up")
    await harness.quiet(env)  # the record and the gateway done with the warm-up too
    meter = Meter(roots)
    before, w0 = meter.start(), time.monotonic()
    sent = await send_all(port, batch, args.connections, label="bsm")
    ids: dict[str, float] = {}
    for k, reply in enumerate(sent.replies):
        if m := QUEUED_AS.search(reply):
            ids[m.group(1)] = sent.at[k]
    done = await watch.wait(ids, OUTCOMES, timeout=args.timeout, label="bsm")
    after, wall = await meter.stop(), time.monotonic() - w0
    phase = Phase("bsm", len(batch), len(done), sent.start,
                  max(done.values(), default=sent.start),
                  latencies=[done[i] - ids[i] for i in done])
    phase.cpu = cpu_rows(before, after, messages=max(len(done), 1), seconds=wall,
                         clock_ticks=CLOCK_TICKS)
    phase.peak_rss = meter.peak_rss
    phase.notes.append(f"{args.connections} client connections; accepted at the door in "
                       f"{sent.end - sent.start:,.2f} s; latency from DATA to Delivered")
    if sent.refused:
        phase.notes.append(f"refused at the door: {sent.refused}")
    bounced = watch.bounced(done)
    if bounced:
        phase.notes.append(f"bounced: {bounced}")
    return phase


async def main(args: argparse.Namespace) -> int:
    env = harness.stack_env()
    roots = stack_processes(ROOT)
    run = "bench" + uuid.uuid4().hex[:6]
    harness.intro(f"[bold]bench-mail {run}[/bold] on the stack at {env['BSM_SMTP_INBOUND']}: "
                  f"{args.mails:,} mails, {args.connections} connections, sink "
                  f"{env['BSM_SMTP_RELAY']}")
    async with harness.session(env, run, args.pairs) as bsm:
        now = datetime.now(UTC)
        warm_n = max(min(args.mails // 10, 100), args.connections)
        warm = mails(run, bsm.pairs, bsm.aliases, warm_n, now)
        batch = mails(run, bsm.pairs, bsm.aliases, args.mails, now, first=warm_n)
        console.print(f"  {len(batch[0].raw):,} bytes per mail")
        phases: list[Phase] = []
        # On a quiet stack: Postfix must not share the cores with the stack's earlier work
        # (a record still catching up slowed it by half in one run).
        await harness.quiet(env)
        pf = await postfix_phase(env, roots, warm, batch, args)
        if isinstance(pf, str):
            console.print(f"[red]{pf}[/red]")
        else:
            phases.append(pf)
            console.print(f"  Postfix: {pf.rate:,.0f} msg/s")
        ours = await bsm_phase(env, roots, bsm.watch, warm, batch, args)
        phases.append(ours)
        console.print(f"  bsm: {ours.rate:,.0f} msg/s")
    show(phases)
    await harness.closing_notes(env, phases)
    postfix_rate = 0.0 if isinstance(pf, str) else pf.rate
    if isinstance(pf, str):
        console.print(f"[red]{pf}[/red] (ratio 0: nothing to compare with)")
    console.print(f"ratio: bsm / Postfix {ours.rate / postfix_rate if postfix_rate else 0:.3f} "
                  "(target ≥ 1.0)")
    print(mail_line(ours.rate, postfix_rate))
    return 0 if all(p.complete for p in phases) and not isinstance(pf, str) else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mails", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=8,
                        help="concurrent SMTP client connections (the same for both)")
    parser.add_argument("--pairs", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="longest wait for one phase's mails")
    sys.exit(asyncio.run(main(parser.parse_args())))
