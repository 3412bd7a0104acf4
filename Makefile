# jinliu — the two commands a newcomer needs: `make run` and `make test`.
# Everything else here is a convenience over cargo.

CARGO ?= cargo
LISTEN ?= 127.0.0.1:8080
DATA_DIR ?= ./data

.PHONY: run test fmt lint unit node-deps spec bench build release check-tools clean web web-if-possible web-test e2e

# The checkout front end (web/): rebuilt only when a source file is newer than web/dist/index.html,
# and `npm ci` runs only when package-lock.json is newer than what node_modules was installed from.
WEB_SRC := $(shell find web/src web/index.html web/package.json web/package-lock.json web/tsconfig.json \
	web/vite.config.ts web/vite.dropin.config.ts -type f 2>/dev/null)
WEB_DEPS := web/node_modules/.package-lock.json

## make run: build and start jinliu on http://127.0.0.1:8080 with the embedded SQLite store in ./data
## (builds the checkout front end first when web/dist is missing or stale and npm is installed)
run: check-tools web-if-possible
	$(CARGO) build --release -p jinliu-server
	./target/release/jinliu serve --listen $(LISTEN) --data-dir $(DATA_DIR)

## make test: format check, clippy -D warnings, then every test (unit, property, store conformance on
## SQLite, PostgreSQL and MariaDB, HTTP integration, sandbox flows, realtime with node and Redis), then the
## web unit tests (Vitest)
## and the browser end-to-end tests (Chromium)
test: check-tools fmt lint node-deps unit web-test e2e

## make web: build the checkout page and jinliu.js into web/dist (npm ci + vite build, only when needed)
web: web/dist/index.html

web/dist/index.html: $(WEB_SRC) $(WEB_DEPS)
	cd web && npm run build

$(WEB_DEPS): web/package-lock.json
	cd web && npm ci --no-audit --no-fund

web-if-possible:
	@if command -v npm >/dev/null 2>&1; then $(MAKE) --no-print-directory web; \
	elif [ -f web/dist/index.html ]; then echo "npm is missing: serving the web/dist already built (it may be stale)"; \
	else echo "npm is missing: the checkout page (/pay/...) stays unbuilt; install Node 20.19+ and run 'make web'"; fi

## make web-test: type-check the front end and its tests (vue-tsc), then its unit tests (Vitest)
web-test: $(WEB_DEPS)
	cd web && npx vue-tsc --noEmit && npx vitest run

## make e2e: the browser tests: Chromium drives the checkout page against the real binary
e2e: web
	@test -x "$${CHROMIUM_PATH:-/usr/bin/chromium}" || { echo "Chromium is missing: apt-get install -y chromium (.ci/run does it)"; exit 1; }
	$(CARGO) build -p jinliu-server
	cd web && JINLIU_BIN=../target/debug/jinliu node --test --test-concurrency=1 e2e/checkout.e2e.mjs

## make node-deps: the npm packages the integration tests run (socket.io-client, pinned by
## crates/server/tests/node/package-lock.json)
node-deps:
	@command -v npm >/dev/null 2>&1 || { echo "npm is missing: the Socket.IO test runs the real socket.io-client (apt install nodejs npm)"; exit 1; }
	cd crates/server/tests/node && npm ci --no-audit --no-fund

fmt:
	$(CARGO) fmt --all -- --check

lint:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

unit:
	$(CARGO) test --workspace --locked

## make spec: regenerate docs/api-spec.yaml and docs/security.md from the code
spec:
	$(CARGO) run -q -p jinliu-server -- openapi > docs/api-spec.yaml
	$(CARGO) run -q -p jinliu-server -- routes > docs/security.md

## make bench: the benchmark of docs/performance.md (release build); BENCH_ARGS passes flags,
## e.g. BENCH_ARGS="--postgres postgres://postgres@127.0.0.1:5432/postgres"
bench:
	$(CARGO) build --release -p jinliu-server
	./target/release/jinliu bench $(BENCH_ARGS)

build:
	$(CARGO) build --workspace

check-tools:
	@command -v $(CARGO) >/dev/null 2>&1 || { echo "cargo is missing: install Rust from https://rustup.rs"; exit 1; }
	@$(CARGO) fmt --version >/dev/null 2>&1 || { echo "rustfmt is missing: rustup component add rustfmt"; exit 1; }
	@$(CARGO) clippy --version >/dev/null 2>&1 || { echo "clippy is missing: rustup component add clippy"; exit 1; }

clean:
	$(CARGO) clean
