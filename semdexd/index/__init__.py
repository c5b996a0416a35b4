"""Indexing: the change queue (`changes`) and the backlog of files awaiting vectors (`backlog`),
the pipeline's stages prepare → embed → write (`pipeline`), what a path needs (`prepare`), the
reconcile scan (`reconcile`), start-up crash recovery and poison files (`recovery`), the vector
copies an older index lacks (`backfill`), the store's health while writes fail (`health`) and the
stage timings (`metrics`)."""
