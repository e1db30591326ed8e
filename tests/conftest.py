"""Suite-wide hook: no log record of the whole run may contain a test secret (RELIABILITY S9)."""
import logging

import pytest

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
