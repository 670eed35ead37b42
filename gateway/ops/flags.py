"""Settings declared once as msgspec structs, read from flags and `GATEWAY_*` variables.

A settings class is a frozen `msgspec.Struct`. Each field carries its rules as msgspec
constraints (`Annotated[int, msgspec.Meta(ge=1)]`, `Literal[...]`, a `pattern`) and a
`Setting` with its help. From that one declaration come the flag (`--max-depth`), the
environment variable (`GATEWAY_MAX_DEPTH`), the `--help` line and the checks: `read` takes
the environment, then the flags over it, converts each value with msgspec, and refuses a
bad one with a `SettingsError` of one line naming the flag, the variable, the value and
what is allowed. A class may add a `check()` for what one field cannot say alone (raising
`Invalid`).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn, TypeVar, get_args

import msgspec
from msgspec import inspect as mi

PREFIX = "GATEWAY_"

S = TypeVar("S", bound=msgspec.Struct)


class SettingsError(ValueError):
    """A value that cannot be used: one line naming the setting, the value, what is allowed."""


class Invalid(ValueError):
    """From a settings class's `check()`: `field` cannot have its value, for the reason given."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field


@dataclasses.dataclass(frozen=True, slots=True)
class Setting:
    """A field's help and naming, in its `Annotated[...]` beside the msgspec constraints."""

    help: str
    flag: str | None = None
    """The flag, when it is not the field's name with dashes (`--config` for `worker_config`)."""
    metavar: str | None = None
    default: str | None = None
    """The default as `--help` says it, when the field's default does not say it well."""
    allowed: str | None = None
    """What is allowed, when the type cannot say it (a pattern, a parsed text)."""
    parse: Callable[[str], Any] | None = None
    """Turns the text of a flag or variable into what msgspec converts (a size, a list):
    for what msgspec cannot read from text. A `ValueError` refuses the value."""


class Parser(argparse.ArgumentParser):
    """An argparse parser whose mistakes are one line on stderr and exit 2, as a bad value's."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


@dataclasses.dataclass(frozen=True, slots=True)
class _Field:
    name: str
    setting: Setting
    hint: Any
    info: mi.Type | None
    """msgspec's view of the type; None for one msgspec cannot convert (`parse` makes it)."""
    required: bool
    default: Any

    @property
    def flag(self) -> str:
        return self.setting.flag or "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return PREFIX + self.name.upper()

    @property
    def optional(self) -> bool:
        return isinstance(self.info, mi.UnionType) and any(
            isinstance(t, mi.NoneType) for t in self.info.types
        )

    @property
    def core(self) -> mi.Type | None:
        """The type without its `| None`."""
        if isinstance(self.info, mi.UnionType):
            return next(t for t in self.info.types if not isinstance(t, mi.NoneType))
        return self.info

    def allowed(self) -> str:
        return self.setting.allowed or (_describe(self.info) if self.info else "a value")

    def convert(self, raw: Any, source: str) -> Any:
        """`raw` (text, or a value given in code) as the field's type, else `SettingsError`."""
        value = raw
        try:
            if isinstance(raw, str):
                if not raw and self.optional:
                    return None  # an empty variable unsets an optional setting
                if self.setting.parse is not None:
                    value = self.setting.parse(raw)
            if self.info is None:
                return value
            return msgspec.convert(value, self.hint, strict=False, dec_hook=_from_text)
        except ValueError:  # msgspec.ValidationError is one
            raise self.refused(raw, source, f"must be {self.allowed()}") from None

    def refused(self, value: Any, source: str | None, reason: str) -> SettingsError:
        """The error for `value` from `source` (None: not given)."""
        if source is None:
            return SettingsError(f"{self.flag} (or {self.env}) {reason}")
        other = self.env if source == self.flag else self.flag
        return SettingsError(f"{source}={value!r} (or {other}): {reason}")

    def help(self) -> str:
        """The `--help` text: what it is, what is allowed, the default, the variable."""
        text = self.setting.help
        if self.setting.allowed or isinstance(self.core, mi.IntType | mi.FloatType):
            text += f": {self.allowed()}"
        if self.required:
            note = "required"
        elif self.setting.default is not None:
            note = f"default {self.setting.default}"
        elif self.default not in (None, False):
            note = f"default {self.default}"
        else:
            note = ""
        return f"{text} ({note + '; ' if note else ''}{self.env})"

    def metavar(self) -> str:
        info = self.core
        if isinstance(info, mi.LiteralType):
            return "{" + ",".join(str(v) for v in info.values) + "}"
        if self.setting.metavar:
            return self.setting.metavar
        return "N" if isinstance(info, mi.IntType | mi.FloatType) else self.name.upper()


def _from_text(cls: type, value: Any) -> Any:
    if cls is Path and isinstance(value, str | os.PathLike):
        return Path(value)
    raise TypeError(f"not a {cls.__name__}")


def _describe(info: mi.Type) -> str:
    """What a msgspec type allows, in words."""
    if isinstance(info, mi.UnionType):
        return " or ".join(_describe(t) for t in info.types if not isinstance(t, mi.NoneType))
    if isinstance(info, mi.LiteralType):
        return "one of " + ", ".join(str(v) for v in info.values)
    if isinstance(info, mi.BoolType):
        return "true or false (1 or 0)"
    if isinstance(info, mi.IntType | mi.FloatType):
        noun = "an integer" if isinstance(info, mi.IntType) else "a number"
        if info.ge is not None and info.le is not None:
            return f"{noun} from {info.ge} to {info.le}"
        if info.ge is not None:
            return f"{noun}, {info.ge} or more"
        if info.gt is not None:
            return f"{noun} more than {info.gt}"
        return noun
    if isinstance(info, mi.StrType):
        return "a non-empty text" if info.min_length else "a text"
    if isinstance(info, mi.CustomType) and info.cls is Path:
        return "a path"
    return "a value"


@functools.cache
def _fields(cls: type[msgspec.Struct]) -> dict[str, _Field]:
    found = {}
    for field in msgspec.structs.fields(cls):
        setting = next(a for a in get_args(field.type)[1:] if isinstance(a, Setting))
        try:
            info: mi.Type | None = mi.type_info(field.type)
        except TypeError:
            info = None
        if isinstance(info, mi.Metadata):
            info = info.type
        default = None if field.default is msgspec.NODEFAULT else field.default
        found[field.name] = _Field(field.name, setting, field.type, info, field.required, default)
    return found


def add_flags(parser: argparse.ArgumentParser, cls: type[msgspec.Struct]) -> None:
    """A flag for each field of `cls`; unset flags are None, so that the environment counts."""
    for field in _fields(cls).values():
        if isinstance(field.info, mi.BoolType):
            parser.add_argument(
                field.flag, dest=field.name, action="store_true", default=None, help=field.help()
            )
        else:
            parser.add_argument(
                field.flag, dest=field.name, metavar=field.metavar(), help=field.help()
            )


def flags(cls: type[msgspec.Struct]) -> dict[str, str]:
    """Each field's flag and variable: `{"--port": "GATEWAY_PORT", ...}`."""
    return {field.flag: field.env for field in _fields(cls).values()}


def read(
    cls: type[S], environ: Mapping[str, str] | None = None, given: Mapping[str, Any] | None = None
) -> S:
    """`cls` from `given` (flags, or values in code; None: not given), else `environ`
    (default: the process's), else the defaults; checked."""
    environ = os.environ if environ is None else environ
    given = given or {}
    fields = _fields(cls)
    unknown = set(given) - set(fields)
    if unknown:
        raise SettingsError(f"unknown settings: {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    sources: dict[str, tuple[str, Any]] = {}
    for name, field in fields.items():
        if given.get(name) is not None:
            sources[name] = (field.flag, given[name])
        elif field.env in environ:
            sources[name] = (field.env, environ[field.env])
        elif field.required:
            raise field.refused(None, None, "is required")
        else:
            continue
        values[name] = field.convert(sources[name][1], sources[name][0])
    settings = cls(**values)
    check: Callable[[], None] | None = getattr(settings, "check", None)
    try:
        if check is not None:
            check()
    except Invalid as exc:
        source, value = sources.get(exc.field, (None, None))
        raise fields[exc.field].refused(value, source, str(exc)) from None
    return settings


def from_args(
    cls: type[S], args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> S:
    """`cls` from the flags `add_flags` added, over the environment."""
    return read(cls, environ, {name: getattr(args, name, None) for name in _fields(cls)})
