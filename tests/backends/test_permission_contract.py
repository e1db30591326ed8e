"""The permission contract suite (`cliquet_wsgi.testing.permission`) against every backend of conftest."""
from cliquet_wsgi.testing.permission import *  # noqa: F401,F403
