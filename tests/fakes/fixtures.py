"""The loopback fake servers as pytest fixtures, registered for every test by ``tests/conftest.py``.

``central`` is a fake ODK Central whose login sits in ``CENTRAL_TEST_EMAIL`` and
``CENTRAL_TEST_PASSWORD``; ``listener`` is the other origin a hostile server points kobo-tip at.
A test file whose server needs other settings (pages, import polls) starts its own.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fakes.central_server import FakeCentral
from fakes.listener import Listener

# The environment variables a config's [source] username_env and password_env name in the tests.
CENTRAL_EMAIL_ENV, CENTRAL_PASSWORD_ENV = "CENTRAL_TEST_EMAIL", "CENTRAL_TEST_PASSWORD"


@pytest.fixture
def central(monkeypatch: pytest.MonkeyPatch, secret: str) -> Iterator[FakeCentral]:
    """A fake ODK Central on loopback, its login and the person-key secret (conftest's ``secret``)
    in the environment for the test only: a test of a Central project always syncs."""
    with FakeCentral() as fake:
        monkeypatch.setenv(CENTRAL_EMAIL_ENV, fake.email)
        monkeypatch.setenv(CENTRAL_PASSWORD_ENV, fake.password)
        yield fake


@pytest.fixture
def listener() -> Iterator[Listener]:
    """A loopback server that records every request it gets."""
    with Listener() as other:
        yield other
