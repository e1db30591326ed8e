"""REST resources middleware (PROTOCOL §9, §10): see :mod:`.middleware`."""
from cliquet_wsgi.middlewares.resources.definition import Resource
from cliquet_wsgi.middlewares.resources.middleware import ResourcesMiddleware
from cliquet_wsgi.paste import make_filter_factory

__all__ = ["ResourcesMiddleware", "Resource", "filter_factory"]

filter_factory = make_filter_factory(ResourcesMiddleware)
