"""The fixed choices of a few settings, in one place (no imports: the CLI's --help stays fast)."""

BACKENDS = ("auto", "openai", "local")
MODES = ("auto", "json_schema", "json_object", "tools")
TABLES = ("auto", "always", "never")
ENGINES = ("local", "ray")
REPORT_FORMATS = ("md", "html", "csv", "jsonl")
