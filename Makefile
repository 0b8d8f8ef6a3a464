# Top-level driver over CMake presets.  `make` builds, `make test` runs every
# test through CTest, `make demo` runs the demo, `make bench` the benchmarks.
# `make`, `make demo` and `make install` need only the build dependencies;
# `make test` installs the test ones (cmocka, prometheus, python3) first, and
# the benchmarks theirs (scripts/deps.sh build|test|bench).
PRESET ?= dev
BUILD  := build/$(PRESET)
PREFIX ?= /usr/local
DESTDIR ?=
JOBS   ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: all deps test-deps configure build test demo bench install check-asan check-tsan coverage clean

all: build

deps:
	@bash scripts/deps.sh build

test-deps:
	@bash scripts/deps.sh test

$(BUILD)/CMakeCache.txt: | deps
	cmake --preset $(PRESET)

configure: $(BUILD)/CMakeCache.txt

build: deps configure
	cmake --build --preset $(PRESET) -j $(JOBS)

# A tree configured before cmocka was installed is configured again (its
# unit tests are built only when cmocka is found).
test: test-deps
	@if [ -f $(BUILD)/CMakeCache.txt ] && ! grep -q '^CMOCKA_FOUND:INTERNAL=1' $(BUILD)/CMakeCache.txt; then \
	  cmake --preset $(PRESET) >/dev/null; fi
	$(MAKE) build
	ctest --preset $(PRESET) -j $(JOBS)

demo: build
	@bash examples/demo.sh $(BUILD)/resil $(BUILD)/example_retry

bench: deps
	@bash bench/run.sh

# An optimised build of the libraries, the command and its helper only (no
# tests, no benchmarks), in a tree of its own.
install: deps
	cmake -S . -B build/install -DCMAKE_BUILD_TYPE=Release -DRESIL_BUILD_TESTS=OFF \
	  -DRESIL_BUILD_BENCH=OFF -DCMAKE_INSTALL_PREFIX=$(PREFIX)
	cmake --build build/install -j $(JOBS)
	DESTDIR=$(DESTDIR) cmake --install build/install

check-asan:
	$(MAKE) test PRESET=asan-ubsan

check-tsan: test-deps
	$(MAKE) build PRESET=tsan
	setarch $$(uname -m) -R ctest --preset tsan -j $(JOBS)

# Line coverage of the library by the test suite (gcov).
coverage:
	$(MAKE) test PRESET=coverage
	@cd build/coverage && gcov -n $$(find . -name '*.gcda' -path '*resil_obj*') 2>/dev/null | \
	  awk '/^File .*\/src\//{f=$$2} /^Lines executed/{if(f!=""){print f, $$0; f=""}}'

clean:
	rm -rf build
