# Two commands: `make run` serves the demo, `make test` runs the whole suite.
VENV := .venv
PY := $(VENV)/bin/python
FLASK := $(VENV)/bin/flask --app moderation
PORT ?= 5000

.PHONY: run test install acceptance clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

instance/config.py:
	mkdir -p instance
	printf '# Written by make run for this machine; see instance/config.py.example.\nSECRET_KEY = "%s"\n' \
		"$$($(PY) -c 'import secrets; print(secrets.token_hex(32))')" > $@

run: install instance/config.py
	MODERATION_DEMO=true MODERATION_PUBLIC_URL=http://127.0.0.1:$(PORT) $(FLASK) init-db
	MODERATION_DEMO=true MODERATION_PUBLIC_URL=http://127.0.0.1:$(PORT) $(FLASK) demo
	MODERATION_DEMO=true MODERATION_PUBLIC_URL=http://127.0.0.1:$(PORT) \
		$(VENV)/bin/gunicorn wsgi:app -b 127.0.0.1:$(PORT) -w 2 --threads 4 --access-logfile -

# axe-core (npm) for the accessibility checks in the browser tests.
.cache/axe/node_modules/axe-core/axe.min.js:
	npm install --prefix .cache/axe --no-audit --no-fund axe-core@4 || echo "axe-core could not be installed: the accessibility checks will be skipped"

test: install .cache/axe/node_modules/axe-core/axe.min.js
	$(PY) -m pytest

acceptance: install
	../shared/acceptance/run

clean:
	rm -rf $(VENV) *.egg-info
