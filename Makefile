# ModelSwitch — make targets. `make run` and `make test` work on a fresh machine.

CARGO      ?= cargo
VENV       := target/sdk-venv
PY         := $(VENV)/bin/python
MOCK_ADDR  ?= 127.0.0.1:9100
CONFIG     ?= conf/modelswitch.toml
# Dummy credentials so every example config validates without real secrets.
EXAMPLE_ENV := OPENAI_API_KEY=sk-example ANTHROPIC_API_KEY=sk-example DEEPSEEK_API_KEY=sk-example \
               DASHSCOPE_API_KEY=sk-example ZHIPU_API_KEY=sk-example MOONSHOT_API_KEY=sk-example \
               OPENROUTER_API_KEY=sk-example SILICONFLOW_API_KEY=sk-example \
               ZHIPUAI_API_KEY=sk-example ZAI_API_KEY=sk-example ARK_API_KEY=sk-example \
               MINIMAX_API_KEY=sk-example GEMINI_API_KEY=sk-example XAI_API_KEY=sk-example \
               GROQ_API_KEY=sk-example MISTRAL_API_KEY=sk-example TOGETHER_API_KEY=sk-example \
               FIREWORKS_API_KEY=sk-example INHOUSE_KEY_1=sk-example INHOUSE_KEY_2=sk-example \
               GATEWAY_B_TOKEN=tok-example CORP_LLM_PASSWORD=pw-example

NODE_DIR   := target/node
UI_DIR     := target/ui
CLI_DIR    := target/cli

.PHONY: all deps node-deps chromium-deps ui build release run test test-rust test-sdk test-node test-cli test-ui check-config lint fmt clean bench bench-load fuzz

all: build

## What a fresh machine lacks: pingora-core builds zlib-ng with cmake; the SDK
## tests need python3 with venv; the Redis limiter tests start redis-server;
## the Postgres store tests start PostgreSQL (Debian's postgresql package);
## the Postgres TLS test makes its certificates with openssl; the TLS tests
## check what curl negotiates (HTTP/2 by ALPN, h2c).
## Installs them with apt-get when run as root.
deps:
	@command -v cmake >/dev/null 2>&1 || { \
	  echo "installing cmake (needed to build pingora-core)"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq cmake >/dev/null; \
	  else echo "cmake is missing: run 'sudo apt-get install -y cmake'"; exit 1; fi; }
	@python3 -c 'import venv, ensurepip' 2>/dev/null || { \
	  echo "installing python3-venv (needed for the SDK tests)"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null; \
	  else echo "python3-venv is missing: run 'sudo apt-get install -y python3-venv'"; exit 1; fi; }
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "installing redis-server (the Redis limiter tests start their own)"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; \
	  else echo "redis-server is missing: run 'sudo apt-get install -y redis-server'"; exit 1; fi; }
	@ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || { \
	  echo "installing postgresql (the Postgres store tests start their own server)"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq postgresql >/dev/null; \
	  else echo "postgresql is missing: run 'sudo apt-get install -y postgresql'"; exit 1; fi; }
	@command -v openssl >/dev/null 2>&1 || { \
	  echo "installing openssl (the TLS tests make their certificates with it)"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq openssl >/dev/null; \
	  else echo "openssl is missing: run 'sudo apt-get install -y openssl'"; exit 1; fi; }
	@command -v curl >/dev/null 2>&1 || { \
	  echo "installing curl (the TLS tests check what it negotiates)"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq curl >/dev/null; \
	  else echo "curl is missing: run 'sudo apt-get install -y curl'"; exit 1; fi; }

## Debian's Chromium for the browser tests of the web UI (never a browser
## a test tool downloads).
chromium-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing chromium (the web UI's browser tests drive it headless)"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is missing: run 'sudo apt-get install -y chromium'"; exit 1; fi; }
	@fc-list :lang=zh 2>/dev/null | grep -q . || { \
	  echo "installing fonts-noto-cjk (the Chinese UI's screenshots need a CJK font)"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq fonts-noto-cjk >/dev/null; \
	  else echo "no CJK font: run 'sudo apt-get install -y fonts-noto-cjk'"; fi; }

## Node and npm for the Node SDK and agent CLI tests: Debian's packages when
## run as root and absent (the machine image brings Node 20).
node-deps:
	@command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || { \
	  echo "installing nodejs and npm (needed for the Node SDK and agent CLI tests)"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null; \
	  else echo "node/npm are missing: run 'sudo apt-get install -y nodejs npm' (Node 20 or newer)"; exit 1; fi; }

## The web UI: its npm packages (pinned by src/admin/ui's lockfile) under
## target/ui, bundled by esbuild into target/ui/dist, which build.rs embeds
## in the binary. The bundle is rewritten only where it changed, so an
## unchanged UI does not rebuild the gateway.
$(UI_DIR)/.installed: src/admin/ui/package.json src/admin/ui/package-lock.json | node-deps
	mkdir -p $(UI_DIR)
	cp src/admin/ui/package.json src/admin/ui/package-lock.json $(UI_DIR)/
	cd $(UI_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

ui: $(UI_DIR)/.installed
	rm -rf $(UI_DIR)/app && cp -r src/admin/ui/app $(UI_DIR)/app
	cd $(UI_DIR) && node app/build.mjs dist

build: deps ui
	$(CARGO) build --bins

release: deps ui
	$(CARGO) build --release --bins

## The gateway on conf/modelswitch.toml, with the bundled mock upstream as its
## provider: try `curl` from the README against it.
run: release
	@target/release/mock-upstream --listen $(MOCK_ADDR) & mock=$$!; \
	trap 'kill $$mock 2>/dev/null' EXIT INT TERM; \
	target/release/modelswitch --config $(CONFIG)

## Every test: unit, integration over real sockets, official SDK clients
## (Python and Node), the agent CLIs, config validation and lints.
test: build lint check-config test-rust test-sdk test-node test-cli test-ui

test-rust:
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
	  $(CARGO) nextest run --workspace --no-fail-fast; \
	else \
	  $(CARGO) test --workspace --no-fail-fast; \
	fi

$(VENV)/.installed: tests/sdk/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r tests/sdk/requirements.txt
	touch $@

## openai, anthropic and google-genai (Python) against the gateway over every
## upstream dialect (MODELSWITCH_TEST_UPSTREAMS=openai,anthropic narrows it).
test-sdk: build $(VENV)/.installed
	cd tests/sdk && MODELSWITCH_BIN_DIR=$(CURDIR)/target/debug ../../$(PY) -m pytest -q

## The Node SDKs (openai, @anthropic-ai/sdk), pinned by tests/node's lockfile,
## installed under target/node.
$(NODE_DIR)/.installed: tests/node/package.json tests/node/package-lock.json | node-deps
	mkdir -p $(NODE_DIR)
	cp tests/node/package.json tests/node/package-lock.json $(NODE_DIR)/
	cd $(NODE_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

test-node: build $(NODE_DIR)/.installed
	MODELSWITCH_BIN_DIR=$(CURDIR)/target/debug MODELSWITCH_NODE_DIR=$(CURDIR)/$(NODE_DIR) \
	  node --test --test-concurrency=1 --test-timeout=60000 tests/node/test/

## Claude Code and Codex from npm (pinned by tests/cli's lockfile) under
## target/cli, each running a two-turn shell task through the gateway to every
## upstream dialect; loopback only, each run bounded (120 s).
$(CLI_DIR)/.installed: tests/cli/package.json tests/cli/package-lock.json | node-deps
	mkdir -p $(CLI_DIR)
	cp tests/cli/package.json tests/cli/package-lock.json $(CLI_DIR)/
	cd $(CLI_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

test-cli: build $(VENV)/.installed $(CLI_DIR)/.installed
	cd tests/cli && MODELSWITCH_BIN_DIR=$(CURDIR)/target/debug MODELSWITCH_CLI_DIR=$(CURDIR)/$(CLI_DIR) \
	  ../../$(PY) -m pytest -q

## The web UI in headless Chromium (Playwright for Python, driving the
## system browser) against a gateway and the mock; a screenshot of every
## page lands in target/ui-screenshots/.
$(VENV)/.installed-ui: tests/ui/requirements.txt $(VENV)/.installed
	$(VENV)/bin/pip install -q --disable-pip-version-check -r tests/ui/requirements.txt
	touch $@

test-ui: build chromium-deps $(VENV)/.installed-ui
	node --test src/admin/ui/app/src/
	cd tests/ui && MODELSWITCH_BIN_DIR=$(CURDIR)/target/debug \
	  MODELSWITCH_SCREENSHOTS=$(CURDIR)/target/ui-screenshots ../../$(PY) -m pytest -q

check-config: build
	@for f in conf/*.toml conf/examples/*.toml; do \
	  [ -f "$$f" ] || continue; \
	  env $(EXAMPLE_ENV) target/debug/modelswitch check --config "$$f" || exit 1; \
	done

## Micro-benchmarks (criterion), each against a baseline.
bench: deps
	$(CARGO) bench --bench transcode

## Direct vs nginx vs ModelSwitch under wrk, TTFB, a 10k-stream soak and a
## 2k-stream soak of 200 KB Anthropic prompts (SOAK_BIG=0 skips it), at
## WORKERS="1 2" (WORKERS=1 for one quicker run), with CPU per request of
## both proxies; records benches/README.md. GW_BIN=path benchmarks another
## ModelSwitch binary, SKIP_BUILD=1 skips cargo. Not part of `make test`.
bench-load: deps
	bash benches/load.sh

## Only the property tests, at FUZZ_CASES (a million) cases each, optimised but
## with overflow checks (profile.fuzz); long, so not part of `make test`.
FUZZ_CASES ?= 1000000
fuzz: deps
	PROPTEST_CASES=$(FUZZ_CASES) $(CARGO) test --profile fuzz -p filters --test 'prop_*'
	PROPTEST_CASES=$(FUZZ_CASES) $(CARGO) test --profile fuzz -p modelswitch --bin modelswitch -- upstream::http1::tests::prop_

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
