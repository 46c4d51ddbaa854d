"""History: the SQLite database, its batched writer, Parquet retention, summaries and queries."""

from gpm.storage.archive import ArchiveError, RetentionReport, run_retention
from gpm.storage.db import SCHEMA_VERSION, DatabaseError, open_database
from gpm.storage.export import export, export_files
from gpm.storage.queries import Queries
from gpm.storage.summaries import refresh_weekly_summaries
from gpm.storage.writer import Writer

__all__ = [
    "SCHEMA_VERSION",
    "ArchiveError",
    "DatabaseError",
    "Queries",
    "RetentionReport",
    "Writer",
    "export",
    "export_files",
    "open_database",
    "refresh_weekly_summaries",
    "run_retention",
]
