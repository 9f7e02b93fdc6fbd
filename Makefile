# Everything a fresh Debian 12 machine needs, as root: `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
DEBIAN_PACKAGES := python3-bpfcc python3-venv linux-headers-amd64 keepalived tshark iproute2 procps psmisc shellcheck ruby
# Stamp files make the set-up steps idempotent and quick on the second run.
STAMP := $(VENV)/.stamp

.PHONY: all setup system-packages kernel-headers venv demo test lint unit bench bench-quick clean

all: test

system-packages:
	@missing=""; for p in $(DEBIAN_PACKAGES); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	    echo "installing Debian packages:$$missing"; \
	    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@# Debian starts keepalived as a service on install; the lab runs its own copies only.
	@systemctl disable --now keepalived >/dev/null 2>&1 || true

kernel-headers: system-packages
	@sh deploy/kernel-headers.sh

$(STAMP): pyproject.toml
	@$(MAKE) --no-print-directory system-packages kernel-headers
	@test -x $(PY) || /usr/bin/python3 -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

setup: venv kernel-headers

lint: setup
	$(VENV)/bin/ruff check agent tests bench
	$(VENV)/bin/ruff format --check agent tests bench
	$(VENV)/bin/mypy

unit: setup
	$(PY) -m pytest tests/unit -q

test: setup lint
	$(PY) -m pytest -q

demo: setup
	$(PY) -m agent.lab demo

# Benchmarks against keepalived (not part of `make test`): tables, JSON and PNG charts
# under bench/results/. bench-quick is a one-minute smoke run.
bench: setup
	$(PY) -m pip install -q -e '.[test,bench]'
	$(PY) -m bench.run_all --plot

bench-quick: setup
	$(PY) -m pip install -q -e '.[test,bench]'
	$(PY) -m bench.run_all --quick

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .mypy_cache .ruff_cache
