"""cliquet-wsgi: the Cliquet HTTP service protocol as composable WSGI middlewares.

The core (this package's top-level modules) holds settings, the error type
and renderer, JSON rendering, environ keys, backend contracts, the registry
shared by a stack, PasteDeploy glue and :func:`wrap`. Middlewares live in
:mod:`cliquet_wsgi.middlewares` and backends in :mod:`cliquet_wsgi.backends`;
both import the core, never each other, and the core imports neither (only
:func:`wrap` names them, by dotted path).
"""

__version__ = "0.1.0"

from cliquet_wsgi.errors import ERRORS, BackendError, CliquetError, ConfigurationError  # noqa: E402
from cliquet_wsgi.stack import wrap  # noqa: E402

__all__ = ["wrap", "CliquetError", "BackendError", "ConfigurationError", "ERRORS", "__version__"]
