"""Shell-style environment files (``.stack/env``, ``.stack/secrets.env``).

The files hold ``KEY=VALUE`` or ``KEY='VALUE'`` lines so that ``set -a; . .stack/env; set +a``
works in bash, and :func:`read_env_file` reads them back without a shell.
"""

from __future__ import annotations

import os
import re
import shlex
import tempfile
from collections.abc import Mapping
from pathlib import Path

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9_./:@,+=%-]*$")


def quote_value(value: str) -> str:
    """``value`` as the shell reads it back: bare if it has no special characters, else in
    single quotes (a single quote inside becomes ``'\\''``)."""
    if _SAFE_VALUE.match(value):
        return value
    return "'" + value.replace("'", "'\\''") + "'"


def format_env(values: Mapping[str, str], header: str | None = None) -> str:
    lines: list[str] = []
    if header:
        lines.extend(f"# {line}".rstrip() for line in header.splitlines())
    for key, value in values.items():
        if not _KEY.match(key):
            raise ValueError(f"invalid environment variable name: {key!r}")
        lines.append(f"{key}={quote_value(str(value))}")
    return "\n".join(lines) + "\n"


def parse_env(text: str, source: str = "<string>") -> dict[str, str]:
    """Parse shell-style assignment lines.

    Accepts blank lines, ``#`` comments, an optional ``export`` prefix, bare values, and values
    in single or double quotes (including shell-style concatenations such as ``'a'\\''b'``).
    Nothing is expanded (``$VAR`` stays literal).
    """
    result: dict[str, str] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        lineno = i + 1
        line = lines[i].strip()
        i += 1
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not _KEY.match(key):
            raise ValueError(f"{source}:{lineno}: not a KEY=VALUE line")
        while True:
            try:
                parts = shlex.split(value, comments=True, posix=True)
                break
            except ValueError as exc:
                if i >= len(lines):  # a quoted value may span lines; this one never closes
                    raise ValueError(f"{source}:{lineno}: {exc}") from None
                value += "\n" + lines[i]
                i += 1
        result[key] = " ".join(parts)
    return result


def read_env_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read a shell-style env file (``KEY=VALUE`` / ``KEY='VALUE'`` lines) into a dict."""
    p = Path(path)
    return parse_env(p.read_text(encoding="utf-8"), source=str(p))


def write_env_file(path: Path, values: Mapping[str, str], *, mode: int = 0o644,
                   header: str | None = None) -> None:
    """Write (replace) ``path`` atomically with the given values."""
    write_atomic(path, format_env(values, header).encode("utf-8"), mode=mode)


def write_atomic(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
