"""The admin token: the configured one, else one made at first start and kept in the data
directory (mode 0600), as Jupyter does; and the session cookie a browser gets for it."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

TOKEN_FILE = "admin-token"
"""Under `--data-dir`: the token made at first start, when none is configured."""


def ensure(configured: str | None, data_dir: Path) -> tuple[str, bool]:
    """The admin token, and whether it was made just now (so its URL is printed once)."""
    if configured is not None:
        return configured, False
    path = data_dir / TOKEN_FILE
    try:
        return read(path), False
    except FileNotFoundError:
        pass
    token = secrets.token_urlsafe(32)
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: two gateways starting at once on one directory keep the first one's.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read(path), False
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(token + "\n")
    return token, True


def read(path: Path) -> str:
    """The token kept in `path`."""
    return path.read_text(encoding="utf-8").strip()


def session(token: str) -> str:
    """The session cookie's value: derived from the token, so the cookie is not the token."""
    return hmac.new(token.encode(), b"gateway admin session", hashlib.sha256).hexdigest()


def matches(given: str, expected: str) -> bool:
    """`given == expected`, in time that does not depend on where they differ."""
    return hmac.compare_digest(given.encode(), expected.encode())
