"""The one place that turns keys, scopes and filters into predicates.

Delta overwrites use SQL predicate strings (delta-rs/DataFusion); reads use pyarrow
expressions. Every value that reaches a SQL string is either a validated name
(:func:`~cb_storage_dagster.domain.keys.validate_name`), an ISO date, or a literal
escaped by :func:`sql_literal`; column names are checked and double-quoted.

``literals`` decides quoting and escaping once; ``writes`` builds the overwrite, delete,
merge and partition predicates; ``reads`` the filters, time ranges and scopes of reads.
Import them from here.
"""

from cb_storage_dagster.storage.sql.literals import quote_identifier, sql_literal, validate_column
from cb_storage_dagster.storage.sql.reads import (
    coin_filter,
    coins_expression,
    filters_expression,
    filters_sql,
    scope_read_sql,
    time_range_expression,
    time_range_sql,
    validate_filters,
)
from cb_storage_dagster.storage.sql.writes import (
    MERGE_SOURCE,
    MERGE_TARGET,
    delta_predicate,
    instrument_range_predicate,
    merge_predicates,
    partition_filters,
    partition_predicate,
)

__all__ = [
    "MERGE_SOURCE",
    "MERGE_TARGET",
    "coin_filter",
    "coins_expression",
    "delta_predicate",
    "filters_expression",
    "filters_sql",
    "instrument_range_predicate",
    "merge_predicates",
    "partition_filters",
    "partition_predicate",
    "quote_identifier",
    "scope_read_sql",
    "sql_literal",
    "time_range_expression",
    "time_range_sql",
    "validate_column",
    "validate_filters",
]
