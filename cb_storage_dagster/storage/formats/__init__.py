"""Storage formats: Delta Lake (default), Parquet and JSON."""

from .base import FORMATS, FormatStore, ReadRequest
from .delta import DeltaFormat
from .files import FORMAT_MARKER, JsonFormat, ParquetFormat

__all__ = ["FORMATS", "FORMAT_MARKER", "DeltaFormat", "FormatStore", "JsonFormat", "ParquetFormat", "ReadRequest"]
