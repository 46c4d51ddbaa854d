"""Fixtures shared by the API tests: one filled database served the way ``gpm-server`` serves it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gpm.api.app import create_app
from tests.api.support import NOW, fill, serve, server_context


@pytest.fixture(scope="session")
def filled_base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of the app over two days of history (the older one archived), clock at NOW."""
    data = tmp_path_factory.mktemp("filled")
    fill(data / "gpm.db", data / "archive", NOW)
    yield from serve(create_app(server_context(data, clock=lambda: NOW)))
