import pytest

from cliquet_wsgi.errors import ConfigurationError
from cliquet_wsgi.paste import make_filter_factory, middleware_kwargs
from cliquet_wsgi.registry import Registry, backend_class, import_dotted, named_registry
from cliquet_wsgi.settings import load_settings


def settings(**raw):
    return load_settings(raw, environ={})


def test_capabilities_are_shared_and_unique():
    registry = Registry(settings())
    registry.register_capability("batch_atomic", "Atomic batches", "https://docs/batch")
    registry.register_capability("batch_atomic", "Atomic batches", "https://docs/batch")
    assert registry.capabilities == {"batch_atomic": {"description": "Atomic batches", "url": "https://docs/batch"}}
    with pytest.raises(ConfigurationError, match="'batch_atomic' is registered twice"):
        registry.register_capability("batch_atomic", "Other", "https://docs/other")


def test_public_settings_follow_configuration():
    registry = Registry(settings())
    assert registry.public_settings == {"batch_max_requests": 25, "readonly": False}
    registry.configure(settings(readonly="true"))
    assert registry.public_settings == {"batch_max_requests": 25, "readonly": True}


def test_configure_refuses_two_values_in_one_stack():
    registry = Registry(settings(storage_url="memory://"))
    registry.configure(settings())  # defaults never conflict
    with pytest.raises(ConfigurationError, match="'storage_url' has two values"):
        registry.configure(settings(storage_url="sqlite:///x.sqlite"))


def test_no_backend_configured():
    registry = Registry(settings())
    assert registry.storage is None
    assert registry.all_heartbeat_checks() == {}


@pytest.mark.parametrize(
    "raw, message",
    [
        pytest.param({"storage_url": "mysql://x"}, "unknown scheme 'mysql'", id="scheme"),
        pytest.param({"storage_url": "just-a-path"}, "must be a URL", id="not-url"),
        pytest.param({"storage_backend": "no.such.module"}, "cannot import", id="dotted"),
    ],
)
def test_bad_backend_settings(raw, message):
    with pytest.raises(ConfigurationError, match=message):
        backend_class("storage", settings(**raw))


def test_application_heartbeat_checks_by_dotted_path():
    registry = Registry(settings(heartbeat_checks="disk=os.path.isdir"))
    checks = registry.all_heartbeat_checks()
    assert checks["disk"] is import_dotted("os.path.isdir")


def test_endpoint_methods_resolvers():
    registry = Registry(settings())
    registry.register_endpoint_methods(lambda path: ["GET", "POST"] if path == "/articles" else None)
    assert registry.endpoint_methods("/articles") == ["GET", "POST"]
    assert registry.endpoint_methods("/other") is None


def test_named_registry_is_shared():
    first = named_registry("tests-shared", settings(paginate_by="3"))
    second = named_registry("tests-shared", settings(readonly="true"))
    assert first is second
    assert first.settings["paginate_by"] == 3 and first.settings["readonly"] is True


class Example:
    def __init__(self, app, *, registry=None, paginate_by=None, readonly=False, settings=None):
        self.app, self.registry, self.paginate_by, self.readonly, self.settings = (
            app, registry, paginate_by, readonly, settings)


def test_middleware_kwargs_follow_signature():
    registry = Registry(settings())
    kwargs = middleware_kwargs(Example, settings(paginate_by="4"), registry)
    assert kwargs["registry"] is registry
    assert kwargs["paginate_by"] == 4
    assert kwargs["readonly"] is False
    assert kwargs["settings"]["paginate_by"] == 4


def test_filter_factory_merges_default_and_section():
    factory = make_filter_factory(Example)
    make = factory({"__file__": "/tmp/tests-factory.ini", "here": "/tmp", "paginate_by": "2"}, readonly="true")
    built = make("APP")
    assert (built.app, built.paginate_by, built.readonly) == ("APP", 2, True)
    assert built.registry is named_registry("/tmp/tests-factory.ini", settings())


def test_filter_factory_refuses_unknown_setting():
    with pytest.raises(ConfigurationError, match="Unknown setting 'paginate'"):
        make_filter_factory(Example)({"__file__": "/tmp/x.ini"}, paginate="2")
