"""The embedding engine: model resolution and conversion, worker processes, the pool, the cache."""
