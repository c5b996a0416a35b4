"""Benchmarks run by ``semdexd bench NAME``: each module has ``main(argv, cfg) -> int``."""
