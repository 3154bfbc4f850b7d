"""Data sources: functions that load a data set into a `SourceData` (one file per kind of source)."""

from dlrecipe.data.sources.base import SourceData

__all__ = ["SourceData"]
