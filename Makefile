# The README's commands. `make run` serves the portal with demo data (web server and task queue worker); `make test` runs the whole suite
# on real services (PostgreSQL, Ceph S3, Chromium, an SMTP sink).
VENV ?= .venv
PY := $(VENV)/bin/python
FLASK := $(VENV)/bin/flask --app portal
PYBABEL := $(VENV)/bin/pybabel
LANGS := de fr ar ru

.PHONY: run test bench bench-neardup bench-ocr soak drill venv assets translations translations-compile lint clean

$(VENV)/.installed: pyproject.toml
	scripts/ensure-tools.sh
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

static/vendor/htmx.min.js: node_modules/.package-lock.json
	mkdir -p static/vendor
	cp node_modules/htmx.org/dist/htmx.min.js static/vendor/htmx.min.js

# The device copy of typed forms (static/js/drafts.js): idb-keyval's UMD build, global `idbKeyval`.
static/vendor/idb-keyval.js: node_modules/.package-lock.json
	mkdir -p static/vendor
	cp node_modules/idb-keyval/dist/umd.js static/vendor/idb-keyval.js

# Resumable uploads (Uppy core + tus + Golden Retriever and our shrinking rules) as one minified IIFE;
# loaded only on pages with an upload field (templates/uploads/_script.html).
static/vendor/uploads.js: node_modules/.package-lock.json static/js/src/uploads.js
	mkdir -p static/vendor
	node_modules/.bin/esbuild static/js/src/uploads.js --bundle --minify --format=iife --target=es2020 \
	  --legal-comments=external --log-level=warning --outfile=$@

assets: static/vendor/htmx.min.js static/vendor/idb-keyval.js static/vendor/uploads.js

translations-compile: venv
	$(PYBABEL) compile -d translations >/dev/null

translations: venv
	$(PYBABEL) extract -F translations/babel.cfg -k _l -k lazy_gettext --ignore-dirs ".*" -o translations/messages.pot \
	  --no-location --sort-output portal templates >/dev/null
	for l in $(LANGS); do \
	  if [ -f translations/$$l/LC_MESSAGES/messages.po ]; then \
	    $(PYBABEL) update -i translations/messages.pot -d translations -l $$l --no-fuzzy-matching --ignore-obsolete >/dev/null; \
	  else $(PYBABEL) init -i translations/messages.pot -d translations -l $$l; fi >/dev/null; \
	done
	$(MAKE) translations-compile
	$(PY) scripts/check_catalogs.py

run: venv assets translations-compile
	$(FLASK) db upgrade
	$(FLASK) demo load
	FLASK="$(VENV)/bin/flask" scripts/run.sh

test: venv assets translations-compile
	scripts/test.sh

# Not part of `make test`: about 10 minutes, plus about 18 for the uploads over 2G (BENCH_UPLOADS_PDF_MB=1: 4); writes bench-results/bench.md and bench-results/throughput.svg.
bench: venv assets translations-compile
	scripts/bench.sh

# Not part of `make test`: about a minute, no services; recall and precision of the near-duplicate check on
# generated receipt photos with altered copies (scripts/bench/neardup.py).
bench-neardup: venv
	$(VENV)/bin/python scripts/bench/neardup.py

# Not part of `make test`: text recognition of receipts on a generated set of phone photos and text PDFs in four
# scripts (about 4 minutes); prints the share of each field read right and the seconds per receipt; writes
# bench-results/ocr.md.
bench-ocr: venv
	scripts/bench-ocr.sh

# Not part of `make test`: concurrent uploaders and readers against gunicorn + PostgreSQL + Ceph S3 while
# the S3 gateway is restarted; prints acknowledged/lost uploads, orphans, unexpected 5xx and p95.
soak: venv assets translations-compile
	scripts/soak.sh

# Not part of `make test`: back up the database and the bucket, add records, destroy, restore, verify.
drill: venv assets translations-compile
	scripts/drill.sh

lint: venv
	$(VENV)/bin/ruff check portal tests scripts

clean:
	rm -rf $(VENV) node_modules static/vendor instance
