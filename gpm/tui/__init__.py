"""``gpm top``: the live terminal view of GPUs, their processes and LLM traffic.

``feed`` gets the data (a running GPM's stream and API, or the GPUs read directly), ``cells``
draws it as text, ``app`` is the Textual screen. Textual is imported only here, when ``gpm top``
runs, so the other commands do not pay for it.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gpm.config import LoadedConfig
    from gpm.tui.feed import Feed


def run_top(
    loaded: LoadedConfig,
    *,
    url: str | None,
    token: str | None,
    interval: float,
    demo: bool,
    ascii_only: bool,
) -> int:
    """Run the view until the user quits; 0."""
    # A log line on stderr would tear the full-screen view: GPM's own messages stay off it.
    logging.getLogger().addHandler(logging.NullHandler())
    # Read before Textual starts: it takes NO_COLOR out of the environment. (The locale cannot
    # tell a terminal without Unicode: Python turns a C locale into C.UTF-8 for itself.)
    plain = ascii_only or "NO_COLOR" in os.environ
    feed = choose_feed(loaded, url=url, token=token, interval=interval, demo=demo)

    from gpm.tui.app import TopApp

    TopApp(feed, ascii_only=plain).run()
    return 0


def choose_feed(
    loaded: LoadedConfig, *, url: str | None, token: str | None, interval: float, demo: bool
) -> Feed:
    """Attached to the service at ``url`` (or the config's), or standalone: with ``demo``, or
    when no ``url`` was given and nothing answers at the config's address."""
    from gpm.tui.feed import AttachedFeed, StandaloneFeed, answers, service_url

    cfg = loaded.config
    if demo:
        return StandaloneFeed(cfg, interval=interval, demo=True)
    target = url or service_url(cfg.api)
    if url or answers(target):
        return AttachedFeed(target, token or cfg.api.token, interval)
    return StandaloneFeed(cfg, interval=interval, reason=f"no GPM service at {target}")
