"""``bsm``: the command line for people who run or investigate bsm.

``bsm dispute ORDER_ID`` prints an order's timeline from the record (the metrics service's
``GET /v1/orders/{order_id}/timeline``): every event in time order, with who produced it and
whether its signature verified. The metrics URL comes from ``BSM_METRICS_URL`` or, in a
checkout with the local stack up, from ``.stack/env``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="bsm: buyer–seller messaging tools.", no_args_is_help=True)
console = Console()


@app.callback()
def main() -> None:
    """bsm: buyer–seller messaging tools."""


def _stack_env() -> dict[str, str]:
    here = Path.cwd()
    for folder in (here, *here.parents):
        env = folder / ".stack" / "env"
        if env.is_file():
            values = {}
            for line in env.read_text().splitlines():
                key, sep, value = line.partition("=")
                if sep and not line.lstrip().startswith("#"):
                    values[key.strip()] = value.strip().strip("'\"")
            return values
    return {}


def metrics_url() -> str:
    return os.environ.get("BSM_METRICS_URL") or _stack_env().get(
        "BSM_METRICS_URL", "http://127.0.0.1:18081"
    )


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
        return f"bounced at {data.get('stage')}: {data.get('reason_code')} — {data.get('explanation')}"
    if kind == "Reported":
        return f"reported: {data.get('reason')}"
    if kind == "ResponseNotNeeded":
        return "marked: no response needed"
    return ""


@app.command()
def dispute(
    order_id: Annotated[str, typer.Argument(help="The order to review.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw timeline JSON.")] = False,
) -> None:
    """Print every event about ORDER_ID in time order, with its verification status."""
    url = f"{metrics_url().rstrip('/')}/v1/orders/{order_id}/timeline"
    try:
        response = httpx.get(url, timeout=10)
    except httpx.HTTPError as exc:
        console.print(f"[red]Cannot reach the metrics service at {metrics_url()}:[/red] {exc}")
        console.print("Is the stack up? Try `make up` (or set BSM_METRICS_URL).")
        raise typer.Exit(2) from None
    if response.status_code == 404:
        console.print(f"[yellow]{response.json().get('detail', 'Order not found.')}[/yellow]")
        raise typer.Exit(1)
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
        sig = "[green]verified[/green]" if entry["verified"] else (
            "[red]UNVERIFIED[/red]" if entry["signed"] else "[dim]unsigned (external)[/dim]"
        )
        table.add_row(
            str(i), entry["occurred_at"].replace("+00:00", "Z"), entry["type"],
            entry["producer"], sig, summarize(entry),
        )
    console.print(table)


if __name__ == "__main__":
    app()
