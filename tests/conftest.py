"""Test-wide settings: headless MuJoCo rendering must be chosen before mujoco is first imported; hypothesis profiles.

Hypothesis profiles, chosen by ``HYPOTHESIS_PROFILE`` (default ``ci``); every property test uses the loaded
profile (a test's own ``@settings(max_examples=...)`` inherits the rest from it):

* ``ci``: reproducible. ``derandomize=True`` (the examples follow from the test's source, the same on every run
  and machine) and ``database=None`` (no ``.hypothesis/`` example database: a failure found once cannot make every
  later run in that checkout fail, nor hide behind a replayed example); no deadline (2 shared cores on CI);
  ``print_blob`` prints the ``@reproduce_failure`` line of a failure.
* ``explore``: random examples and the local example database, for hunting new failures by hand
  (``HYPOTHESIS_PROFILE=explore``); a failure it finds is then pinned as a plain regression test.

The large random searches are benchmarks (``benchmarks/bench_safety.py``), not tests.
"""
import os

os.environ.setdefault("MUJOCO_GL", "egl")

from hypothesis import HealthCheck, settings  # noqa: E402

_COMMON = dict(deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", derandomize=True, database=None, **_COMMON)
settings.register_profile("explore", derandomize=False, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
