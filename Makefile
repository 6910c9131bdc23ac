# Every target with a `## description` is listed by `make help`.
.DEFAULT_GOAL := help
SHELL := /bin/bash

# uv: the one on PATH (fast path), or bootstrapped from PyPI into a private venv
# .venv-uv/ (works on Debian/Ubuntu's "externally managed" /usr/bin/python3, PEP 668,
# where `pip install uv` into the system Python is refused; needs python3-venv there)
UV_PRIVATE := .venv-uv/bin/uv
UV := $(or $(shell command -v uv 2>/dev/null),$(UV_PRIVATE))
UVRUN := $(UV) run --frozen
# uv trusts the system's certificate store (as pip, apt and curl do), so a TLS proxy
# whose CA the system trusts works; UV_NATIVE_TLS is the older uv's name
export UV_SYSTEM_CERTS ?= true
export UV_NATIVE_TLS ?= true
# one torch thread per test process: two workers on two cores, no spin-waiting
PYTEST := OMP_NUM_THREADS=1 $(UVRUN) pytest -n 2 --dist loadfile

# --compile-bytecode: the .pyc files written once here, so that every start reads them even
# where PYTHONDONTWRITEBYTECODE=1 stops Python writing its own (import lightning: 12.7-13.0 s
# without them on a build machine that sets it, 4.8-6.1 s with them)
.venv/.synced: pyproject.toml uv.lock | $(filter $(UV_PRIVATE),$(UV))
	$(UV) sync --frozen --compile-bytecode
	@touch $@

$(UV_PRIVATE):
	@python3 -m venv .venv-uv || { echo "python3 -m venv failed: install python3-venv" \
		"(Debian/Ubuntu: apt-get install python3-venv) or put uv on PATH"; exit 1; }
	.venv-uv/bin/python -m pip install --quiet uv

.PHONY: screenshots notebook chromium pre-commit optuna-dashboard postgres bench-pruning gpu-wheels
.PHONY: help install train test test-all test-slow bench bench-epoch format lint clean clean-logs list-configs eval mlflow-ui \
	lr-find bs-find summary export split shards example-images example-audio cv-report study-report train-best bench-sweep train-quick tq train-quick-cnn tqc train-quick-vit tqv \
	train-quick-all tqa experiment-vimh evimh experiment-vimh-ordinal evimho experiment-vimh-regression \
	evimhr compare-architectures ca predict merge-lora fuse data-vimh data-simple-saw data-moog-basic data-moog-envelope bench-vimh \
	train-quick-convnext tqcn t train-mps trainmps tmps train-cnn trc train-vit-small trvs train-convnext-small trcns \
	experiment-vimh-16k evimh16k experiment-vimh-stk evimhstk data-stk data-moog-resonance data-clean dclean tensorboard tb \
	activate deactivate a d sync sy test-full ta c cl diagram-text td diagram-graph tds diagram-all tda diagram-compare tdss graphviz

help: ## Show every target with its description
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sort | \
		awk 'BEGIN {FS = ":.*## "} {name[NR] = $$1; text[NR] = $$2; if (length($$1) > w) w = length($$1)} \
			END {for (i = 1; i <= NR; i++) printf "  \033[36m%-*s\033[0m  %s\n", w, name[i], text[i]}'

install: .venv/.synced ## Create or update the environment (.venv) from uv.lock

train: .venv/.synced ## Train the default experiment (digits, MLP); add ARGS="..." for overrides
	$(UVRUN) python src/train.py $(ARGS)

# a RUN= target called without RUN (nor ARGS): say how, before a tool starts and makes a run dir
need_run = $(if $(strip $(RUN)$(ARGS)),,$(error make $@ needs the run: make $@ RUN=logs/train/runs/<run>))

eval: .venv/.synced ## Evaluate a training run: make eval RUN=logs/train/runs/<run>
	$(call need_run)
	$(UVRUN) python src/eval.py run_dir=$(RUN) $(ARGS)

test: .venv/.synced graphviz ## Run the fast tests (not marked slow; installs Graphviz's dot if missing)
	$(PYTEST) -m "not slow"

test-all: .venv/.synced graphviz ## Run every test, the slow ones too
	$(PYTEST)

test-full: test-all ## Shortcut for test-all (LHT's name)

ta: test-all ## Shortcut for test-all (NSMT)

test-slow: .venv/.synced graphviz ## Run only the slow tests (CI runs them after the fast ones)
	$(PYTEST) -m slow

notebook: .venv/.synced ## JupyterLab on notebooks/ (inspect_runs, inspect_model): http://127.0.0.1:8888
	$(UVRUN) jupyter lab --notebook-dir=notebooks --ip=127.0.0.1 --port=8888

pre-commit: .venv/.synced ## Run the pre-commit hooks (ruff, whitespace, YAML/TOML, large files) on every file
	$(UVRUN) pre-commit run --all-files

chromium: ## Debian's headless chromium, for the notebook screenshots of the slow tests (CI runs it)
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium; }

optuna-dashboard: .venv/.synced ## Watch a study live on 127.0.0.1 (port printed): make optuna-dashboard STUDY=digits_optuna [PORT=8080]
	$(UVRUN) python src/tools/dashboard.py $(STUDY_SEARCH) $(if $(PORT),port=$(PORT)) $(ARGS)

postgres: ## Install Debian's PostgreSQL and start it on 127.0.0.1:55432 (user/db/password optuna), for shared studies
	bash .ci/postgres.sh

bench-pruning: .venv/.synced ## Epochs a median-pruned 16-trial TPE search spends against an unpruned one, and both best val/acc_best
	$(UVRUN) python benchmarks/pruning.py

mlflow-ui: .venv/.synced ## Browse the MLflow runs of logger=mlflow (http://127.0.0.1:5000)
	@echo "MLflow 3 opens on its GenAI view: click 'Model training' (top left) once for the runs table"
	$(UVRUN) mlflow ui --backend-store-uri sqlite:///logs/mlflow/mlflow.db --host 127.0.0.1 --port 5000

screenshots: .venv/.synced chromium ## Photograph MLflow's runs table and TensorBoard's HPARAMS tab of tiny multiruns (logs/screenshots/)
	UI_SCREENSHOTS=logs/screenshots OMP_NUM_THREADS=1 $(UVRUN) pytest -p no:xdist -q -m slow tests/test_ui_screenshots.py

bench: .venv/.synced ## Every CPU benchmark, then one table: figure, reference, target, met (~13 min)
	$(UVRUN) python benchmarks/suite.py

bench-epoch: .venv/.synced ## Time a template epoch against bare Lightning and a plain PyTorch loop, and start-up
	$(UVRUN) python benchmarks/epoch_speed.py

gpu-wheels: $(filter $(UV_PRIVATE),$(UV)) ## Wheels a lent GPU machine lacks (hydra, bitsandbytes...) into .whl/, for bash benchmarks/gpu.sh there
	UV=$(UV) bash benchmarks/gpu.sh wheels

bench-sweep: .venv/.synced ## A sweep trial against a lone run, and 2 joblib workers against 1 (debug=fdr)
	$(UVRUN) python benchmarks/sweep_overhead.py

format: .venv/.synced ## Format the code and sort imports (ruff)
	$(UVRUN) ruff check --select I --fix .
	$(UVRUN) ruff format .

lint: .venv/.synced ## Check formatting and lint rules (ruff)
	$(UVRUN) ruff format --check .
	$(UVRUN) ruff check .

lr-find: .venv/.synced ## Learning-rate range test for any experiment: make lr-find ARGS="experiment=digits_cnn"
	$(UVRUN) python src/tools/find_lr_batch_size.py $(ARGS)

bs-find: .venv/.synced ## Largest batch size that trains: make bs-find ARGS="experiment=..."
	$(UVRUN) python src/tools/find_lr_batch_size.py find=batch_size $(ARGS)

summary: .venv/.synced ## Parameters per layer, shapes and FLOPs of a model: make summary ARGS="model=cnn"
	$(UVRUN) python src/tools/summary.py $(ARGS)

# NSMT's architecture diagrams (configs/diagrams.yaml), written to logs/diagrams/; the VIMH
# nets on simple_saw notes unless ARGS says otherwise (ARGS="model=vimh_vit_38k", "experiment=...")
DIAGRAMS = $(UVRUN) python src/tools/diagrams.py experiment=vimh_cnn data.generate=true

diagram-text: .venv/.synced ## Text diagram of one model: layers, shapes, parameters, FLOPs (make td ARGS="model=vimh_cnn_16k")
	$(DIAGRAMS) diagram=text $(ARGS)

td: diagram-text ## Shortcut for diagram-text (NSMT)

diagram-graph: .venv/.synced graphviz ## Graphical diagram of one model as SVG and PNG (torchview; make tds ARGS="model=...")
	$(DIAGRAMS) diagram=graph $(ARGS)

tds: diagram-graph ## Shortcut for diagram-graph (NSMT)

diagram-all: .venv/.synced graphviz ## Text and graphical diagrams of every VIMH architecture (make tda)
	$(DIAGRAMS) diagram=all $(ARGS)

tda: diagram-all ## Shortcut for diagram-all (NSMT)

diagram-compare: .venv/.synced ## The architectures side by side on one sample: parameters, shapes, FLOPs (make tdss)
	$(DIAGRAMS) diagram=compare $(ARGS)

tdss: diagram-compare ## Shortcut for diagram-compare (NSMT)

graphviz: ## Install Graphviz's dot (the graphical diagrams need it) if it is missing (Debian/Ubuntu: apt-get)
	@command -v dot >/dev/null || { command -v apt-get >/dev/null && \
		{ apt-get update -qq && apt-get install -y -qq graphviz; } || \
		{ echo "Install Graphviz (dot) with your package manager (macOS: brew install graphviz)"; exit 1; }; }

export: .venv/.synced ## Export runs' nets to deployable ONNX (raw inputs in), checked: make export RUN=logs/train/runs/<run> (or RUN='logs/train/runs/*')
	$(call need_run)
	$(UVRUN) python src/tools/export.py 'run_dir=$(RUN)' $(ARGS)

predict: .venv/.synced ## Predict with any run: make predict RUN=<run> INPUT=<rows.csv | arrays.npy | image or WAV folder | VIMH file> [ARGS="top_k=5"]
	$(UVRUN) python src/tools/predict.py run_dir=$(RUN) input=$(INPUT) $(ARGS)

merge-lora: .venv/.synced ## Merge a LoRA run's adapter into its base: make merge-lora RUN=logs/train/runs/<run>
	$(call need_run)
	$(UVRUN) python src/lora/merge.py run_dir=$(RUN) $(ARGS)

fuse: .venv/.synced ## Fuse LoRA adapters of one base and test them: make fuse ADAPTERS=<run>,<run> [ARGS="method=ties"]
	$(UVRUN) python src/lora/fuse.py adapters=[$(ADAPTERS)] $(ARGS)

split: .venv/.synced ## Split a data folder <root>/raw/<class>/<file> once: make split ROOT=<root> [FOLDS=5] [KIND=audio]
	$(UVRUN) python src/tools/split_folder.py root=$(ROOT) $(if $(FOLDS),folds=$(FOLDS)) $(if $(KIND),kind=$(KIND)) $(ARGS)

shards: .venv/.synced ## Convert a data option's splits into streaming shards (litdata): make shards DATA=digits OUT=data/shards/digits
	$(UVRUN) python src/tools/to_shards.py $(if $(DATA),data=$(DATA)) output_dir=$(OUT) $(ARGS)

example-images: .venv/.synced ## Write the digits as PNGs into an image folder: make example-images ROOT=data/digits_png
	$(UVRUN) python src/tools/example_folders.py kind=image root=$(ROOT) $(ARGS)

example-audio: .venv/.synced ## Write synthesized WAV notes (4 classes) into an audio folder: make example-audio ROOT=data/notes_wav
	$(UVRUN) python src/tools/example_folders.py kind=audio root=$(ROOT) $(ARGS)

cv-report: .venv/.synced ## Mean and std of each metric over the folds of a k-fold multirun: make cv-report MULTIRUN=logs/train/multiruns/<time>
	$(UVRUN) python src/reports/cv_report.py multirun_dir=$(MULTIRUN) $(ARGS)

# the study of a search config (hparams_search); STORAGE=<url> if the sweep had another storage
STUDY_SEARCH = $(if $(STUDY),hparams_search=$(STUDY),$(error Name the study: STUDY=<search config>, e.g. STUDY=digits_optuna)) \
	$(if $(STORAGE),hydra.sweeper.storage=$(STORAGE))

study-report: .venv/.synced ## Best parameters (override line, experiment YAML) and HTML plots of a study: make study-report STUDY=digits_optuna
	$(UVRUN) python src/reports/study_report.py $(STUDY_SEARCH) $(ARGS)

train-best: .venv/.synced ## Train with a study's best parameters: make train-best STUDY=digits_optuna [TRIAL=n] [ARGS="trainer.max_epochs=50"]
	$(UVRUN) python src/reports/study_report.py $(STUDY_SEARCH) train_best=true $(if $(TRIAL),trial=$(TRIAL)) \
		$(if $(ARGS),'train_args="$(ARGS)"')

data-vimh: data-simple-saw ## Generate the VIMH data set data=vimh reads (simple_saw, 2000 samples)

data-simple-saw: .venv/.synced ## Generate VIMH sawtooth notes (pitch, velocity); ARGS="size=... seed=..."
	$(UVRUN) python src/vimh/generate.py synth=simple_saw $(ARGS)

data-moog-basic: .venv/.synced ## Generate VIMH ladder-filter notes (4 labels); ARGS="size=... seed=..."
	$(UVRUN) python src/vimh/generate.py synth=moog_basic $(ARGS)

data-moog-envelope: .venv/.synced ## Generate VIMH ladder-filter notes with ADSR labels (7 labels, 32x64)
	$(UVRUN) python src/vimh/generate.py synth=moog_envelope $(ARGS)

bench-vimh: .venv/.synced ## Time VIMH generation of each synth preset (samples/s against targets)
	$(UVRUN) python benchmarks/vimh_generation.py

# NSMT's quick runs: one epoch over a few batches of generated simple_saw notes, to see that an
# architecture trains at all (ARGS adds to them: make tq ARGS="trainer.limit_train_batches=2")
QUICK = trainer.max_epochs=1 ++trainer.limit_train_batches=20 ++trainer.limit_val_batches=5 $(ARGS)

train-quick: .venv/.synced ## The multihead dense net (SimpleDenseNet-style), 1 epoch of 20 batches (make tq)
	$(UVRUN) python src/train.py experiment=vimh_cnn model=vimh_mlp 'tags=[vimh,simple_saw,mlp]' data.generate=true $(QUICK)

tq: train-quick ## Shortcut for train-quick

train-quick-cnn: .venv/.synced ## The multihead CNN, 1 epoch of 20 batches (make tqc)
	$(UVRUN) python src/train.py experiment=vimh_cnn data.generate=true $(QUICK)

tqc: train-quick-cnn ## Shortcut for train-quick-cnn

train-quick-vit: .venv/.synced ## The multihead ViT, 1 epoch of 20 batches (make tqv)
	$(UVRUN) python src/train.py experiment=vimh_vit data.generate=true $(QUICK)

tqv: train-quick-vit ## Shortcut for train-quick-vit

train-quick-convnext: .venv/.synced ## The multihead ConvNeXt, 1 epoch of 20 batches (make tqcn)
	$(UVRUN) python src/train.py experiment=vimh_convnext data.generate=true $(QUICK)

tqcn: train-quick-convnext ## Shortcut for train-quick-convnext

train-quick-all: train-quick train-quick-cnn train-quick-vit train-quick-convnext ## Every quick run above (make tqa)

tqa: train-quick-all ## Shortcut for train-quick-all

t: test ## Shortcut for test (NSMT)

train-mps: .venv/.synced ## Train on Apple silicon (trainer=mps): make tmps ARGS="experiment=vimh_cnn"
	$(UVRUN) python src/train.py trainer=mps $(ARGS)

trainmps: train-mps ## Shortcut for train-mps (NSMT)

tmps: train-mps ## Shortcut for train-mps (NSMT)

train-cnn: .venv/.synced ## Train the multihead CNN (vimh_cnn_64k, 20 epochs) on simple_saw notes (make trc)
	$(UVRUN) python src/train.py experiment=vimh_cnn data.generate=true $(ARGS)

trc: train-cnn ## Shortcut for train-cnn

train-vit-small: .venv/.synced ## Train the small multihead ViT (vimh_vit_38k) on simple_saw notes (make trvs)
	$(UVRUN) python src/train.py experiment=vimh_vit model=vimh_vit_38k data.generate=true $(ARGS)

trvs: train-vit-small ## Shortcut for train-vit-small

train-convnext-small: .venv/.synced ## Train the small multihead ConvNeXt (vimh_convnext_68k) (make trcns)
	$(UVRUN) python src/train.py experiment=vimh_convnext model=vimh_convnext_68k data.generate=true $(ARGS)

trcns: train-convnext-small ## Shortcut for train-convnext-small

experiment-vimh: .venv/.synced ## VIMH pitch (class) + velocity (regression), CNN (make evimh)
	$(UVRUN) python src/train.py experiment=vimh_cnn data.generate=true $(ARGS)

evimh: experiment-vimh ## Shortcut for experiment-vimh

experiment-vimh-ordinal: .venv/.synced ## VIMH with ordinal heads (make evimho)
	$(UVRUN) python src/train.py experiment=vimh_cnn_ordinal data.generate=true $(ARGS)

evimho: experiment-vimh-ordinal ## Shortcut for experiment-vimh-ordinal

experiment-vimh-regression: .venv/.synced ## VIMH with regression heads (make evimhr)
	$(UVRUN) python src/train.py experiment=vimh_cnn_regression data.generate=true $(ARGS)

evimhr: experiment-vimh-regression ## Shortcut for experiment-vimh-regression

experiment-vimh-16k: .venv/.synced ## The multihead CNN on 16,384 simple_saw notes (NSMT's vimh_cnn_16kdss; make evimh16k)
	$(UVRUN) python src/train.py experiment=vimh_cnn_16kdss $(ARGS)

evimh16k: experiment-vimh-16k ## Shortcut for experiment-vimh-16k

experiment-vimh-stk: .venv/.synced ## The multihead CNN on plucked-string notes (NSMT's vimh_cnn_stk; make evimhstk)
	$(UVRUN) python src/train.py experiment=vimh_cnn_stk $(ARGS)

evimhstk: experiment-vimh-stk ## Shortcut for experiment-vimh-stk

data-stk: .venv/.synced ## Generate VIMH plucked-string notes (pitch); ARGS="size=... seed=..."
	$(UVRUN) python src/vimh/generate.py synth=stk_pluck $(ARGS)

data-moog-resonance: .venv/.synced ## Generate VIMH ladder-filter notes (cutoff, resonance); ARGS="size=..."
	$(UVRUN) python src/vimh/generate.py synth=moog_resonance $(ARGS)

data-clean: ## List the generated VIMH data sets under data/ and delete them once you confirm (make dclean)
	@sets=$$(find data -maxdepth 1 -type d -name 'vimh-*' | sort); \
	if [ -z "$$sets" ]; then echo "No generated VIMH data set under data/."; exit 0; fi; \
	echo "These generated data sets would be deleted (make data-* or data.generate=true remakes them):"; \
	for s in $$sets; do echo "  $$s ($$(du -sh $$s | cut -f1))"; done; \
	read -r -p "Delete them? [y/N] " answer || answer=; \
	if [ "$$answer" = y ] || [ "$$answer" = Y ]; then rm -rf $$sets && echo "Deleted."; \
	else echo "Nothing deleted."; fi

dclean: data-clean ## Shortcut for data-clean (NSMT)

tensorboard: .venv/.synced ## TensorBoard over logs/ on http://127.0.0.1:6006 (this machine only; make tb)
	$(UVRUN) tensorboard --logdir logs --host 127.0.0.1 --port 6006

tb: tensorboard ## Shortcut for tensorboard

activate: ## Print the line that activates .venv in your shell, and an alias for it (NSMT's make a)
	@echo "bash/zsh: source .venv/bin/activate    (alias: alias a='source .venv/bin/activate')"
	@echo "tcsh:     source .venv/bin/activate.csh (alias: alias a 'source .venv/bin/activate.csh')"
	@echo "make cannot change your shell itself: run the line, or add the alias to your shell's rc file."

deactivate: ## Print how to leave the activated .venv (NSMT's make d)
	@echo "deactivate    (alias: alias d='deactivate'; tcsh: alias d 'deactivate')"

a: activate ## Shortcut for activate (NSMT)

d: deactivate ## Shortcut for deactivate (NSMT)

# LHT's and NSMT's: your branch gets the upstream main's changes (a template's copy keeps
# the template as origin, or as the remote you name: make sync REMOTE=upstream)
REMOTE ?= origin
sync: ## Merge the main branch into your current branch: git pull, then git pull origin main (LHT; REMOTE=upstream)
	git pull
	git pull $(REMOTE) main

sy: sync ## Shortcut for sync (NSMT)

compare-architectures: .venv/.synced ## CNN vs ViT vs ConvNeXt, 3 epochs each: params, acc/MAE, time (make ca)
	$(UVRUN) python benchmarks/compare_architectures.py $(ARGS)

ca: compare-architectures ## Shortcut for compare-architectures

list-configs: ## List every option of every config group
	@cd configs && for group in $$(find . -mindepth 1 -type d ! -path './local*' | sort); do \
		printf "  \033[36m%-20s\033[0m %s\n" "$${group#./}" \
		"$$(find $$group -maxdepth 1 -name '*.yaml' -exec basename {} .yaml \; | sort | tr '\n' ' ')"; \
	done

clean: ## Remove caches and build leftovers (keeps .venv, data and logs)
	find . \( -path ./.venv -o -path ./.venv-uv \) -prune -o -type d \( -name __pycache__ -o -name .pytest_cache -o -name .ruff_cache \) -print0 | xargs -0 rm -rf

c: clean ## Shortcut for clean (NSMT)

cl: clean-logs ## Shortcut for clean-logs (NSMT)

clean-logs: ## Delete every run under logs/ (asks nothing: it is what it says)
	rm -rf logs/*
	touch logs/.gitkeep
