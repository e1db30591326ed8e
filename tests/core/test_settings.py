import datetime

import pytest

from cliquet_wsgi.errors import ConfigurationError
from cliquet_wsgi.settings import env_name, load_settings, version_prefix


def test_defaults_without_any_source():
    settings = load_settings(environ={})
    assert settings["project_version"] == "1.0.0"
    assert settings["http_api_version"] == "1.0"
    assert settings["cors_origins"] == ["*"]
    assert settings["batch_max_requests"] == 25
    assert settings["backoff"] is None
    assert version_prefix(settings) == "/v1"


@pytest.mark.parametrize(
    "raw, name, expected",
    [
        pytest.param({"readonly": "yes"}, "readonly", True, id="bool-yes"),
        pytest.param({"readonly": "OFF"}, "readonly", False, id="bool-off"),
        pytest.param({"readonly": True}, "readonly", True, id="bool-typed"),
        pytest.param({"paginate_by": "10"}, "paginate_by", 10, id="int"),
        pytest.param({"paginate_by": ""}, "paginate_by", None, id="optional-empty"),
        pytest.param({"backoff": "none"}, "backoff", None, id="optional-none"),
        pytest.param({"cors_origins": "https://a.org  https://*.b.org"}, "cors_origins",
                     ["https://a.org", "https://*.b.org"], id="list-spaces"),
        pytest.param({"multiauth_policies": "basicauth,bearer"}, "multiauth_policies",
                     ["basicauth", "bearer"], id="list-commas"),
        pytest.param({"heartbeat_timeout_seconds": "2.5"}, "heartbeat_timeout_seconds", 2.5, id="float"),
        pytest.param({"eos": "2016-01-22"}, "eos", datetime.datetime(2016, 1, 22), id="date"),
        pytest.param({"project_version": "3.4.1"}, "http_api_version", "3.4", id="derived-api-version"),
        pytest.param({"project_version": "7"}, "http_api_version", "7.0", id="derived-major-only"),
    ],
)
def test_conversion(raw, name, expected):
    assert load_settings(raw, environ={})[name] == expected


@pytest.mark.parametrize(
    "raw, message",
    [
        pytest.param({"paginate_bi": "3"}, "Unknown setting 'paginate_bi' (did you mean 'paginate_by'?)", id="typo"),
        pytest.param({"readonly": "maybe"}, "Invalid value for setting 'readonly'", id="bad-bool"),
        pytest.param({"paginate_by": "-1"}, "Invalid value for setting 'paginate_by'", id="negative"),
        pytest.param({"paginate_by": "0"}, "Invalid value for setting 'paginate_by'", id="zero"),
        pytest.param({"batch_max_requests": "1.5"}, "Invalid value for setting 'batch_max_requests'", id="float-int"),
        pytest.param({"paginate_by": "20000"}, "Setting 'paginate_by' cannot exceed", id="contradiction"),
        pytest.param({"cors_origins": "null"}, "'null' origin", id="null-origin"),
        pytest.param({"eos_message": "bye"}, "need 'eos'", id="eos-message-without-eos"),
        pytest.param({"http_api_version": "v1"}, "must be MAJOR.MINOR", id="bad-api-version"),
        pytest.param({"project_version": "abc"}, "must start with MAJOR", id="bad-version"),
        pytest.param({"paginate_by": "5", "cliquet.paginate_by": "6"}, "given twice", id="two-spellings"),
        pytest.param({"eos": "tomorrow"}, "Invalid value for setting 'eos'", id="bad-date"),
        pytest.param({"heartbeat_timeout_seconds": "nan"}, "Invalid value", id="nan"),
    ],
)
def test_refused_at_startup(raw, message):
    with pytest.raises(ConfigurationError) as excinfo:
        load_settings(raw, environ={})
    assert message in str(excinfo.value)


def test_prefixes_normalise_to_one_name():
    settings = load_settings({"cliquet.paginate_by": "5", "project_name": "myapp", "myapp.readonly": "true"}, environ={})
    assert settings["paginate_by"] == 5
    assert settings["readonly"] is True


def test_same_value_under_two_spellings_is_fine():
    assert load_settings({"paginate_by": "5", "cliquet.paginate_by": "5"}, environ={})["paginate_by"] == 5


def test_later_source_wins():
    assert load_settings({"paginate_by": "5"}, {"paginate_by": "6"}, environ={})["paginate_by"] == 6


def test_environment_overrides_file_and_keywords():
    environ = {"CLIQUET_PAGINATE_BY": "7", "CLIQUET_MULTIAUTH_POLICIES": "bearer", "READONLY": "true"}
    settings = load_settings({"paginate_by": "5"}, environ=environ)
    assert settings["paginate_by"] == 7
    assert settings["multiauth_policies"] == ["bearer"]
    # Only CLIQUET_* is read: a bare READONLY belongs to someone else.
    assert settings["readonly"] is False


def test_environment_value_is_validated():
    with pytest.raises(ConfigurationError) as excinfo:
        load_settings(environ={"CLIQUET_BATCH_MAX_REQUESTS": "lots"})
    assert "'batch_max_requests'" in str(excinfo.value)


def test_dynamic_settings_from_file_and_environment():
    settings = load_settings(
        {"article_read_principals": "system.Everyone", "collection_article_delete_enabled": "false",
         "multiauth.policy.bearer.verifier": "pkg.verify"},
        environ={"CLIQUET_BOOKMARK_CACHE_EXPIRES_SECONDS": "60", "CLIQUET_TEST_REQUIRE_SERVICES": "1"},
    )
    assert settings["article_read_principals"] == ["system.Everyone"]
    assert settings["collection_article_delete_enabled"] is False
    assert settings["multiauth.policy.bearer.verifier"] == "pkg.verify"
    assert settings["bookmark_cache_expires_seconds"] == 60
    assert "test_require_services" not in settings


def test_paste_keys_are_not_settings():
    settings = load_settings({"__file__": "/x/paste.ini", "here": "/x"}, environ={})
    assert "here" not in settings and "__file__" not in settings


def test_env_name():
    assert env_name("multiauth.policies") == "CLIQUET_MULTIAUTH_POLICIES"
    assert env_name("storage-url") == "CLIQUET_STORAGE_URL"
