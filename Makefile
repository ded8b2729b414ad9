# Two entry points for a fresh machine:  `make demo`  and  `make test`.
# Both create .venv (once; again when pyproject.toml changes) and install what they need.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
EXTRAS ?= export,train,openvino,serve,plot,dev
# torch is pinned to the release served from this machine's local wheel store (CUDA build on x86_64).
TORCH  ?= torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?=

.PHONY: demo test venv clean photos train
venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[$(EXTRAS)]'
	touch $@

demo: venv
	$(BIN)/mmfir demo --out demo_out

# lint-imports checks the dependency rules in pyproject.toml ([tool.importlinter]) before any test runs.
test: venv
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# The shipped model's recipe (README "What the shipped model does"): about 95 minutes on 2 CPU cores.
# `photos` downloads the 14 CC-licensed training wallpapers from Debian's package registry into the cache.
photos: venv
	$(BIN)/python -m mmfir.measure.photos --fetch

TRAIN_OUT ?= train_out/tiny.safetensors
train: photos
	$(BIN)/python -m mmfir.models.train --config tiny --out $(TRAIN_OUT) --stage1-minutes 20 --stage2-minutes 75 --lr1 1e-3 \
	    --class-weights blurry=3,jpeg-compressed=2 --save-every 500 --log-every 100

clean:
	rm -rf $(VENV) demo_out .pytest_cache
