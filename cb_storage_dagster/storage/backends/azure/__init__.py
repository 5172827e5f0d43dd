"""Azure Blob Storage / ADLS Gen2 (Blob API), one job per module.

``backend`` (:class:`~.backend.AzureBlobBackend`: byte I/O, delta-rs URI and options),
``resolve`` (settings -> validated identity), ``identity`` (one credential model per kind,
for both clients), ``endpoint`` (account endpoint or emulator, ``AZURITE_BLOB_STORAGE_URL``),
``connection_string`` (parsing), ``transport`` (SDK retry policy and timeouts, the same budget
for delta-rs), ``errors`` (SDK and delta-rs errors into the project's), ``redaction`` (secrets
out of messages and logs).
"""
