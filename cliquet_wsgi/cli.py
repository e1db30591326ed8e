"""``cliquet-wsgi``: serve an ini file, migrate backends.

* ``cliquet-wsgi serve [paste.ini] [--host H] [--port P]``: configure logging
  from the ini's ``[loggers]`` sections, load ``[pipeline:main]`` (or
  ``--name``) with PasteDeploy, create or upgrade the backends' schemas and
  serve with waitress. For development and small deployments; production runs
  ``gunicorn --paste paste.ini`` after ``cliquet-wsgi migrate``.
* ``cliquet-wsgi migrate [paste.ini]``: create or upgrade the schemas of every
  configured backend (idempotent) and print what it did.
"""
from __future__ import annotations

import argparse
import configparser
import logging
import logging.config
import os
import sys
from typing import Sequence

from cliquet_wsgi.errors import ConfigurationError

logger = logging.getLogger("cliquet_wsgi")


def _load_app(ini_path: str, name: str):
    """Load the app; return it with the registries its middlewares created."""
    from paste.deploy import loadapp

    from cliquet_wsgi.registry import all_registries

    before = {id(registry) for registry in all_registries()}
    app = loadapp(f"config:{os.path.abspath(ini_path)}", name=name)
    created = [registry for registry in all_registries() if id(registry) not in before]
    return app, created or all_registries()


def _configure_logging(ini_path: str) -> None:
    """Logging from the ini's ``[loggers]`` sections, else a console handler.

    The ``logging_renderer`` setting (``[DEFAULT]`` or ``CLIQUET_LOGGING_RENDERER``)
    then picks the formatter of the root handlers: ``classic`` keeps the
    ini's, ``json`` switches them to the mozlog JSON formatter.
    """
    from cliquet_wsgi.registry import import_dotted
    from cliquet_wsgi.settings import load_settings

    here = os.path.dirname(os.path.abspath(ini_path))
    parser = configparser.ConfigParser(defaults={"here": here, "__file__": os.path.abspath(ini_path)})
    parser.read(ini_path)
    renderer = load_settings({"logging_renderer": parser.defaults().get("logging_renderer", "classic")})[
        "logging_renderer"
    ]
    if parser.has_section("loggers"):
        logging.config.fileConfig(
            ini_path, defaults={"here": here, "__file__": os.path.abspath(ini_path)}, disable_existing_loggers=False
        )
    else:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-5.5s [%(name)s] %(message)s")
    if renderer == "json":
        make_formatter = import_dotted("cliquet_wsgi.middlewares.request_log.make_formatter")
        for handler in logging.getLogger().handlers:
            handler.setFormatter(make_formatter("json"))


def _server_options(ini_path: str) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ini_path)
    if parser.has_section("server:main"):
        return {key: value for key, value in parser.items("server:main") if key in ("host", "port", "threads")}
    return {}


def migrate_backends(registries=None, out=None) -> int:
    """Initialise the schemas of the backends of ``registries`` (default: all); return how many."""
    from cliquet_wsgi.registry import BACKEND_KINDS, all_registries

    out = out or sys.stdout
    seen: set[int] = set()
    for registry in all_registries() if registries is None else registries:
        for kind in BACKEND_KINDS:
            backend = registry.backend(kind)
            if backend is None or id(backend) in seen:
                continue
            seen.add(id(backend))
            for line in backend.initialize_schema() or []:
                print(line, file=out)
    return len(seen)


def _check_ini(path: str) -> str:
    if not os.path.isfile(path):
        raise SystemExit(f"cliquet-wsgi: no such ini file: {path}")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cliquet-wsgi", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve an ini file with waitress")
    serve.add_argument("ini", nargs="?", default="paste.ini")
    serve.add_argument("--name", default="main", help="pipeline or app name in the ini (default: main)")
    serve.add_argument("--host", help="default: [server:main] host, else 127.0.0.1")
    serve.add_argument("--port", type=int, help="default: [server:main] port, else 8000")
    serve.add_argument("--threads", type=int, help="default: [server:main] threads, else 8")

    migrate = commands.add_parser("migrate", help="create or upgrade backend schemas")
    migrate.add_argument("ini", nargs="?", default="paste.ini")
    migrate.add_argument("--name", default="main")

    args = parser.parse_args(argv)
    ini = _check_ini(args.ini)
    try:
        if args.command == "migrate":
            _, registries = _load_app(ini, args.name)
            count = migrate_backends(registries)
            print(f"{count} backend(s) up to date")
            return 0
        _configure_logging(ini)
        app, registries = _load_app(ini, args.name)
        migrate_backends(registries, out=_LogWriter())
        options = _server_options(ini)
        host = args.host or options.get("host", "127.0.0.1")
        port = args.port or int(options.get("port", 8000))
        threads = args.threads or int(options.get("threads", 8))
        import waitress

        logger.info("Serving %s on http://%s:%s/", ini, host, port)
        waitress.serve(app, host=host, port=port, threads=threads)
        return 0
    except ConfigurationError as exc:
        print(f"cliquet-wsgi: configuration error: {exc}", file=sys.stderr)
        return 2


class _LogWriter:
    """A file-like object sending migration lines to the log."""

    def write(self, text: str) -> None:
        if text.strip():
            logger.info(text.strip())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
