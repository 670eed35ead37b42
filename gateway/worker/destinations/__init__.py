"""Destinations: the interface and the built-ins, by kind."""

from gateway.worker.destinations.archive import ArchiveDestination
from gateway.worker.destinations.base import Destination, Failure, Result
from gateway.worker.destinations.file import FileDestination
from gateway.worker.destinations.http import HttpDestination
from gateway.worker.destinations.stdout import StdoutDestination

BUILTINS: dict[str, type[Destination]] = {
    cls.kind: cls
    for cls in (HttpDestination, FileDestination, StdoutDestination, ArchiveDestination)
}
"""The built-in destinations by `kind`."""

__all__ = [
    "BUILTINS",
    "ArchiveDestination",
    "Destination",
    "Failure",
    "FileDestination",
    "HttpDestination",
    "Result",
    "StdoutDestination",
]
