# The two commands a newcomer needs (see README.md). Both set up .venv on first use.
PY := .venv/bin/python

.PHONY: demo test env

env:
	bash tools/setup_env.sh

demo: env
	bash tools/demo.sh

test: env
	$(PY) -m pytest tests -q
