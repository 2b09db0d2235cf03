"""Run engines: where the per-document processing runs (this process, worker processes, ...).

Every engine implements `base.Engine`; the scheduler talks to nothing else. A new engine (a
cluster, say) is a class with `slots`, `process()`, `stop()` and `aclose()` that runs the same
`processor.DocumentProcessor` per document.
"""

# --engine NAME -> "module:Class" of an engine beyond this machine; "local" is this machine
# (in-process, or forked workers), chosen by the run itself. Imported only when chosen.
CLUSTER_ENGINES = {"ray": "summarizer.engines.ray:RayEngine"}


def cluster_engine(name: str) -> type | None:
    """The engine class --engine names, or None for this machine's own engines."""
    import importlib

    where = CLUSTER_ENGINES.get(name)
    if where is None:
        return None
    module, _, attr = where.partition(":")
    engine: type = getattr(importlib.import_module(module), attr)
    return engine
