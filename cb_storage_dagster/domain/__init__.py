"""Domain objects of the storage core: keys and the instrument codec, schemas and rules, errors, results.

Plain Python, no Dagster and no delta-rs import.
"""
