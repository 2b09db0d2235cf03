"""summarizer: documents in any language -> validated English JSON summaries via an LLM.

    import summarizer
    result = summarizer.summarize("CATL and Daimler signed ...", base_url="http://localhost:8080/v1")
    print(result.status, result.data.summary)

Names are imported on first use, so `import summarizer` (and `summarizer --help`) stays fast.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = [
    "Result", "Settings", "SchemaTraits", "summarize", "asummarize", "summarize_many", "asummarize_many",
    "load_schema", "English", "Key", "LinksTo", "SourceLanguage", "Summary", "Title", "Verbatim",
    "SummarizerError", "ConfigError", "InputError", "BackendError", "RunStopper", "ExtractionError",
    "__version__",
]

_WHERE = {
    "Result": "api", "summarize": "api", "asummarize": "api", "summarize_many": "api", "asummarize_many": "api",
    "Settings": "settings", "load_schema": "artifacts", "SchemaTraits": "traits",
    **{name: "traits" for name in ("English", "Key", "LinksTo", "SourceLanguage", "Summary", "Title", "Verbatim")},
    **{name: "errors" for name in ("SummarizerError", "ConfigError", "InputError", "BackendError", "RunStopper",
                                    "ExtractionError")},
}


def __getattr__(name: str) -> object:  # no `typing` import here: it costs 5 ms of every start-up
    if name in _WHERE:
        import importlib

        value = getattr(importlib.import_module(f"summarizer.{_WHERE[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'summarizer' has no attribute {name!r}")
