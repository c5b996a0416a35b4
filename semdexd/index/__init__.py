"""Indexing: the change queue (`changes`), the pipeline prepare → embed → write with its crash
recovery (`pipeline`), what happened to a file (`kinds`), the store's health while writes fail
(`health`) and the stage timings (`metrics`)."""
