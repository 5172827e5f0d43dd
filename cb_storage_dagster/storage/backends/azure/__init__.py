"""Azure Blob Storage / ADLS Gen2 (Blob API): the backend, its identity and endpoint settings."""
