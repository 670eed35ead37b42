"""Requests generated from the OpenAPI document, against a real `gateway serve` process.

Schemathesis reads the document, generates valid and invalid requests for every operation
(and undocumented methods on each path), and checks each answer: never a 5xx; a status
code, content type, headers and body the document lists; 405 for a method it does not.
Afterwards the process must still serve and have logged no error: no crash, no unexpected
exception.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from gateway.http import openapi
from gateway.ops.embedded import free_port
from tests.helpers.serve import start, stop, wait_for

MAX_EXAMPLES = 12
"""Per operation (70 of them): about 20 s on two busy cores, well under a minute."""

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
    checks.unsupported_method,
]


@pytest.fixture(scope="module")
def live_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`gateway serve` (one process, open mode) on its embedded server; its base URL."""
    directory = tmp_path_factory.mktemp("schemathesis")
    log = directory / "gateway.log"
    port = free_port()
    args = ["serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    # The per-address budget answers any route 429 past 200 requests a second, which a fast
    # machine's generated requests reach; the document says so in its description, and
    # tests/test_address_budget.py tests the budget. Here: what each operation answers.
    args += ["--address-rate", "0"]
    process = start([*args, "--data-dir", str(directory / "data")], log)
    try:
        wait_for("listening on", log, process)
        yield f"http://127.0.0.1:{port}"
        _assert_unharmed(process, port, log)
    finally:
        if process.poll() is None:
            stop(process)


def _assert_unharmed(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    assert process.poll() is None, f"the gateway died:\n{log.read_text()}"
    assert requests.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code == 200
    text = log.read_text()
    assert "Traceback" not in text, text
    assert " ERROR " not in text, text


# The bytes `GET /openapi.json` serves, decoded (a copy: the cached document stays untouched).
schema = schemathesis.openapi.from_dict(msgspec.json.decode(openapi.encoded()))


@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,  # the same requests on every run: CI stays reproducible
    database=None,  # and nothing is written into the work tree
    suppress_health_check=list(HealthCheck),
)
def test_answers_conform_to_the_document(case: schemathesis.Case[Any], live_gateway: str) -> None:
    case.call_and_validate(base_url=live_gateway, checks=CHECKS, timeout=10)
