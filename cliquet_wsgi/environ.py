"""Names of the ``cliquet.*`` keys the middlewares put in the WSGI environ.

Middlewares add only these keys. A middleware that rewrites a standard key
(``PATH_INFO``, ``SCRIPT_NAME``, ``REMOTE_USER``) keeps the original under an
``*_ORIG`` key first. Applications read them through :mod:`cliquet_wsgi.api`.
"""

#: The :class:`cliquet_wsgi.registry.Registry` of the stack (set by every
#: middleware that has one, if absent).
REGISTRY = "cliquet.registry"

#: Version prefix moved into ``SCRIPT_NAME`` by the version middleware, e.g. ``"/v1"``.
VERSION_PREFIX = "cliquet.version_prefix"
#: ``(SCRIPT_NAME, PATH_INFO)`` as received, before the version middleware moved the prefix.
PATH_ORIG = "cliquet.path_orig"

#: Prefixed user id (``"basicauth:9f2d…"``) or absent when anonymous.
USER_ID = "cliquet.user_id"
#: Name of the policy that authenticated the request (``"basicauth"``).
AUTHN_TYPE = "cliquet.authn_type"
#: List of principals: ``system.Everyone``, ``system.Authenticated``, user id, groups.
PRINCIPALS = "cliquet.principals"
#: ``REMOTE_USER`` as received (the auth middleware always overwrites it).
REMOTE_USER_ORIG = "cliquet.remote_user_orig"

#: Endpoint name of the matched route (``"hello"``, ``"article-collection"``), for metrics and logs.
ROUTE_NAME = "cliquet.route_name"
#: Route pattern (``"/articles/{id}"``), for logs: never the raw path with ids.
ROUTE_PATTERN = "cliquet.route_pattern"
#: Errno of an error response, set by whoever renders it, for logs and metrics.
ERRNO = "cliquet.errno"
#: Request id (validated ``X-Request-Id`` or generated).
REQUEST_ID = "cliquet.request_id"
#: Extra fields that inner layers add to the request summary log line (a dict).
LOG_CONTEXT = "cliquet.log_context"

#: Set to the batch's shared context dict in every batch sub-request: ``size``
#: (number of sub-requests), ``atomic`` (one transaction for all) and
#: ``parent_headers`` (the batch request's own ``HTTP_*`` environ keys).
BATCH = "cliquet.batch"
#: Memo shared by one request (or a whole batch): e.g. principals per user id.
MEMO = "cliquet.memo"

#: List of extra header names inner layers want CORS to expose on this response
#: (the resources middleware adds ``Next-Page``, ``ETag``… on its endpoints).
EXPOSE_HEADERS = "cliquet.expose_headers"

#: The JSON body of a batch sub-request as the batch layer already parsed it
#: (a copy of its own for each sub-request). ``wsgi.input`` holds the same value
#: serialised; a layer that decodes JSON bodies may use this one instead.
PARSED_BODY = "cliquet.parsed_body"
#: The value a layer rendered as this response's JSON body (the batch layer
#: embeds it in its response without parsing the body again).
RESPONSE_DATA = "cliquet.response_data"
