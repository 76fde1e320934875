# Storefront: `make run` serves the shop on the embedded defaults; `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000
# Tests run in parallel processes, each with its own PostgreSQL database and Redis db.
TEST_WORKERS ?= 2

.PHONY: run test lint format venv dev-venv browser-deps nginx-deps deploy-venv deploy-check cluster-deps cluster cluster-env drill migrate seed clean

$(VENV)/.stamp-runtime: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.stamp-dev: $(VENV)/.stamp-runtime requirements-dev.txt
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

node_modules/.stamp: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

venv: $(VENV)/.stamp-runtime
dev-venv: $(VENV)/.stamp-dev

## Browser tests drive Debian's Chromium; Playwright never downloads a browser of its own.
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing Debian's chromium for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

## The deploy tests run `nginx -t` and a real nginx on the site in deploy/nginx (http2, ssl, realip: nginx-light has them).
nginx-deps:
	@test -x /usr/sbin/nginx || { \
		echo "installing Debian's nginx-light for the deploy tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light; }

## ansible-core and ansible-lint for the deploy tests and `make deploy-check`, apart from the app's venv.
.venv-deploy/.stamp: requirements-deploy.txt
	test -x .venv-deploy/bin/python || $(PYTHON) -m venv .venv-deploy
	.venv-deploy/bin/pip install -q -r requirements-deploy.txt
	touch $@

deploy-venv: .venv-deploy/.stamp

## Check the playbook without touching anything: syntax and ansible-lint.
deploy-check: deploy-venv
	cd deploy && ../.venv-deploy/bin/ansible-playbook --syntax-check site.yml
	cd deploy && ../.venv-deploy/bin/ansible-lint --profile production site.yml

## make cluster: the shop scaled out on 127.0.0.1 (nginx :8080, 2 web nodes, 2 workers, clock, Patroni + etcd
## PostgreSQL leader and replica, Redis :6400) until Ctrl-C; make cluster-env prints its environment;
## make drill runs the failure drills against a fresh one (results in test-output/drill/results.json).
cluster-deps:
	@{ command -v patroni && command -v etcd && command -v pgbackrest && test -x /usr/lib/postgresql/15/bin/postgres; } >/dev/null 2>&1 || { \
		echo "installing Debian's patroni, etcd-server, pgbackrest and postgresql-15 for the cluster"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq patroni etcd-server pgbackrest postgresql-15; }

cluster: venv nginx-deps cluster-deps
	$(BIN)/python -m tools.cluster up

cluster-env:
	@$(BIN)/python -m tools.cluster env

DRILL_TIMEOUT ?= 1800
drill: venv nginx-deps cluster-deps
	timeout $(DRILL_TIMEOUT) $(BIN)/python -m tools.drill

migrate: venv
	$(BIN)/alembic upgrade head

seed: migrate
	$(BIN)/flask --app wsgi seed-demo --if-empty

run: seed
	BIND=$(HOST):$(PORT) $(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

test: dev-venv node_modules/.stamp browser-deps nginx-deps deploy-venv
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup -m "not security"

## The attack battery (tests/security/, README "Security"): CSRF matrix, IDOR walk, sqlmap, slowloris against
## nginx and gunicorn, and a scan for card numbers. One process, bounded in time; each part prints its figures.
SECURITY_TIMEOUT ?= 1500
.PHONY: security security-deps
security: dev-venv security-deps nginx-deps
	timeout $(SECURITY_TIMEOUT) $(BIN)/python -m pytest tests/security -m security -p no:xdist -s -rA

## slowhttptest (Debian) for the slowloris test.
security-deps:
	@command -v slowhttptest >/dev/null 2>&1 || { \
		echo "installing Debian's slowhttptest for the slowloris test"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slowhttptest; }

lint: dev-venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: dev-venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .venv-deploy node_modules test-output .pytest_cache

## The flash-sale benchmark (bench/README.md): the shop as production runs it, on 127.0.0.1 only, every load
## bounded. `make bench` is the full run (ceilings, pages, checkout, payments by worker count, a 2,000-unit
## drop, scale), every fixed window three times and the median reported; `make bench-quick` a short one. Results in bench/results/, logs in test-output/bench/.
.PHONY: bench bench-quick bench-deps
bench: venv bench-deps
	$(BIN)/python -m bench.run --scale --repeat 3

bench-quick: venv bench-deps
	$(BIN)/python -m bench.run --quick

## The ceilings need Debian's nginx (the HTTP ceiling) and pgbench (the database ceilings).
bench-deps:
	@command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx && command -v pgbench >/dev/null 2>&1 || { \
		echo "installing nginx-light and postgresql-client for the benchmark's ceilings"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light postgresql-client; }

## Lighthouse on the shopper pages, phone profile, against the shop as production runs it on 127.0.0.1
## (tools/lighthouse.py): reports in test-output/lighthouse/, the summary in bench/results/.
## LIGHTHOUSE_REDIS_URL picks the Redis database (default redis://127.0.0.1:6379/3).
.PHONY: lighthouse
lighthouse: venv node_modules/.stamp browser-deps
	$(BIN)/python -m tools.lighthouse
