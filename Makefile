# ebpf.tc development entry points. Run as root on a Debian 12 machine; every target is idempotent.
#
#   make deps     Debian packages, the pinned .venv, bpffs mounted
#   make bpf      rebuild files/bpf/steering.bpf.o and steering_explain.bpf.o from their source (files/bpf/build.sh)
#   make test     pytest (unit, dataplane, integration; no skips) + the kernel matrix + make hosts + make controllers
#                 + ansible-test sanity + ansible-lint + the docs lint and site build (make docs-lint, make docs)
#                 + the molecule scenarios
#   make kernels  the kernel matrix: Debian's 6.1 and 6.12 kernels under qemu, running the dataplane tests
#   make hosts    the managed hosts' floor: host-side code checked for Python 3.9, module tests on 3.9 + pyroute2 0.7.2
#   make controllers  the oldest ansible-core supported (2.15): its unit tests, molecule default, a rollout in the lab
#   make docs     the docs site (antsibull-docs: plugin and role docs + docs/docsite guides) in .tmp/docs
#   make molecule the role's molecule scenarios (extensions/molecule/)
#   make demo     the fleet lab: the broken return path, ebpf.tc.rollout, the fixed path, per-rule counters
#   make bench    the benchmarks (benchmarks/README.md): per-packet cost, throughput, control plane
#   make clean    remove build and test debris (keeps .venv; `make distclean` removes it too)

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
VENV := $(ROOT)/.venv
PYTHON ?= python3
TMP := $(ROOT)/.tmp
LOGS := $(TMP)/logs
# SANITY_ROOT lets parallel runs use their own copy; SANITY_TARGETS limits the run to some files.
SANITY_ROOT ?= $(TMP)/sanity
SANITY_DIR := $(SANITY_ROOT)/ansible_collections/ebpf/tc
SANITY_TARGETS ?=
SANITY_PYTHON ?= 3.11

BPF_SRC := files/bpf/steering.bpf.c
BPF_OBJ := files/bpf/steering.bpf.o
# the explain build: the same source, classifying without writing anything (ebpf.tc.steering_explain)
BPF_EXPLAIN_OBJ := files/bpf/steering_explain.bpf.o

# clang/llvm/libbpf-dev/gcc-multilib: build BPF objects (gcc-multilib provides asm/types.h for -target bpf).
# libbpf1: loaded through ctypes. bpftool, iproute2: inspection and tc. python3-pyroute2: what targets use.
# openssh-server: the lab's per-namespace sshd. shellcheck: lets the ansible-test shellcheck test run.
# python3-venv: `python3 -m venv` with Debian's own python3.
# qemu-system-x86, busybox-static, cpio, kmod: the kernel matrix (guests, their initramfs, module lists).
APT_PACKAGES := bpftool busybox-static ca-certificates clang cpio gcc-multilib git iproute2 iputils-ping kmod \
	libbpf-dev libbpf1 linux-libc-dev llvm make netcat-openbsd openssh-server procps python3 python3-pyroute2 \
	python3-venv qemu-system-x86 shellcheck

VENV_STAMP := $(VENV)/.requirements-dev.stamp

# Everything the venv provides comes first on PATH (ansible-test, ansible-lint, ansible-galaxy).
export PATH := $(VENV)/bin:$(PATH)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help deps apt-deps venv bpffs bpf pytest kernels hosts controllers sanity lint docs docs-lint test demo demo-down build clean distclean

help:
	@sed -n '3,15s/^# \{0,1\}//p' $(ROOT)/Makefile

deps: apt-deps venv bpffs

# apt-get update only when a package is missing: a no-op run costs one dpkg-query.
apt-deps:
	@missing=$$(for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${db:Status-Status}\n' "$$p" 2>/dev/null | grep -qx installed || echo "$$p"; \
	done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq; \
		apt-get install -y -qq --no-install-recommends $$missing; \
	fi

venv: $(VENV_STAMP)

$(VENV_STAMP): $(ROOT)/requirements-dev.txt | apt-deps
	@[ -x $(VENV)/bin/python ] || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q -r $(ROOT)/requirements-dev.txt
	$(VENV)/bin/python -m pip check
	@touch $@

bpffs:
	@mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf

# Always rebuilds (it takes a second and is reproducible); the rebuild check in the tests runs the same script.
bpf: apt-deps
	cd $(ROOT) && files/bpf/build.sh $(BPF_SRC) $(BPF_OBJ)
	cd $(ROOT) && files/bpf/build.sh $(BPF_SRC) $(BPF_EXPLAIN_OBJ) -DSTEERING_EXPLAIN

# EBPF_TC_FORBID_SKIPS=1 makes tests/conftest.py fail the run if any test skips: under `make test` the
# root tests run for real. "No tests collected" (pytest exit 5) is a failure too.
# The module and restore integration tests (HOST_TESTS) are make hosts', run there on the hosts' floor.
pytest: deps
	@mkdir -p $(LOGS)
	cd $(ROOT) && EBPF_TC_FORBID_SKIPS=1 $(VENV)/bin/python -m pytest \
		$(addprefix --ignore=,$(wildcard $(addprefix $(ROOT)/,$(HOST_TESTS)))) 2>&1 | tee $(LOGS)/pytest.log

# The kernel matrix (tests/kernels/test_matrix.py, tools/kernelmatrix.py): the newest 6.1 and 6.12 kernel
# packages apt offers (cached in .tmp/kernels/), each booted under qemu with this machine's root shared
# read-only, running the dataplane tests and an attach-and-traffic test; a guard object must fail on 6.1.
kernels: deps
	@mkdir -p $(LOGS)
	cd $(ROOT) && EBPF_TC_FORBID_SKIPS=1 $(VENV)/bin/python -m pytest tests/kernels 2>&1 | tee $(LOGS)/kernels.log

# The managed hosts' floor: everything that runs on a host (modules, module_utils, the role's metrics script,
# the restore code) under the oldest Python a supported host runs, 3.9 (RHEL 9), with the oldest pyroute2,
# 0.7.2 (Debian 12). vermin checks syntax and standard-library use against 3.9, the real 3.9 compiles every
# file, and the module and restore integration tests run their modules with it (EBPF_TC_TARGET_PYTHON): they
# run here only, while the other integration tests (traffic, TCX, the role...) run the same modules with .venv's
# Python and newest pyroute2 in make pytest.
HOST_PYTHON_VERSION := 3.9
HOST_VENV := $(TMP)/venv-host
HOST_STAMP := $(HOST_VENV)/.requirements-host.stamp
HOST_CODE := plugins/modules plugins/module_utils roles/steering/files
HOST_TESTS := tests/integration/test_module_*.py tests/integration/test_restore.py
hosts: deps $(HOST_STAMP)
	@mkdir -p $(LOGS)
	$(HOST_VENV)/bin/python -c 'import sys, pyroute2; print("hosts: Python %s, pyroute2 %s" % (sys.version.split()[0], pyroute2.__version__))'
	cd $(ROOT) && vermin --target=$(HOST_PYTHON_VERSION)- --violations --no-tips --eval-annotations $(HOST_CODE)
	cd $(ROOT) && PYTHONPYCACHEPREFIX=$(TMP)/pycache-host $(HOST_VENV)/bin/python -m compileall -q $(HOST_CODE) >/dev/null
	cd $(ROOT) && EBPF_TC_FORBID_SKIPS=1 EBPF_TC_TARGET_PYTHON=$(HOST_VENV)/bin/python \
		$(VENV)/bin/python -m pytest $(HOST_TESTS) 2>&1 | tee $(LOGS)/hosts.log

$(HOST_STAMP): $(ROOT)/requirements-host.txt
	@rm -rf $(HOST_VENV)
	python=$$($(ROOT)/tools/find-python $(HOST_PYTHON_VERSION)) && $$python -m venv $(HOST_VENV)
	$(HOST_VENV)/bin/python -m pip install -q -r $(ROOT)/requirements-host.txt
	@touch $@

# The controller matrix: the current ansible-core is .venv's, under every other step; the oldest supported, 2.15,
# runs here from its own venv: the unit tests that use Ansible (the filter plugin; the modules' docs and argument
# specs through ansible-doc; the other unit tests import nothing of it), the molecule default scenario
# (molecule from .venv driving 2.15's ansible-playbook, which verify.yml checks) and the rollout in the lab up
# to a fixed return path and a re-run that changes nothing (its report names the core that ran it).
CORE215_UNIT := tests/unit/test_filter_steering_hooks.py tests/unit/test_module_docs.py
CORE215_VENV := $(TMP)/venv-core215
CORE215_STAMP := $(CORE215_VENV)/.requirements.stamp
CORE215_VERSION = $(shell sed -n 's/^ansible-core==//p' $(ROOT)/requirements-core215.txt)
CORE215_ROLLOUT := $(addprefix tests/integration/test_rollout.py::test_,return_path_broken_without_steering \
	rollout_fixes_the_return_path rerun_changes_nothing)
controllers: deps $(CORE215_STAMP)
	@mkdir -p $(LOGS) $(TMP)/collections/ansible_collections/ebpf
	@[ -L $(TMP)/collections/ansible_collections/ebpf/tc ] || ln -s $(ROOT) $(TMP)/collections/ansible_collections/ebpf/tc
	cd $(ROOT) && EBPF_TC_FORBID_SKIPS=1 $(CORE215_VENV)/bin/python -m pytest $(CORE215_UNIT) $(CORE215_ROLLOUT) \
		2>&1 | tee $(LOGS)/controllers.log
	@cd $(ROOT) && trap tools/molecule-sweep EXIT; \
	if PATH=$(CORE215_VENV)/bin:$$PATH EBPF_TC_EXPECT_ANSIBLE_CORE=$(CORE215_VERSION) NO_COLOR=1 \
		$(VENV)/bin/python -m molecule test -s default > $(LOGS)/controllers-molecule.log 2>&1; then \
		echo "molecule default with ansible-core $(CORE215_VERSION): ok"; \
	else echo "molecule default with ansible-core $(CORE215_VERSION): FAILED"; tail -n 40 $(LOGS)/controllers-molecule.log; exit 1; fi

$(CORE215_STAMP): $(ROOT)/requirements-core215.txt
	@rm -rf $(CORE215_VENV)
	$(PYTHON) -m venv $(CORE215_VENV)
	$(CORE215_VENV)/bin/python -m pip install -q -r $(ROOT)/requirements-core215.txt
	$(CORE215_VENV)/bin/python -m pip check
	@touch $@

# ansible-test wants to run from .../ansible_collections/<namespace>/<name>: sanity-check a fresh copy of
# the files git would track (tracked + untracked-not-ignored), so debris in the tree never counts.
sanity: deps
	@rm -rf $(SANITY_ROOT)
	@mkdir -p $(SANITY_DIR) $(LOGS)
	@cd $(ROOT); git ls-files -z -co --exclude-standard \
		| while IFS= read -r -d '' f; do \
			case "$$f" in .ansible/*) continue;; esac; \
			[ -e "$$f" ] || [ -L "$$f" ] && printf '%s\0' "$$f" || true; \
		done \
		| xargs -0r cp -a --parents -t $(SANITY_DIR)
	@# ansible-test bootstraps pip in each sanity venv with a script from ci-files.testing.ansible.com, which
	@# is unreachable here: cache our stand-in under its name (a real download found there is kept).
	@pip_version=$$(sed -n "s/^ *pip='\([0-9.]*\)',$$/\1/p" \
		"$$($(VENV)/bin/python -c 'import ansible_test, os; print(os.path.dirname(ansible_test.__file__))')/_internal/python_requirements.py"); \
	[ -n "$$pip_version" ] || { echo "cannot tell which pip ansible-test bootstraps" >&2; exit 1; }; \
	cached="$$HOME/.ansible/test/cache/get_pip_$${pip_version//./_}.py"; \
	if [ ! -e "$$cached" ] || grep -q 'Offline stand-in for ansible-test' "$$cached"; then \
		install -D -m 0644 $(ROOT)/.ci/ansible_test_get_pip.py "$$cached"; \
	fi
	@# Its own (empty) git repository: otherwise ansible-test asks the enclosing checkout, which ignores .tmp/.
	@cd $(SANITY_DIR) && git init -q .
	cd $(SANITY_DIR) && ansible-test sanity --venv --python $(SANITY_PYTHON) --color no $(SANITY_TARGETS) 2>&1 | tee $(LOGS)/sanity$(if $(SANITY_TARGETS),-partial).log

lint: deps
	@mkdir -p $(LOGS)
	@# the collection on the collections path, so ansible-lint checks our modules' arguments instead of mocking them
	@mkdir -p $(TMP)/collections/ansible_collections/ebpf
	@[ -L $(TMP)/collections/ansible_collections/ebpf/tc ] || ln -s $(ROOT) $(TMP)/collections/ansible_collections/ebpf/tc
	cd $(ROOT) && ANSIBLE_COLLECTIONS_PATH=$(TMP)/collections ansible-lint --nocolor 2>&1 | tee $(LOGS)/lint.log

# Molecule scenarios (extensions/molecule/): the role on hosts that are network namespaces. Every scenario
# runs `molecule test` at the same time as the others (their namespaces, pins and files never overlap; molecule's
# own --workers would share one create/destroy), each logging to .tmp/logs/molecule-<scenario>.log. Whatever
# the outcome, the sweep removes what a killed run may have left: namespaces and pins named ebtcm-*, and the
# shared pin parents once empty (every file, the unit included, goes under the scenario's ephemeral directory).
.PHONY: molecule
molecule: deps
	@mkdir -p $(LOGS) $(TMP)/collections/ansible_collections/ebpf
	@[ -L $(TMP)/collections/ansible_collections/ebpf/tc ] || ln -s $(ROOT) $(TMP)/collections/ansible_collections/ebpf/tc
	@cd $(ROOT); \
	trap tools/molecule-sweep EXIT; \
	scenarios=$$(cd extensions/molecule && for f in */molecule.yml; do dirname "$$f"; done); \
	for s in $$scenarios; do \
		(NO_COLOR=1 molecule test -s "$$s" > $(LOGS)/molecule-$$s.log 2>&1; echo $$? > $(LOGS)/molecule-$$s.rc) & \
	done; \
	wait; rc=0; \
	for s in $$scenarios; do \
		if [ "$$(cat $(LOGS)/molecule-$$s.rc)" = 0 ]; then echo "molecule $$s: ok"; else \
			rc=1; echo "molecule $$s: FAILED ($(LOGS)/molecule-$$s.log ends with:)"; \
			tail -n 40 $(LOGS)/molecule-$$s.log | sed 's/^/    /'; \
		fi; \
	done; \
	exit $$rc

# The docs site: antsibull-docs renders the modules', role's and filters' own documentation plus the guides
# of docs/docsite/ (extra-docs.yml, links.yml) to RST, Sphinx makes HTML of it. sphinx-init's conf.py maps
# docs.ansible.com and docs.python.org for intersphinx, which an offline machine cannot fetch (each fetch
# fails or waits for its timeout, then warns): the build drops the intersphinx extension instead. Then the only
# warnings that are not about our docs are references the generated pages make to the Ansible docsite and
# to other collections (undefined labels outside ansible_collections.ebpf.tc.*), which intersphinx would
# have resolved; every other warning - a broken reference or bad RST of ours - fails the build.
DOCS_DIR := $(TMP)/docs
DOCS_EXTENSIONS := sphinx.ext.autodoc,sphinx_antsibull_ext

docs: deps
	@mkdir -p $(TMP)/collections/ansible_collections/ebpf
	@[ -L $(TMP)/collections/ansible_collections/ebpf/tc ] || ln -s $(ROOT) $(TMP)/collections/ansible_collections/ebpf/tc
	@# antsibull-docs refuses a destination others can write to; a fresh one each time keeps no stale page
	@rm -rf $(DOCS_DIR) && mkdir -p -m 0755 $(DOCS_DIR) && mkdir -m 0755 $(DOCS_DIR)/rst
	cd $(DOCS_DIR) && ANSIBLE_COLLECTIONS_PATH=$(TMP)/collections antsibull-docs sphinx-init --use-current \
		--squash-hierarchy --fail-on-error --dest-dir . --project ebpf.tc --copyright 'ebpf.tc contributors' \
		--title ebpf.tc ebpf.tc >/dev/null
	cd $(DOCS_DIR) && ANSIBLE_COLLECTIONS_PATH=$(TMP)/collections antsibull-docs --config-file antsibull-docs.cfg \
		collection --use-current --squash-hierarchy --fail-on-error --cleanup everything --dest-dir rst ebpf.tc
	@# stderr repeats warnings.log (where the filter below looks), so it is shown only when Sphinx fails
	cd $(DOCS_DIR) && sphinx-build -M html rst build -c . -q --keep-going -D extensions=$(DOCS_EXTENSIONS) \
		-w warnings.log 2>sphinx.log || { cat sphinx.log; exit 1; }
	@! grep -vP "WARNING: undefined label: '(?!ansible_collections\.ebpf\.tc\.)[^']*' \[ref\.ref\]$$" \
		$(DOCS_DIR)/warnings.log || { echo "docs: warnings above ($(DOCS_DIR)/warnings.log)" >&2; exit 1; }
	@echo "docs: $(DOCS_DIR)/build/html/index.html"

# The docs lint, fast and offline: the plugin and role docs (schema, markup, references, rstcheck of the RST
# they generate), the guides (rstcheck, label prefixes, extra-docs.yml, references to collection objects),
# links.yml, and the changelog fragments. References to ebpf.tc and ansible.builtin are checked; those to
# collections we do not depend on (community.general) cannot be, and are accepted.
docs-lint: deps
	cd $(ROOT) && antsibull-docs lint-collection-docs --plugin-docs --check-extra-docs-refs \
		--validate-collection-refs dependent .
	cd $(ROOT) && antsibull-changelog lint

# Runs every step even when one fails, then prints one line per step and exits non-zero on any failure.
test: deps
	@mkdir -p $(LOGS); : > $(LOGS)/summary; rc=0; \
	for step in pytest kernels hosts controllers sanity lint docs-lint docs molecule; do \
		start=$$(date +%s); \
		if $(MAKE) --no-print-directory $$step; then res=ok; else res=FAILED; rc=1; fi; \
		echo "$$step: $$res ($$(( $$(date +%s) - start ))s)" >> $(LOGS)/summary; \
	done; \
	echo; echo "==== make test summary ===="; \
	echo "pytest: $$(grep -E '^=+ .* in [0-9.]+s' $(LOGS)/pytest.log | tail -n1 || echo 'no summary line')"; \
	echo "hosts (Python $(HOST_PYTHON_VERSION), pyroute2 0.7.2): $$(grep -E '^=+ .* in [0-9.]+s' $(LOGS)/hosts.log | tail -n1 || echo 'no summary line')"; \
	echo "controllers (ansible-core $(CORE215_VERSION)): $$(grep -E '^=+ .* in [0-9.]+s' $(LOGS)/controllers.log | tail -n1 || echo 'no summary line')"; \
	sed -n 's/^\(kernel\|guard\) /  &/p' $(LOGS)/kernels.log 2>/dev/null || true; \
	cat $(LOGS)/summary; \
	exit $$rc

# The fleet lab (tools/fleetlab.py) in $(DEMO_DIR): NODES=4 nodes over real SSH; KEEP=1 leaves it up at the end
# (then `make demo-down` removes it). The collection is used in place, through the same link as the tests.
DEMO_DIR ?= $(TMP)/demo-lab
NODES ?= 4
KEEP ?=

demo: deps
	@mkdir -p $(TMP)/collections/ansible_collections/ebpf
	@[ -L $(TMP)/collections/ansible_collections/ebpf/tc ] || ln -s $(ROOT) $(TMP)/collections/ansible_collections/ebpf/tc
	cd $(ROOT) && NODES=$(NODES) KEEP=$(KEEP) $(VENV)/bin/python scripts/demo.py --dir $(DEMO_DIR)

demo-down:
	cd $(ROOT) && $(VENV)/bin/python tools/fleetlab.py down --dir $(DEMO_DIR)

# Benchmarks (benchmarks/README.md), never part of `make test`: results in benchmarks/results/.
# BENCH_ARGS passes options, e.g. `make bench BENCH_ARGS='--quick'` or `BENCH_ARGS='--only dataplane'`.
BENCH_APT_PACKAGES := iperf3 iptables nftables
BENCH_STAMP := $(VENV)/.requirements-bench.stamp
BENCH_ARGS ?=

.PHONY: bench
bench: deps $(BENCH_STAMP)
	@$(MAKE) --no-print-directory apt-deps APT_PACKAGES='$(BENCH_APT_PACKAGES)'
	cd $(ROOT) && $(VENV)/bin/python benchmarks/run.py $(BENCH_ARGS)

$(BENCH_STAMP): $(ROOT)/benchmarks/requirements.txt $(VENV_STAMP)
	$(VENV)/bin/python -m pip install -q -r $(ROOT)/benchmarks/requirements.txt
	$(VENV)/bin/python -m pip check
	@touch $@

# The Galaxy artifact, to check what build_ignore leaves in it.
build: venv
	@mkdir -p $(TMP)/dist
	cd $(ROOT) && ansible-galaxy collection build --force --output-path $(TMP)/dist

clean:
	rm -rf $(TMP) $(ROOT)/.pytest_cache $(ROOT)/.hypothesis $(ROOT)/.ansible $(ROOT)/ebpf-tc-*.tar.gz
	find $(ROOT) -path $(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
