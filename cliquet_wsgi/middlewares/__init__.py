"""One module per middleware; each imports only the core (``cliquet_wsgi.*``)."""
