"""``bsm``: the command line for people who run or investigate bsm.

``bsm erase PARTY_ID`` erases a party's personal data (through the gateway, as an operator).
``bsm dispute ORDER_ID`` prints an order's timeline from the record (the metrics service's
``GET /v1/orders/{order_id}/timeline``): every event in time order, with who produced it and
whether its signature verified. The metrics URL comes from ``BSM_METRICS_URL`` or, in a
checkout with the local stack up, from ``.stack/env``; the service credential the metrics
service requires from ``BSM_METRICS_TOKEN`` or ``.stack/secrets.env``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

from urllib.parse import quote

import httpx
import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="bsm: buyer–seller messaging tools.", no_args_is_help=True)
# Piped output (CI logs, `make demo` captured) gets a wide, fixed width instead of 80 columns.
console = Console() if sys.stdout.isatty() else Console(width=150)


@app.callback()
def main() -> None:
    """bsm: buyer–seller messaging tools."""


def _stack_env(name: str = "env") -> dict[str, str]:
    """``.stack/env`` (or ``.stack/secrets.env``) of the checkout the command runs in."""
    here = Path.cwd()
    for folder in (here, *here.parents):
        env = folder / ".stack" / name
        if env.is_file():
            values = {}
            for line in env.read_text().splitlines():
                key, sep, value = line.partition("=")
                if sep and not line.lstrip().startswith("#"):
                    values[key.strip()] = value.strip().strip("'\"")
            return values
    return {}


def _address(key: str) -> str:
    """``key`` from the environment or the checkout's ``.stack/env``; no guessed default (the
    local stack's ports follow ``BSM_STACK_PORT_OFFSET``, so a fixed port may be someone
    else's stack)."""
    value = os.environ.get(key) or _stack_env().get(key)
    if not value:
        console.print(f"[red]{key} is not set and no .stack/env was found[/red] (from "
                      f"{Path.cwd()} upwards): run `make up` in the checkout, or set {key}.")
        raise typer.Exit(2)
    return value


def metrics_url() -> str:
    return _address("BSM_METRICS_URL")


def metrics_headers() -> dict[str, str]:
    """The metrics service's service credential (``BSM_METRICS_TOKEN``, from the environment
    or the local stack's ``.stack/secrets.env``) as a bearer token."""
    token = os.environ.get("BSM_METRICS_TOKEN") or _stack_env("secrets.env").get(
        "BSM_METRICS_TOKEN")
    if not token:
        console.print("[red]BSM_METRICS_TOKEN is not set and no .stack/secrets.env holds it[/red]"
                      ": the metrics service answers services only. Set it (deploy/README.md "
                      "says where it is provisioned), or run `make up` in the checkout.")
        raise typer.Exit(2)
    return {"Authorization": f"Bearer {token}"}


def summarize(entry: dict[str, Any]) -> str:
    """One line saying what an event means, for people."""
    data = entry["event"].get("data", {})
    kind = entry["type"]
    if kind == "OrderPlaced":
        return f"order placed by {data.get('buyer_id')} with {data.get('seller_id')}"
    if kind == "OrderStatusChanged":
        return f"status → {data.get('status')}"
    if kind == "MessageSubmitted":
        return f"{data.get('channel')} message {data.get('message_id')}: {data.get('subject')!r}"
    if kind == "MessageAddressed":
        return f"{data.get('sender_alias')} → {data.get('recipient_alias')}"
    if kind == "PolicyChecked":
        codes = ", ".join(f"{v['rule']}/{v['code']}" for v in data.get("violations", []))
        return f"{data.get('verdict')}" + (f" ({codes})" if codes else "")
    if kind == "Delivered":
        return f"delivered via {', '.join(data.get('channels', []))}"
    if kind == "Bounced":
        later = " (after delivery, reported by the provider)" if data.get("after_delivery") else ""
        return (f"bounced at {data.get('stage')}{later}: {data.get('reason_code')} — "
                f"{data.get('explanation')}")
    if kind == "BounceReportReceived":
        return (f"bounce report: {data.get('action')} {data.get('status')} from "
                f"{data.get('reporting_mta') or 'an unknown server'}")
    if kind == "Reported":
        return f"reported: {data.get('reason')}"
    if kind == "ResponseNotNeeded":
        return "marked: no response needed"
    return ""


@app.command()
def dispute(
    order_id: Annotated[str, typer.Argument(help="The order to review.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw timeline JSON.")] = False,
    as_of: Annotated[str | None, typer.Option(
        "--as-of", help="Show the order as it stood at this instant (RFC 3339, e.g. "
        "2026-11-01T10:00:00Z).")] = None,
) -> None:
    """Print every event about ORDER_ID in time order, each signature re-checked; forged or
    altered entries are flagged."""
    url = f"{metrics_url().rstrip('/')}/v1/orders/{quote(order_id, safe='')}/timeline"
    headers = metrics_headers()
    try:
        response = httpx.get(url, params={"as_of": as_of} if as_of else None, timeout=10,
                             headers=headers)
    except httpx.HTTPError as exc:
        console.print(f"[red]Cannot reach the metrics service at {metrics_url()}:[/red] {exc}")
        console.print("Is the stack up? Try `make up` (or set BSM_METRICS_URL).")
        raise typer.Exit(2) from None
    if response.status_code == 422:
        console.print(f"[red]{response.json().get('detail', 'Invalid request.')}[/red]")
        raise typer.Exit(2)
    if response.status_code == 404:
        console.print(f"[yellow]{response.json().get('detail', 'Order not found.')}[/yellow]")
        raise typer.Exit(1)
    if response.status_code == 401:
        console.print("[red]The metrics service refused the credential[/red]: BSM_METRICS_TOKEN "
                      "is not the one it was given.")
        raise typer.Exit(2)
    if response.status_code != 200:
        console.print(f"[red]The metrics service answered {response.status_code}:[/red] "
                      f"{response.text[:500]}")
        raise typer.Exit(2)
    timeline = response.json()
    if as_json:
        console.print_json(json.dumps(timeline))
        return
    table = Table(title=f"Order {order_id}: {len(timeline['events'])} events", expand=True)
    table.add_column("#", justify="right")
    table.add_column("occurred at (UTC)", no_wrap=True)
    table.add_column("event")
    table.add_column("producer")
    table.add_column("signature")
    table.add_column("what happened")
    for i, entry in enumerate(timeline["events"], 1):
        if entry.get("flag"):
            sig = f"[bold red]{entry['flag'].upper()}[/bold red]"
        elif entry["signature_valid"]:
            sig = "[green]verified[/green]"
        elif entry["signature_valid"] is None:
            sig = "[dim]unsigned (external)[/dim]"
        else:
            sig = "[bold red]INVALID[/bold red]"
        table.add_row(
            str(i), entry["occurred_at"].replace("+00:00", "Z"), entry["type"],
            entry["producer"], sig, summarize(entry),
        )
    console.print(table)
    if timeline.get("erased_parties"):
        console.print(f"[yellow]Erased parties:[/yellow] {', '.join(timeline['erased_parties'])} "
                      "— their personal data in these events is shredded (unreadable); the "
                      "events and their signatures are intact.")


def gateway_url() -> str:
    return _address("BSM_GATEWAY_URL")


def _gateway(method: str, path: str, party_id: str, role: str, **kwargs: Any) -> httpx.Response:
    """One call to the gateway as ``party_id`` in ``role`` (a token signed with the local
    stack's key); an unreachable gateway or a missing key ends the command with what to do."""
    from bsm_gateway.auth import issue_token, token_key_from_environment

    try:
        key = token_key_from_environment()
    except LookupError as exc:
        console.print(f"[red]{exc}.[/red] Is the stack up (`make up`)?")
        raise typer.Exit(2) from None
    try:
        return httpx.request(method, f"{gateway_url().rstrip('/')}{path}", timeout=15,
                             headers={"Authorization": f"Bearer {issue_token(key, party_id, role)}"},
                             **kwargs)
    except httpx.HTTPError as exc:
        console.print(f"[red]Cannot reach the gateway at {gateway_url()}:[/red] {exc}")
        raise typer.Exit(2) from None


@app.command()
def erase(
    party_id: Annotated[str, typer.Argument(help="The buyer or seller whose data to erase.")],
    operator: Annotated[str, typer.Option(help="Your operator id (recorded in the event).")],
    reason: Annotated[str, typer.Option(help="Why, e.g. the data-subject request id.")] = "",
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Erase PARTY_ID's personal data: its key is destroyed (crypto-shredding), so its names
    and addresses in every event become unreadable; the record and replays stay intact.
    Cannot be undone."""
    if not yes:
        typer.confirm(f"Erase the personal data of {party_id}? This cannot be undone.", abort=True)
    response = _gateway("POST", f"/v1/parties/{quote(party_id, safe='')}/erasure", operator,
                        "operator",
                        json={"reason": reason})
    if response.status_code != 202:
        body = response.json() if response.headers.get("content-type", "").startswith(
            "application/json") else {}
        console.print(f"[red]Erasure refused ({response.status_code}):[/red] "
                      f"{body.get('detail', response.text[:300])}")
        raise typer.Exit(1)
    body = response.json()
    if body["status"] == "already_erased":
        console.print(f"[yellow]{party_id} was already erased at {body['erased_at']}.[/yellow]")
        return
    console.print(f"[green]Erased {party_id}[/green] at {body['erased_at']}: its key is "
                  f"destroyed; PartyErased {body['event_id']} is on the record.")


@app.command()
def replay(
    projection: Annotated[str, typer.Argument(
        help="Which projection to rebuild: `metrics` (response times, quota, reports).")] = "metrics",
    verify: Annotated[bool, typer.Option(
        help="Check every event's signature, as the live service does.")] = True,
) -> None:
    """Rebuild a projection from the start of the topics into fresh tables, show progress,
    print the rate and whether the result equals the live projection (G2)."""
    if projection != "metrics":
        console.print(f"[red]Unknown projection {projection!r}.[/red] Known: metrics.")
        raise typer.Exit(2)
    try:
        from bsm_metrics.replay import replay as run_replay
    except ImportError:
        console.print("[red]The metrics service package (bsm-metrics) is not installed here.[/red]")
        raise typer.Exit(2) from None
    import asyncio

    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from bsm_shared.contract.signing import Verifier

    env = {**_stack_env(), **os.environ}
    missing = [k for k in ("KAFKA_BOOTSTRAP_SERVERS", "BSM_DATABASE_URL") if not env.get(k)]
    if missing:
        console.print(f"[red]Missing {', '.join(missing)}[/red]: run from a checkout with the "
                      "stack up (`make up`) or set them in the environment.")
        raise typer.Exit(2)
    verifier = Verifier.from_b64(json.loads(env.get("BSM_TRUSTED_KEYS") or "{}"))
    with Progress(TextColumn("replaying"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,} events"),
                  TimeRemainingColumn(), console=console) as bar:
        task = bar.add_task("replay", total=0)
        result = asyncio.run(run_replay(
            bootstrap=env["KAFKA_BOOTSTRAP_SERVERS"], database_url=env["BSM_DATABASE_URL"],
            verifier=verifier, prefix=env.get("BSM_TOPIC_PREFIX", ""), verify=verify,
            progress=lambda done, total: bar.update(task, completed=done, total=total)))
    console.print(
        f"{result.events:,} events in {result.seconds:.2f}s = [bold]{result.rate:,.0f} events/s[/bold]"
        f" ({result.applied:,} applied, {result.untrusted:,} untrusted and ignored); "
        f"rebuilt into schema {result.schema}")
    if result.equal:
        console.print("[green]The rebuilt projection equals the live one.[/green]")
    else:
        for table, (only_live, only_replay) in result.differences.items():
            console.print(f"[yellow]{table}: {only_live} rows only live, {only_replay} only in "
                          "the replay[/yellow] (the live service may still be catching up).")
        raise typer.Exit(1)


from bsm_cli.token import token as token_command  # noqa: E402 - `bsm token` (gateway)

app.command("token")(token_command)


@app.command()
def orders(
    buyer_alias: Annotated[str, typer.Argument(help="The alias the buyer writes from.")],
    seller: Annotated[str, typer.Option("--seller", help="Your seller id (the token's party).")],
) -> None:
    """List a buyer's orders with you, found by the buyer's alias (A5), through the gateway."""
    response = _gateway("GET", "/v1/orders", seller, "seller", params={"buyer_alias": buyer_alias})
    if response.status_code != 200:
        console.print(f"[yellow]{response.json().get('detail', response.text)}[/yellow]")
        raise typer.Exit(1)
    body = response.json()
    table = Table(title=f"Orders of the buyer writing from {body['buyer_alias']}")
    for column in ("order", "status", "placed at (UTC)"):
        table.add_column(column)
    for o in body["orders"]:
        table.add_row(o["order_id"], o["status"], o["placed_at"] or "")
    console.print(table)


if __name__ == "__main__":
    app()
