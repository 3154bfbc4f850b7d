"""Data: sources, splits, normalization and the DataModule that ties them together."""

from dlrecipe.data.info import DataInfo

__all__ = ["DataInfo"]
