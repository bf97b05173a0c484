# The two commands of the README, and their parts.
VENV := .venv
QO := $(VENV)/bin/quintupleo
PYTEST_ARGS ?=

.PHONY: demo test setup devcloud lint unit bench down

## demo: set up, bring the local cloud up, and run the main job on it: Nova servers driven as
## bare metal through the virtual BMC with ipmitool
demo: setup devcloud
	$(QO) devcloud smoke
	$(VENV)/bin/python scripts/demo.py

## test: set up, bring the local cloud up, and run every test
test: setup devcloud lint
	$(VENV)/bin/pytest -p no:cacheprovider --durations=25 $(PYTEST_ARGS)

setup:
	./scripts/setup.sh

devcloud:
	$(QO) devcloud up

## lint: ruff, and mypy (strict on quintupleo/; pyproject.toml [tool.mypy])
lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

unit: setup
	$(VENV)/bin/pytest tests/unit

bench: setup devcloud
	$(VENV)/bin/python bench/devcloud.py
	$(VENV)/bin/python bench/devcloud_vms.py
	$(VENV)/bin/python bench/bmc_ipmi.py
	$(VENV)/bin/python bench/bmc_redfish.py
	$(VENV)/bin/python bench/bmc_scale.py
	$(VENV)/bin/python bench/env.py
	$(VENV)/bin/python bench/pxe.py
	$(VENV)/bin/python bench/lab.py
	$(VENV)/bin/python bench/ironic.py
	$(VENV)/bin/python bench/agent_build.py
	$(VENV)/bin/python bench/hostile.py

down:
	$(QO) devcloud down
