"""Hypothesis settings profiles of the campaign's property tests: `ci`, `dev`, `nightly`.

Each property runs its examples once per configuration of the grid (15 of the library),
so `max_examples` is per configuration. Every example is a real run on a real
LocalCluster (about a second), hence `deadline=None` everywhere.

- ci: 2 schedules per configuration, derandomized (the same schedules on every CI
  run: a failure is a regression, not a newly drawn schedule), no example database.
- dev: 20 per configuration (300 runs), new schedules each time; failures are kept in
  the local example database (.hypothesis/) and replayed first next time.
- nightly: 200 per configuration, 3,000 schedules.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

# Generating a schedule is cheap; running it is not. Nothing here is "too slow". The
# `cluster` fixture is shared by every example on purpose (it checks, after them all,
# that no worker was left stopped).
_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large,
          HealthCheck.function_scoped_fixture]

PROFILES = {
    "ci": settings(max_examples=2, deadline=None, derandomize=True, database=None,
                   print_blob=True, suppress_health_check=_QUIET),
    "dev": settings(max_examples=20, deadline=None, print_blob=True,
                    suppress_health_check=_QUIET),
    "nightly": settings(max_examples=200, deadline=None, print_blob=True,
                        suppress_health_check=_QUIET),
}
DEFAULT_PROFILE = "ci"

for _name, _profile in PROFILES.items():
    settings.register_profile(_name, _profile)
