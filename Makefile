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

# Three processes, a test file each at a time: the suite mostly waits on real beat/worker processes and
# services, and every test has its own database, Redis database, RabbitMQ vhost and ports. The longest
# files go first (tests/file_order.py), so no process is left running one long file at the end.
test: install
	python -m pytest -q -n 3 --dist loadfile --no-loadscope-reorder
