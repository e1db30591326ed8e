"""``python3 -m cliquet_wsgi`` is the ``cliquet-wsgi`` command."""
import sys

from cliquet_wsgi.cli import main

sys.exit(main())
