"""Fixtures and hypothesis profiles for the reliability tests.

Profiles (chosen with ``HYPOTHESIS_PROFILE``; ``.ci/run`` exports ``ci``):

- ``dev`` (default): random seeds, the example counts written on each test.
- ``ci``: the same counts, derandomized (a fixed seed) and without the example database, so
  every CI run tries exactly the same cases.
- ``thorough``: ten times the examples, random seeds; for a long local run.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

from tests.e2e.conftest import fake  # noqa: F401  # the e2e suite's fake Discord, per module

_COMMON = {
    # Behaviour, not timings: a slow example on a busy machine is not a failure. Hangs are
    # caught by the per-call timeouts in the tests themselves.
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    "print_blob": True,
}
settings.register_profile("dev", **_COMMON)
settings.register_profile("ci", derandomize=True, database=None, **_COMMON)
settings.register_profile("thorough", **_COMMON)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "dev")
settings.load_profile(PROFILE)


def examples(count: int) -> int:
    """``count`` examples, or ten times as many under the ``thorough`` profile."""
    return count * 10 if PROFILE == "thorough" else count
