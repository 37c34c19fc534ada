# The two set-up commands of the README, and the checks CI runs before the tests.
.PHONY: demo test install lint

install:
	pip install -q -e '.[dev]'

demo: install
	tablebeat demo

# Lint and format (ruff) and types (mypy, configured in pyproject.toml).
lint:
	ruff check .
	ruff format --check .
	mypy

test: install
	python -m pytest -q
