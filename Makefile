# Top-level driver over CMake presets.  `make` builds, `make test` runs every
# test through CTest, `make demo` runs the demo, `make bench` the benchmarks.
PRESET ?= dev
BUILD  := build/$(PRESET)
PREFIX ?= /usr/local
DESTDIR ?=
JOBS   ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: all deps configure build test demo bench install check-asan check-tsan coverage clean

all: build

deps:
	@bash scripts/deps.sh

$(BUILD)/CMakeCache.txt: | deps
	cmake --preset $(PRESET)

configure: $(BUILD)/CMakeCache.txt

build: deps configure
	cmake --build --preset $(PRESET) -j $(JOBS)

test: build
	ctest --preset $(PRESET) -j $(JOBS)

demo: build
	@bash examples/demo.sh $(BUILD)/resil $(BUILD)/example_retry

bench: deps
	@bash bench/run.sh

install: deps
	cmake --preset release -DCMAKE_INSTALL_PREFIX=$(PREFIX)
	cmake --build --preset release -j $(JOBS)
	DESTDIR=$(DESTDIR) cmake --install build/release

check-asan:
	$(MAKE) test PRESET=asan-ubsan

check-tsan:
	$(MAKE) build PRESET=tsan
	setarch $$(uname -m) -R ctest --preset tsan -j $(JOBS)

# Line coverage of the library by the test suite (gcov).
coverage:
	$(MAKE) test PRESET=coverage
	@cd build/coverage && gcov -n $$(find . -name '*.gcda' -path '*resil_obj*') 2>/dev/null | \
	  awk '/^File .*\/src\//{f=$$2} /^Lines executed/{if(f!=""){print f, $$0; f=""}}'

clean:
	rm -rf build
