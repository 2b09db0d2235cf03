"""summarizer: documents in any language -> validated English JSON summaries via an LLM."""

__version__ = "0.1.0"
