"""TLS to PostgreSQL (``?sslmode=``): against a private cluster with TLS on, and the shared server without it.

Certificates come from a throwaway CA (trustme); what the server saw is
read from ``pg_stat_ssl`` of the pool's own session.
"""
from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import quote

import pytest

from cliquet_wsgi.errors import BackendError, ConfigurationError
from cliquet_wsgi.testing import POSTGRESQL_URL

pytest.importorskip("pg8000")
trustme = pytest.importorskip("trustme")

from cliquet_wsgi.backends.postgresql.pool import Pool  # noqa: E402
from cliquet_wsgi.backends.postgresql.tls import TLSRefused, TLSSettings, parse_tls  # noqa: E402
from tests.backends.pg_cluster import private_cluster  # noqa: E402


@pytest.mark.parametrize(
    "query, expected",
    [
        pytest.param("", TLSSettings("prefer"), id="default-prefer"),
        pytest.param("?sslmode=disable", TLSSettings("disable"), id="disable"),
        pytest.param("?sslmode=require", TLSSettings("require"), id="require"),
        pytest.param("?sslmode=verify-full&sslrootcert=/etc/ca.pem", TLSSettings("verify-full", "/etc/ca.pem"),
                     id="verify-full"),
        pytest.param("?sslmode=verify-ca&sslrootcert=/ca.pem&sslcert=/c.pem&sslkey=/k.pem",
                     TLSSettings("verify-ca", "/ca.pem", "/c.pem", "/k.pem"), id="client-certificate"),
    ],
)
def test_parse_tls(query, expected):
    assert parse_tls(f"postgresql://u@h/db{query}") == expected


@pytest.mark.parametrize(
    "query, message",
    [
        pytest.param("?sslmode=allow", "PostgreSQL sslmode must be one of disable, prefer, require, verify-ca, "
                     "verify-full, not 'allow'", id="unsupported-mode"),
        pytest.param("?sslmode=", "PostgreSQL sslmode must be one of disable, prefer, require, verify-ca, "
                     "verify-full, not ''", id="empty-mode"),
        pytest.param("?connect_timeout=3", "Unknown PostgreSQL URL parameter 'connect_timeout' (supported: "
                     "sslmode, sslrootcert, sslcert, sslkey)", id="unknown-parameter"),
        pytest.param("?sslkey=/k.pem", "PostgreSQL sslkey needs sslcert", id="key-without-certificate"),
    ],
)
def test_bad_tls_parameters_are_configuration_errors(query, message):
    with pytest.raises(ConfigurationError) as raised:
        Pool(f"postgresql://u@127.0.0.1/db{query}")
    assert str(raised.value) == message


def test_unreadable_root_certificate_fails_at_startup(tmp_path):
    missing = tmp_path / "missing-ca.pem"
    with pytest.raises(ConfigurationError, match="^PostgreSQL TLS files could not be loaded: "):
        Pool(f"postgresql://u@127.0.0.1/db?sslmode=verify-full&sslrootcert={quote(str(missing))}")


# -- a server with TLS on -------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_server(ca, tmp_path_factory):
    """``(url, files)``: a private cluster whose certificate names 127.0.0.1 only, and asks for client certificates."""
    server_cert = ca.issue_cert("127.0.0.1")
    files = tmp_path_factory.mktemp("tls")
    ca.cert_pem.write_to_path(str(files / "ca.pem"))
    client = ca.issue_cert("cliquet-client", common_name="cliquet-client", organization_name="cliquet",
                           organization_unit_name="tests")
    client.cert_chain_pems[0].write_to_path(str(files / "client.pem"))
    client.private_key_pem.write_to_path(str(files / "client.key"))
    other = trustme.CA()
    other.cert_pem.write_to_path(str(files / "other-ca.pem"))

    def prepare(cluster):
        cluster.add_file("server.crt", b"".join(pem.bytes() for pem in server_cert.cert_chain_pems))
        cluster.add_file("server.key", server_cert.private_key_pem.bytes())
        cluster.add_file("root.crt", ca.cert_pem.bytes())

    with private_cluster(prepare, ssl="on", ssl_cert_file="server.crt", ssl_key_file="server.key",
                         ssl_ca_file="root.crt") as cluster:
        yield cluster.url, files


def session_tls(url: str) -> list[Any]:
    """``[ssl, client_dn]`` of the pool's own server session."""
    pool = Pool(url, size=1, max_overflow=0, timeout=5, connect_timeout=5)
    try:
        with pool.transaction() as cursor:
            cursor.execute("SELECT ssl, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            return cursor.fetchone()
    finally:
        pool.dispose()


def connect_error(url: str) -> BaseException:
    pool = Pool(url, size=1, max_overflow=0, timeout=5, connect_timeout=5)
    try:
        with pytest.raises(BackendError) as raised:
            with pool.transaction() as cursor:
                cursor.execute("SELECT 1")
        assert pool.checked_out == 0
        return raised.value.original
    finally:
        pool.dispose()


@pytest.mark.parametrize(
    "query, expected",
    [
        pytest.param("sslmode=disable", [False, None], id="disable-is-plain"),
        pytest.param("", [True, None], id="prefer-takes-tls"),
        pytest.param("sslmode=require", [True, None], id="require"),
        pytest.param("sslmode=verify-ca&sslrootcert={files}/ca.pem", [True, None], id="verify-ca"),
        pytest.param("sslmode=verify-full&sslrootcert={files}/ca.pem", [True, None], id="verify-full"),
        pytest.param("sslmode=verify-full&sslrootcert={files}/ca.pem&sslcert={files}/client.pem"
                     "&sslkey={files}/client.key", [True, "/O=cliquet/OU=tests/CN=cliquet-client"], id="client-certificate"),
    ],
)
def test_sslmodes_against_a_tls_server(tls_server, query, expected):
    url, files = tls_server
    assert session_tls(f"{url}?{query.format(files=files)}") == expected


def test_verify_full_refuses_a_certificate_of_another_ca(tls_server):
    url, files = tls_server
    error = connect_error(f"{url}?sslmode=verify-full&sslrootcert={files}/other-ca.pem")
    assert isinstance(error, ssl.SSLCertVerificationError)
    # The server sends its chain up to its own CA, which this root file does not hold.
    assert error.verify_message == "self-signed certificate in certificate chain"


def test_verify_full_refuses_a_certificate_for_another_host(tls_server):
    # Same server, reached as "localhost": the certificate names 127.0.0.1 only.
    url, files = tls_server
    url = url.replace("@127.0.0.1:", "@localhost:")
    error = connect_error(f"{url}?sslmode=verify-full&sslrootcert={files}/ca.pem")
    assert isinstance(error, ssl.SSLCertVerificationError)
    assert error.verify_message == "Hostname mismatch, certificate is not valid for 'localhost'."
    # verify-ca does not look at the name.
    assert session_tls(f"{url}?sslmode=verify-ca&sslrootcert={files}/ca.pem") == [True, None]


def test_verify_full_without_a_root_certificate_uses_the_system_store(tls_server):
    url, _ = tls_server
    error = connect_error(f"{url}?sslmode=verify-full")
    assert isinstance(error, ssl.SSLCertVerificationError)


# -- a server without TLS (the shared test server) --------------------------------------------


@pytest.fixture(scope="module")
def plain_url():
    from cliquet_wsgi.testing import require_service, tcp_reachable

    if not tcp_reachable("127.0.0.1", 5432):
        require_service("postgresql", "127.0.0.1:5432 does not answer")
    pool = Pool(POSTGRESQL_URL, size=1, max_overflow=0)
    try:
        with pool.transaction() as cursor:
            cursor.execute("SHOW ssl")
            if cursor.fetchone() != ["off"]:
                pytest.skip("the shared PostgreSQL server has TLS on: these tests need one without")
    finally:
        pool.dispose()
    return POSTGRESQL_URL.partition("?")[0]


def test_prefer_falls_back_to_plain_without_tls(plain_url):
    assert session_tls(plain_url) == [False, None]


@pytest.mark.parametrize("mode", ["require", "verify-ca", "verify-full"])
def test_modes_requiring_tls_refuse_a_plain_server(plain_url, mode):
    error = connect_error(f"{plain_url}?sslmode={mode}")
    assert isinstance(error, TLSRefused)
    assert str(error) == f"the server does not accept TLS (sslmode={mode})"
