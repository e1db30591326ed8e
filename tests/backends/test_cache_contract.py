"""The cache contract suite (`cliquet_wsgi.testing.cache`) against every backend of conftest."""
from cliquet_wsgi.testing.cache import *  # noqa: F401,F403
