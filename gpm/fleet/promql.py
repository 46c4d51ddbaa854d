"""A small client for Prometheus' HTTP query API (``/api/v1/query``), and anything that speaks
it (Thanos, Mimir, VictoriaMetrics): instant queries, with a bearer token or basic auth."""

from __future__ import annotations

import math
from dataclasses import dataclass

import aiohttp


class PromQLError(Exception):
    """Prometheus could not answer; the message says what happened and where."""


@dataclass(frozen=True, slots=True)
class Series:
    labels: dict[str, str]
    value: float | None  # None for NaN (e.g. a quantile over no traffic)


class Prometheus:
    def __init__(
        self,
        url: str,
        *,
        bearer_token: str = "",
        username: str = "",
        password: str = "",
        timeout: float = 5.0,
    ) -> None:
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {bearer_token}"} if bearer_token else {}
        self._auth = aiohttp.BasicAuth(username, password) if username else None
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def query(self, session: aiohttp.ClientSession, promql: str) -> list[Series]:
        """The instant vector ``promql`` evaluates to now."""
        try:
            async with session.get(
                f"{self.url}/api/v1/query",
                params={"query": promql},
                headers=self._headers,
                auth=self._auth,
                timeout=self._timeout,
            ) as resp:
                if resp.status in (401, 403):
                    raise PromQLError(
                        f"{self.url} refused the query ({resp.status}): check "
                        "fleet.bearer_token or fleet.username/password"
                    )
                body = await resp.json(content_type=None)
        except PromQLError:
            raise
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise PromQLError(
                f"Prometheus at {self.url} did not answer: {exc or 'timeout'}"
            ) from None
        if not isinstance(body, dict) or body.get("status") != "success":
            error = body.get("error") if isinstance(body, dict) else None
            raise PromQLError(f"Prometheus at {self.url} rejected {promql!r}: {error or body!r}")
        data = body.get("data") or {}
        if data.get("resultType") != "vector":
            raise PromQLError(f"{promql!r} did not give an instant vector")
        return [_series(item) for item in data.get("result", [])]


def _series(item: dict[str, object]) -> Series:
    labels = item.get("metric")
    sample = item.get("value")
    value: float | None = None
    if isinstance(sample, list) and len(sample) == 2:
        try:
            value = float(sample[1])
        except (TypeError, ValueError):
            value = None
    if value is not None and not math.isfinite(value):
        value = None
    return Series(
        {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}, value
    )
