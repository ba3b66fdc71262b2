"""``python -m bsm_devstack`` / ``bsm-stack``: the local development stack CLI."""

from __future__ import annotations

import logging
import sys

import typer

from bsm_devstack import stack
from bsm_devstack.paths import RepoNotFound, StackPaths
from bsm_devstack.ui import StackError, err_console

app = typer.Typer(
    name="bsm-stack",
    help="bsm local development stack: Kafka, PostgreSQL, mail sink, keys and the services as "
         "local processes under <repo>/.stack/.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _paths() -> StackPaths:
    try:
        return StackPaths.discover()
    except RepoNotFound as exc:
        err_console.print(str(exc), markup=False, style="red")
        raise typer.Exit(2) from None


def _quiet_libraries() -> None:
    # Connection attempts while polling a starting broker log errors; the CLI reports itself.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL + 1)
    logging.getLogger("asyncio").setLevel(logging.CRITICAL + 1)


def _run(fn, *args) -> None:
    _quiet_libraries()
    try:
        fn(*args)
    except StackError as exc:
        err_console.print(f"\n✗ {exc}", markup=False, style="bold red")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        err_console.print("\ninterrupted", style="yellow")
        raise typer.Exit(130) from None


@app.command()
def up() -> None:
    """Start (or complete) the stack: Kafka, PostgreSQL, topics, mail sink, services.
    Idempotent: whatever already runs is left alone."""
    _run(stack.up, _paths())


@app.command()
def down() -> None:
    """Stop everything `up` started, in reverse order."""
    _run(stack.down, _paths())


@app.command()
def status() -> None:
    """Show each component's pid, state and address (always exits 0)."""
    try:
        _quiet_libraries()
        stack.status(_paths())
    except typer.Exit:
        raise typer.Exit(0) from None
    except Exception as exc:  # status never fails
        err_console.print(f"status: {exc}", markup=False, style="red")


@app.command("restart-service")
def restart_service(name: str = typer.Argument(..., help="alias, policy, delivery, metrics, "
                                                          "gateway or mailsink")) -> None:
    """Stop and start one service (with a fresh environment from .stack/env)."""
    _run(stack.restart_service, _paths(), name)


@app.command()
def env() -> None:
    """Print .stack/env (shell syntax: `eval "$(python -m bsm_devstack env)"` after `set -a`)."""
    paths = _paths()
    if not paths.env_file.exists():
        err_console.print(f"{paths.env_file} does not exist yet: run `python -m bsm_devstack up`",
                          markup=False, style="red")
        raise typer.Exit(1)
    sys.stdout.write(f"# {paths.env_file}\n")
    sys.stdout.write(paths.env_file.read_text(encoding="utf-8"))
    sys.stdout.flush()


@app.command()
def keys() -> None:
    """Create the dev keys if missing and write .stack/compose.env (secrets plus the trusted
    public keys) for `docker compose`; nothing else is started."""
    from bsm_devstack.keys import ensure_secrets, trusted_keys_json

    paths = _paths()
    secrets, created = ensure_secrets(paths.secrets_file)
    compose = paths.secrets_file.with_name("compose.env")
    values = {**secrets, "BSM_TRUSTED_KEYS": trusted_keys_json(secrets)}
    # docker compose reads env files literally: no shell quoting around values.
    compose.write_text("".join(f"{k}={v}\n" for k, v in values.items()), encoding="utf-8")
    compose.chmod(0o600)
    sys.stdout.write(f"{len(created)} key(s) created; wrote {compose}\n")


def main() -> None:
    app(prog_name="python -m bsm_devstack")


if __name__ == "__main__":
    main()
