"""Destinations from the command line (one) or a TOML file (several).

The file has one `[[destination]]` table per destination:

    [[destination]]
    name = "Mixpanel"            # what `integrations` keys refer to; unique
    kind = "http"                # http, file, stdout, archive, or "package.module:Class"
    url = "https://collector.example/v1/batch"
    headers = { Authorization = "Basic ..." }
    consent = ["advertising"]    # optional: categories a message must grant (consent.py)

Every other key is an option of that kind's constructor.
"""

from __future__ import annotations

import importlib
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gateway.worker import consent
from gateway.worker.destinations import BUILTINS, Destination


class ConfigError(ValueError):
    """A destination that cannot be built; the message names it and the bad value."""


def load_file(path: Path) -> list[Destination]:
    """The destinations of a TOML file."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    unknown = set(document) - {"destination"}
    if unknown:
        raise ConfigError(f"{path}: unknown tables or keys: {', '.join(sorted(unknown))}")
    tables = document.get("destination")
    if not isinstance(tables, list) or not tables:
        raise ConfigError(f"{path}: no [[destination]] tables")
    return build_all(tables, where=str(path))


def build_all(tables: Sequence[Mapping[str, Any]], where: str = "config") -> list[Destination]:
    """Build each `{name, kind, **options}` table; names must be unique."""
    destinations: list[Destination] = []
    seen: set[str] = set()
    for index, table in enumerate(tables):
        at = f"{where}: destination #{index + 1}"
        options = dict(table)
        name = options.pop("name", None)
        kind = options.pop("kind", None)
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{at}: needs a name (a non-empty string)")
        if name in seen:
            raise ConfigError(f"{at}: the name {name!r} is used twice")
        seen.add(name)
        if not isinstance(kind, str) or not kind:
            raise ConfigError(
                f"{at} ({name}): needs a kind (http, file, stdout, archive or module:Class)"
            )
        destinations.append(build(kind, name, options, at=f"{at} ({name})"))
    return destinations


def build(kind: str, name: str, options: Mapping[str, Any], at: str = "") -> Destination:
    """One destination of `kind` (a built-in or `module:Class`) called `name`."""
    at = at or f"destination {name}"
    cls = destination_class(kind, at)
    options = dict(options)
    try:
        required = consent.categories(options.pop("consent", []))
        destination = cls(name, **options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{at}: {exc}") from None
    destination.consent = required
    return destination


def destination_class(kind: str, at: str = "destination") -> type[Destination]:
    """The class of a built-in kind, or one named `package.module:Class`."""
    if kind in BUILTINS:
        return BUILTINS[kind]
    module_name, _, class_name = kind.partition(":")
    if not module_name or not class_name:
        raise ConfigError(
            f"{at}: unknown kind {kind!r}: use one of {', '.join(BUILTINS)} or module:Class"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{at}: cannot import {module_name!r}: {exc}") from None
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type) or not issubclass(cls, Destination):
        raise ConfigError(f"{at}: {kind!r} is not a Destination subclass")
    return cls


def parse_header(value: str) -> tuple[str, str]:
    """`'Name: value'` as given to `--header`."""
    name, colon, rest = value.partition(":")
    if not colon or not name.strip():
        raise ConfigError(f"--header {value!r}: expected 'Name: value'")
    return name.strip(), rest.strip()
