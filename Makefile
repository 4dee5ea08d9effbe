# The two commands a newcomer runs: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8080
APPS_PORT ?= 8081
# 127.0.0.1: this machine only; HOST=0.0.0.0 lets tablets on the network join
HOST ?= 127.0.0.1
PYTEST_ARGS ?=

.PHONY: demo image-deps test test-image test-image-build test-quick lint system-deps translations sample-pack clean image update-bundle test-image-arm64

$(STAMP): setup.cfg pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

## demo: set everything up and serve the bundled sample lessons at http://localhost:8080
demo: $(STAMP)
	$(BIN)/ketang demo --data-dir .demo --host $(HOST) --port $(PORT) --apps-port $(APPS_PORT)

## system-deps: Debian packages the test suite needs (installed only where missing)
system-deps:
	@bash tests/system-deps.sh

## image-deps: the Debian packages the image build and its QEMU boot need
image-deps: system-deps
	@bash tests/system-deps.sh image-packages.txt

## ralph: the xAPI LRS the usage tests post to (Ralph, in a virtualenv of its own; pinned)
RALPH_VENV := .venv-ralph
RALPH_STAMP := $(RALPH_VENV)/.installed
$(RALPH_STAMP): Makefile
	@test -x $(RALPH_VENV)/bin/python || $(PYTHON) -m venv $(RALPH_VENV)
	@# requests: Ralph's OIDC module imports it even for Basic auth.
	@$(RALPH_VENV)/bin/python -m pip install --quiet 'ralph-malph[cli,lrs]==5.1.0' \
	    'requests>=2.31' && touch $(RALPH_STAMP) || { \
	  echo "Could not install Ralph (the LRS) into $(RALPH_VENV): usage LRS tests will be skipped." >&2; \
	  test -z "$$CI"; }

## test: set everything up, lint, build the amd64 image, run the whole suite (slow end-to-end
## tests included), then boot the image in QEMU. Three steps, one after the other, so the
## image build and the emulated boot never take the cores from the Chromium tests.
## The boot test runs even when the suite failed (one CI run reports both), and make fails.
test: lint image-deps $(RALPH_STAMP) test-image-build
	status=0; \
	$(BIN)/python -m pytest -n 2 -m "not image" $(PYTEST_ARGS) || status=$$?; \
	$(BIN)/python -m pytest -m "image" tests/image/test_image_amd64.py $(PYTEST_ARGS) || status=$$?; \
	exit $$status

# The amd64 image for make test (cached by inputs: seconds when unchanged). It needs root;
# elsewhere the boot test skips saying so, and with CI=true it fails.
test-image-build: $(STAMP) image-deps
	@if [ "$$(id -u)" -eq 0 ]; then bash image-build/build.sh amd64; \
	else echo "Not root: the image is not built and its boot test will be skipped (sudo make test)." >&2; \
	  test "$$CI" != true; fi

## test-image: everything in tests/image/ but arm64: the amd64 image's build and boot, and the
## long QEMU update scenario (docs/updates.md; about 30 minutes)
test-image: $(STAMP) image-deps
	$(BIN)/python -m pytest -m "image" tests/image $(PYTEST_ARGS)

## test-quick: the fast subset while editing (no slow end-to-end tests, no lint, no installs)
test-quick: $(STAMP)
	$(BIN)/python -m pytest -n 2 -m "not slow" $(PYTEST_ARGS)

## image: build the flashable image (ARCH=amd64 or arm64) into dist/ (image-build/README.md)
ARCH ?= amd64
image: $(STAMP) image-deps
	bash image-build/build.sh $(ARCH)

## update-bundle: a signed RAUC bundle of the built image's root slot (docs/updates.md);
## KETANG_UPDATE_VERSION=0.2.0, KETANG_UPDATE_CERT/KEY from the key ceremony; KIND=app
## for an app-only bundle (a patch against KETANG_UPDATE_BASE, the root the devices run)
KIND ?= whole
update-bundle: $(STAMP) system-deps
	bash image-build/update-bundle.sh $(ARCH) $(KIND)

## test-image-arm64: build the Raspberry Pi 4 image (slow: emulated) and boot it on qemu -M virt
test-image-arm64: $(STAMP) image-deps
	KETANG_TEST_ARM64=1 $(BIN)/python -m pytest tests/image/test_image_arm64.py -s $(PYTEST_ARGS)

## translations: collect user-facing strings, update the catalogs, compile them (docs/translations.md)
translations: $(STAMP)
	$(BIN)/pybabel extract -F kiosk_ui/babel.cfg -k _l --no-location --sort-output \
	  --omit-header -o $(VENV)/messages.pot appliance kiosk_ui
	$(BIN)/pybabel update -i $(VENV)/messages.pot -d kiosk_ui/translations --no-fuzzy-matching \
	  --ignore-pot-creation-date
	$(BIN)/pybabel compile -d kiosk_ui/translations --statistics

## sample-pack: regenerate content_cache/sample_pack/ from tools/sample_pack/ (docs/sample-pack.md)
sample-pack: $(STAMP) system-deps
	$(BIN)/python tools/make_sample_pack.py

## lint: ruff, and mypy on appliance/ and content_cache/ (settings in pyproject.toml)
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) $(RALPH_VENV) .demo .pytest_cache .ruff_cache .mypy_cache
