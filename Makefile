# SessionTrack: the human entry point. `make run` shows it working; `make test` proves it.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
export NX_DAEMON ?= false
export NX_NO_CLOUD ?= true
export npm_config_update_notifier := false

NODE_MODULES_STAMP := node_modules/.install-stamp

.PHONY: help setup proto build run test test-unit test-system lint bench loadtest tools clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(NODE_MODULES_STAMP): package.json package-lock.json $(wildcard */*/package.json) test/package.json operator/package.json loadtest/package.json
	@node -e 'const [a,b]=process.versions.node.split(".").map(Number); if (a<20||(a===20&&b<10)) { console.error("SessionTrack needs Node.js >= 20.10, found "+process.version); process.exit(1) }'
	npm ci --no-audit --no-fund
	@touch $@

setup: $(NODE_MODULES_STAMP) ## install dependencies (npm ci)

proto: setup ## regenerate packages/proto from protos/ (buf + ts-proto, options in buf.gen.yaml)
	npx buf generate

build: setup ## compile every package, service and test (tsc -b, incremental)
	npx tsc -b tsconfig.build.json

run: build ## start the embedded stack (ingest, index, archive on local disk) and show it working
	node packages/cli/bin/sessiontrack.js dev

lint: setup ## eslint (type-aware), prettier, buf lint/breaking, generated-code staleness
	npx nx show projects >/dev/null  # computes the project graph @nx/enforce-module-boundaries reads
	npx eslint --max-warnings=0 .
	npx prettier --check .
	bash scripts/check-proto.sh

test-unit: build tools ## unit and service tests (real gRPC servers on loopback, real MinIO, kube-apiserver, k6)
	node scripts/run-tests.mjs packages/errors packages/cohort packages/wal packages/runtime packages/client packages/redaction packages/testkit \
	  services/ingest services/archive services/index operator packages/cli loadtest

test-system: build tools ## system tests in test/ (pipeline, crash, outages, CRD, Helm)
	node scripts/run-tests.mjs test

test: build lint tools test-unit test-system ## install, build, lint, build the pinned tools and run every test

bench: build tools ## benchmarks: prints figures and writes .bench/latest.json
	node test/dist/bench/run.js

loadtest: build ## full k6 load test (bot overhead capture on vs off, degraded modes); report in loadtest/results/latest
	bash tools/build.sh k6
	node loadtest/dist/run.js --full

tools: ## build the pinned Go programs the tests need (see tools/README.md)
	bash tools/build.sh

clean: ## remove build output (keeps node_modules)
	rm -rf packages/*/dist services/*/dist operator/dist loadtest/dist test/dist .bench
