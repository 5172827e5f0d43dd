"""Delta Lake through delta-rs: the table format, its fast reader, its SQL reader and its error translation.

* ``table_format`` -- :class:`DeltaFormat`, the format the manager uses, composed of:
* ``tables`` -- open tables (readers' and writers' caches), creation race, layout check;
* ``commits`` -- the commit loop under the retry policy and its ``CommitReport``;
* ``write`` / ``read`` / ``listing`` -- replace, merge, delete; reads; instruments and days;
* ``scan`` (the fast path's allow-list and planner), ``pruning`` (which files, what each
  holds), ``cache`` (one bounded cache), ``sorting`` (row order), ``read_sql`` (DataFusion
  for every table the fast path refuses), ``errors`` (delta-rs errors to the project's).
"""
