.DEFAULT_GOAL := help
VENV := .venv/bin

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

install: ## install everything the tests need (apt, .venv, toolchain deps)
	bash scripts/install.sh

run: ## run the sidecar (embedded store unless DEDUP_REDIS_URL is set)
	bash scripts/run.sh

test: ## the whole check: install, generated-code drift, lint, types, tests
	bash scripts/test.sh

lock: ## rewrite requirements/*.lock (hashed pins) from the pyproject.toml files; UPGRADE=1 takes newer versions
	$(VENV)/python scripts/lock.py $(if $(UPGRADE),--upgrade)

gen: ## regenerate every generated file from proto/
	PATH="$(CURDIR)/.venv/bin:$$PATH" bash scripts/gen.sh

lint: ## ruff check + format check
	$(VENV)/ruff check . && $(VENV)/ruff format --check .

fmt: ## ruff format + fixes
	$(VENV)/ruff format . && $(VENV)/ruff check --fix .

typecheck: ## mypy --strict on sidecar/
	$(VENV)/mypy

bench: ## benchmark vs Redis and a no-op gRPC server (docs/performance.md); ARGS="--smoke" for a quick run
	$(VENV)/python -m bench $(ARGS)

bench-pipeline: ## RabbitMQ + PostgreSQL consumers with vs without the sidecar (docs/performance.md); ARGS="--smoke"
	$(VENV)/python -m bench.pipeline $(ARGS)

image-lint: ## hadolint + Dockerfile checks (no Docker engine needed)
	$(VENV)/pytest -q tests/deploy/test_dockerfile.py

deploy-validate: ## render deploy/ overlays, validate schemas and posture, start as the manifest says
	$(VENV)/pytest -q tests/deploy

settings-table: ## rewrite the README settings table from sidecar/settings.py
	$(VENV)/python scripts/update-settings-table.py

.PHONY: help install run test lock gen lint fmt typecheck bench bench-pipeline image-lint deploy-validate settings-table
