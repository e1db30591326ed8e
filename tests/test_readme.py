"""The README stays true: every setting is documented, the commands it gives are the ones CI runs."""
import os
import re

from cliquet_wsgi.settings import DEFAULTS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read(name):
    with open(os.path.join(ROOT, name), encoding="utf-8") as file:
        return file.read()


def test_every_setting_is_documented():
    readme = read("README.md")
    missing = [name for name in DEFAULTS if f"`{name}`" not in readme and f"{name} " not in readme]
    assert missing == []


def test_ci_runs_the_readme_test_command():
    commands = re.findall(r"```sh\n(.*?)\n```", read("README.md"), flags=re.S)
    test_command = next(c for c in commands if "pytest" in c)
    assert test_command in read(".ci/run")
