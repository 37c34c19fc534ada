# The two set-up commands of the README.
.PHONY: demo test install

install:
	pip install -q -e '.[dev]'

demo: install
	tablebeat demo

test: install
	python -m pytest -q
