# Every target creates .venv when it is missing, so a fresh clone needs only Python >= 3.11.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo lint types bench clean kube

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP)
	$(BIN)/mypy

test: lint types
	$(BIN)/pytest -q

# kube-apiserver + kube-controller-manager 1.20.2 (Debian source package) and etcd for tests/kube;
# cached in ~/.cache/rollback-bot/kube-1.20.2 (about 11 min cold, about 0 s when cached)
kube:
	scripts/kube-build.sh

demo: $(STAMP)
	$(BIN)/rollback-bot console --demo

bench: $(STAMP)
	$(BIN)/python benchmarks/ack_latency.py
	$(BIN)/python benchmarks/ack_cpu.py
	$(BIN)/python benchmarks/assessment_latency.py
	$(BIN)/python benchmarks/engine_overhead.py
	$(BIN)/python benchmarks/fanout.py
	$(BIN)/python benchmarks/vote_under_load.py
	$(BIN)/python benchmarks/idle_cpu.py
	$(BIN)/python benchmarks/guard_round.py
	$(BIN)/python benchmarks/guard_latency.py
	$(BIN)/python benchmarks/regions.py
	$(BIN)/python benchmarks/drill.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
