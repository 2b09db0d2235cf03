# The project's two commands: `make run` (set up, summarize seeds/ into outputs/) and `make test`.
PY ?= python3
VENV ?= .venv
# llama.cpp is built from source; a native build crashes on these VMs (AMX), so pin the CPU features.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON

.PHONY: setup run test bench clean

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[local,test,ray]'
	# Bytecode for our own modules too (an editable install has none; PYTHONDONTWRITEBYTECODE may be set).
	$(VENV)/bin/python -m compileall -q summarizer schemas prompts
	touch $@

setup: $(VENV)/.installed

run: setup
	$(VENV)/bin/summarizer summarize seeds/

test: setup
	# The architecture's layers and the absence of import cycles (pyproject.toml [tool.importlinter]).
	$(VENV)/bin/lint-imports
	$(VENV)/bin/python -m pytest

bench: setup
	$(VENV)/bin/python bench/run_all.py

clean:
	rm -rf outputs/*.json outputs/run-*.jsonl
