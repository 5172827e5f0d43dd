"""Delta Lake through delta-rs: the table format, its fast reader, its SQL reader and its error translation."""
