"""Run engines: where the per-document processing runs (this process, worker processes, ...).

Every engine implements `base.Engine`; the scheduler talks to nothing else. A new engine (a
cluster, say) is a class with `slots`, `process()`, `stop()` and `aclose()` that runs the same
`processor.DocumentProcessor` per document.
"""
