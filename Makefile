# jinliu — the two commands a newcomer needs: `make run` and `make test`.
# Everything else here is a convenience over cargo.

CARGO ?= cargo
LISTEN ?= 127.0.0.1:8080
DATA_DIR ?= ./data

.PHONY: run test fmt lint unit node-deps spec bench build release check-tools clean

## make run: build and start jinliu on http://127.0.0.1:8080 with the embedded SQLite store in ./data
run: check-tools
	$(CARGO) build --release -p jinliu-server
	./target/release/jinliu serve --listen $(LISTEN) --data-dir $(DATA_DIR)

## make test: format check, clippy -D warnings, then every test (unit, property, store conformance on
## SQLite, PostgreSQL and MariaDB, HTTP integration, sandbox flows, realtime with node and Redis)
test: check-tools fmt lint node-deps unit

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
