"""Suite-wide settings: no log record of the whole run may contain a test secret (RELIABILITY S9);
property tests are never judged by the clock.
"""
import logging

import pytest
from hypothesis import HealthCheck, settings

# Tests hold no timing: hypothesis's per-example deadline (200 ms) and its
# "too slow" health check would fail a correct test on a loaded machine.
settings.register_profile("cliquet", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("cliquet")

from tests.secrets import SECRETS, SecretScanHandler


@pytest.fixture(scope="session", autouse=True)
def secret_log_scan():
    """Capture every record of the session at DEBUG; fail at the end if one leaked a secret."""
    root = logging.getLogger()
    handler = SecretScanHandler(SECRETS)
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(previous_level)
    if handler.offences:
        pytest.fail("Secrets were logged (RELIABILITY S9):\n" + "\n".join(handler.offences), pytrace=False)
