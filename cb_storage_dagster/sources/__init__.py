"""Market-data sources (Dagster resources): the synthetic default and ccxt for real exchanges."""
