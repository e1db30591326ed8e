"""The storage contract suite (`cliquet_wsgi.testing.storage`) against every backend of conftest."""
from cliquet_wsgi.testing.storage import *  # noqa: F401,F403
