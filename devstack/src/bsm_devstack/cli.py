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
                                                          "gateway (every instance), one "
                                                          "instance (policy-2) or mailsink")) -> None:
    """Stop and start a service's instances (with a fresh environment from .stack/env)."""
    _run(stack.restart_service, _paths(), name)


@app.command()
def instances() -> None:
    """List every service instance: name, pid, alive, address (always exits 0)."""
    from bsm_devstack import faults

    _quiet_libraries()
    for state in faults.instances(_paths()):
        alive = "alive" if state.alive else "dead"
        sys.stdout.write(f"{state.name:<12} {state.pid or '-':>8} {alive:<6} "
                         f"{state.instance.address}\n")


def _fault(fn, *args, **kwargs) -> None:  # noqa: ANN001
    fault = None

    def call() -> None:
        nonlocal fault
        fault = fn(*args, **kwargs)

    _run(call)
    assert fault is not None
    sys.stdout.write(f"{fault.kind}: {fault.target} (pid {fault.pid or '-'}) killed; "
                     + (f"down {fault.down_seconds:.1f} s, " if fault.down_seconds else "")
                     + f"restarted in {fault.restart_seconds:.1f} s\n")


DOWN = typer.Option(0.0, "--down", help="seconds to leave it down before the restart")


@app.command()
def kill(name: str = typer.Argument(..., help="an instance: policy, policy-2, …"),
         down: float = DOWN,
         restart: bool = typer.Option(True, help="start it again afterwards")) -> None:
    """SIGKILL one service instance, then start it again (fault injection)."""
    from bsm_devstack import faults

    _fault(faults.kill_instance, _paths(), name, restart=restart, down_seconds=down)


@app.command("kill-broker")
def kill_broker(node: int = typer.Argument(..., help="Kafka node id (1, 2 or 3)"),
                down: float = DOWN) -> None:
    """SIGKILL one Kafka node (broker and controller), then start it again."""
    from bsm_devstack import faults

    _fault(faults.kill_broker, _paths(), node, down_seconds=down)


@app.command("crash-postgres")
def crash_postgres(down: float = DOWN) -> None:
    """Crash PostgreSQL (pg_ctl stop -m immediate), then start it again (WAL recovery)."""
    from bsm_devstack import faults

    _fault(faults.crash_postgres, _paths(), down_seconds=down)


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
