"""Browser fixtures (live server, Chromium through Playwright): written in tests/browser_fixtures.py."""
