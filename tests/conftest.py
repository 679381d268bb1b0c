"""Registers the test plugins; the fixtures themselves live in tests/fixtures.py and tests/browser_fixtures.py."""

pytest_plugins = ["tests.fixtures", "tests.browser_fixtures"]
