"""Exports: a table over a time range as CSV, JSON or Parquet, streamed out."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from gpm.api.deps import BAD_PARAM, Ctx, Date, time_range
from gpm.storage.queries import Queries

PARQUET = "application/vnd.apache.parquet"
_MEDIA = {"csv": "text/csv", "json": "application/json", "parquet": PARQUET}

router = APIRouter(tags=["history"])


@router.get(
    "/api/export",
    response_class=StreamingResponse,
    responses={200: {"content": {media: {} for media in _MEDIA.values()}}, **BAD_PARAM},
)
def export(
    ctx: Ctx,
    start_date: Date = None,
    end_date: Date = None,
    format: Literal["csv", "json", "parquet"] = "csv",
    table: Literal["gpu_metrics", "llm_sessions", "process_events", "alerts"] = "gpu_metrics",
) -> StreamingResponse:
    start, end = time_range(start_date, end_date, ctx.clock())
    return StreamingResponse(
        _export_chunks(ctx.queries, table, start, end, format),
        media_type=_MEDIA[format],
        headers={"Content-Disposition": f'attachment; filename="gpm-{table}.{format}"'},
    )


def _export_chunks(
    queries: Queries, table: str, start: float, end: float, fmt: str
) -> Iterator[bytes]:
    """Run the export into a spooled buffer and stream it out in pieces."""
    import tempfile

    from gpm.storage.export import export

    with tempfile.SpooledTemporaryFile(max_size=8 * 2**20) as buf:
        export(queries, table=table, start=start, end=end, fmt=fmt, out=buf)  # type: ignore[arg-type]
        buf.seek(0)
        while chunk := buf.read(256 * 1024):
            yield chunk
