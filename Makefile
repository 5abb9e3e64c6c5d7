# Two commands do all the set-up on a fresh Debian/Ubuntu machine with Python 3.11:
#   make run    the app on the built-in synthetic patient (headless pipeline when there is no display)
#   make test   the whole test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO := .demo
SYSTEM_PACKAGES := libgl1 libegl1 libxkbcommon0 libfontconfig1 libglib2.0-0 libdbus-1-3 xvfb xauth \
	libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 \
	dcmtk dicom3tools orthanc poppler-utils

.PHONY: run headless test system-packages setup demo benchmarks clean

system-packages:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "Installing system packages: $$missing"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null || exit 1; \
		else \
			echo "Missing system packages. Run as root:"; \
			echo "  sudo apt-get install -y $$missing"; exit 1; \
		fi; \
	fi

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $@

setup: system-packages $(VENV)/.installed

$(DEMO)/dicom: | $(VENV)/.installed
	$(VENV)/bin/liverplan demo --out $(DEMO)

demo: setup $(DEMO)/dicom

run: demo
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ]; then \
		$(PY) main.py $(DEMO)/dicom; \
	else \
		echo "No display available: running the headless pipeline on the demo patient instead."; \
		$(MAKE) --no-print-directory headless; \
	fi

# The same functions as the app, without a window: segment, plan a right hemihepatectomy with
# the expected ICG fluorescence, export the report, 3D models and DICOM SEG.
headless: demo
	$(VENV)/bin/liverplan info $(DEMO)/dicom
	$(VENV)/bin/liverplan segment $(DEMO)/dicom --out $(DEMO)/results
	$(VENV)/bin/liverplan plan $(DEMO)/dicom --resection right_hemihepatectomy --icg --out $(DEMO)/results
	$(VENV)/bin/liverplan export $(DEMO)/results/plan.liverplan.json --ct $(DEMO)/dicom --out $(DEMO)/results/export
	@echo "Results: $(abspath $(DEMO)/results) (masks, volumetry.json, plan.liverplan.json, ICG views);" \
		"exports (PDF report, 3D models, DICOM SEG): $(abspath $(DEMO)/results/export)"

test: demo
	$(PY) -m pytest -q

benchmarks: demo
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache test-output
