"""A test dependency that is not installed: a failure in CI, a skip that says why elsewhere."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    """Whether this runs in CI (`CI=true`, as GitHub Actions, GitLab and .ci/run set it)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def missing(what: str) -> NoReturn:
    """Stop the test for want of `what` (a sentence saying how to install it).

    In CI a missing dependency is a broken setup, not a reason to test less: the test fails.
    Elsewhere it is skipped, with `what` as the reason; usable at a module's top level too.
    """
    if in_ci():
        pytest.fail(f"{what} (CI must install it: see .ci/run)", pytrace=False)
    pytest.skip(what, allow_module_level=True)
