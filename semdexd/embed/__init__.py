"""The embedding engine: model resolution and conversion, worker processes, the pool, the cache."""

from semdexd.system.lean import import_structlog

import_structlog()  # before this package's modules import it; first thing in a worker (semdexd.system.lean)
