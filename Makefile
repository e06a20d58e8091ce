# callplane - see README.md. `make` builds build/callplane; `make check` runs every test under
# AddressSanitizer + UndefinedBehaviorSanitizer; `make run` starts the server on SQLite.
# One test at a time, under the same sanitizer settings (scripts/sanitizer-env.sh):
# `make unit T=test_store` builds and runs one unit test binary; `make blackbox K=expr` runs the
# black-box tests pytest's -k selects (all without K). `make compile_commands.json` writes the
# compile database for clangd and other tools.

PKGS     := libmicrohttpd jansson sqlite3 libcrypto sofia-sip-ua libcurl libre espeak-ng speexdsp sndfile \
            libsystemd gnutls libsrtp2
CC       ?= cc
WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wpointer-arith -Wformat=2 -Wvla -Wno-format-nonliteral
# recursively expanded on purpose: pkg-config runs only when a recipe needs it, after
# scripts/deps.sh had the chance to install it
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
# wslay (the browser's WebSocket of a web call) ships no pkg-config file
PKG_LIBS   = $(shell pkg-config --libs $(PKGS)) -lwslay -lpthread -lm
BASE_CFLAGS = -std=c17 -D_GNU_SOURCE -Isrc $(WARN) -g -MMD -MP
OPT      := -O2
SAN      := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

SRC      := $(filter-out src/main.c,$(wildcard src/*.c src/*/*.c src/*/*/*.c))
# C written from the tree at build time, compiled like src/ into every build: docs/openapi.json
# as an array (scripts/embed.sh) that GET /openapi.json serves (src/http/routes_openapi.c), and
# the web call's page that GET /web/call serves (src/http/routes_web.c), and the dashboard's
# page, script and style sheet (src/http/dashboard.*, served by src/http/routes_dashboard.c),
# so a change to any of them rebuilds the binary that embeds it
GEN      := openapi_json web_call_html dashboard_html dashboard_js dashboard_css
OBJ      := $(SRC:src/%.c=build/obj/%.o) $(GEN:%=build/obj/gen/%.o)
ASAN_OBJ := $(SRC:src/%.c=build/asan/obj/%.o) $(GEN:%=build/asan/obj/gen/%.o)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=build/asan/tests/%)

# Fuzzing (libFuzzer, clang): every fuzz/fuzz_*.c against the whole server's objects, built with
# clang under ASan+UBSan. `make fuzz` runs each for FUZZ_SECONDS (scripts/fuzz.sh); `make check`
# replays each target's corpus (fuzz/corpus/<target>/), so a crash once found stays fixed.
FUZZ_SRC := $(wildcard fuzz/fuzz_*.c)
FUZZ_BIN := $(FUZZ_SRC:fuzz/%.c=build/fuzz/%)
FUZZ_OBJ := $(SRC:src/%.c=build/fuzz/obj/%.o) $(GEN:%=build/fuzz/obj/gen/%.o)
FUZZ_SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
# The objects are built by a pattern rule for pattern-rule targets, which makes them
# intermediate: kept, so a new or changed target does not rebuild all of them
.SECONDARY: $(FUZZ_OBJ)
# clang warns where gcc does not: the schema migrations are one string per step, written as
# concatenated literals on purpose
FUZZ_WARN := -Wno-string-concatenation

# ThreadSanitizer (gcc's libtsan): the server and every unit test built with -fsanitize=thread
# in their own directory (TSan and ASan cannot share a process), then run by scripts/tsan.sh:
# the unit tests and the black-box tests that drive the threads at once. Not part of
# `make check` (see CONTRIBUTING.md, "ThreadSanitizer").
TSAN     := -fsanitize=thread -fno-omit-frame-pointer
TSAN_OBJ := $(SRC:src/%.c=build/tsan/obj/%.o) $(GEN:%=build/tsan/obj/gen/%.o)
TSAN_UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=build/tsan/tests/%)

.PHONY: all asan unit blackbox check run deps deps-run deps-test deps-bench bench clean \
	compile_commands.json fuzz fuzz-build deps-fuzz lint-openapi tsan tsan-build \
	deb deps-deb format format-check

all: build/callplane

build/callplane: $(OBJ) build/obj/main.o
	$(CC) $(OPT) -o $@ $^ $(PKG_LIBS)

build/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(OPT) $(PKG_CFLAGS) -c -o $@ $<

build/gen/openapi_json.c: docs/openapi.json scripts/embed.sh
	@mkdir -p $(dir $@)
	scripts/embed.sh openapi_json $< >$@.tmp && mv $@.tmp $@

build/gen/web_call_html.c: src/http/web_call.html scripts/embed.sh
	@mkdir -p $(dir $@)
	scripts/embed.sh web_call_html $< >$@.tmp && mv $@.tmp $@

build/gen/dashboard_%.c: src/http/dashboard.% scripts/embed.sh
	@mkdir -p $(dir $@)
	scripts/embed.sh dashboard_$* $< >$@.tmp && mv $@.tmp $@

build/obj/gen/%.o: build/gen/%.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(OPT) -c -o $@ $<

asan: build/asan/callplane

build/asan/callplane: $(ASAN_OBJ) build/asan/obj/main.o
	$(CC) $(SAN) -o $@ $^ $(PKG_LIBS)

build/asan/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -O1 $(SAN) $(PKG_CFLAGS) -c -o $@ $<

build/asan/obj/gen/%.o: build/gen/%.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -O1 $(SAN) -c -o $@ $<

# Without T: every unit test binary, built (scripts/check.sh runs them). With T: that one,
# built and run.
ifdef T
unit: build/asan/tests/$(T)
	@. scripts/sanitizer-env.sh && build/asan/tests/$(T)

.PHONY: unit-unknown
build/asan/tests/$(T): $(if $(wildcard tests/unit/$(T).c),,unit-unknown)
unit-unknown:
	@echo "make unit T=$(T): there is no tests/unit/$(T).c; one of: $(UNIT_SRC:tests/unit/%.c=%)" >&2
	@false
else
unit: $(UNIT_BIN)
endif

build/asan/tests/%: tests/unit/%.c $(ASAN_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -O1 $(SAN) $(PKG_CFLAGS) $(shell pkg-config --cflags cmocka) \
		-o $@ $< $(ASAN_OBJ) $(PKG_LIBS) $(shell pkg-config --libs cmocka)

build/tsan/callplane: $(TSAN_OBJ) build/tsan/obj/main.o
	$(CC) $(TSAN) -o $@ $^ $(PKG_LIBS)

build/tsan/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -O1 $(TSAN) $(PKG_CFLAGS) -c -o $@ $<

build/tsan/obj/gen/%.o: build/gen/%.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -O1 $(TSAN) -c -o $@ $<

build/tsan/tests/%: tests/unit/%.c $(TSAN_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -O1 $(TSAN) $(PKG_CFLAGS) $(shell pkg-config --cflags cmocka) \
		-o $@ $< $(TSAN_OBJ) $(PKG_LIBS) $(shell pkg-config --libs cmocka)

tsan-build: build/tsan/callplane $(TSAN_UNIT_BIN)

# Builds, then runs scripts/tsan.sh: ends with "N passed, N failed" like `make check`.
tsan: deps-test
	@$(MAKE) --no-print-directory tsan-build
	@scripts/tsan.sh

build/fuzz/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	clang $(BASE_CFLAGS) $(FUZZ_WARN) -O1 $(FUZZ_SAN) -fsanitize=fuzzer-no-link $(PKG_CFLAGS) -c -o $@ $<

build/fuzz/obj/gen/%.o: build/gen/%.c
	@mkdir -p $(dir $@)
	clang $(BASE_CFLAGS) $(FUZZ_WARN) -O1 $(FUZZ_SAN) -fsanitize=fuzzer-no-link -c -o $@ $<

build/fuzz/%: fuzz/%.c $(FUZZ_OBJ)
	@mkdir -p $(dir $@)
	clang $(BASE_CFLAGS) $(FUZZ_WARN) -O1 $(FUZZ_SAN) -fsanitize=fuzzer $(PKG_CFLAGS) -o $@ $< $(FUZZ_OBJ) $(PKG_LIBS)

fuzz-build: $(FUZZ_BIN)

fuzz: deps-fuzz
	@$(MAKE) --no-print-directory fuzz-build
	@scripts/fuzz.sh run

deps:
	@scripts/deps.sh build

deps-run:
	@scripts/deps.sh run

deps-test:
	@scripts/deps.sh test
	@scripts/node-deps.sh
	@scripts/browser-deps.sh

deps-bench:
	@scripts/deps.sh bench

deps-fuzz:
	@scripts/deps.sh fuzz

# The two set-up commands of the README.
run: deps-run
	@$(MAKE) --no-print-directory build/callplane
	@scripts/run.sh

# The black-box suite, or the tests -k K selects, against the sanitizer build.
blackbox: build/asan/callplane
	@scripts/node-deps.sh
	@scripts/browser-deps.sh
	@. scripts/sanitizer-env.sh && /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/blackbox \
		$(if $(K),-k '$(subst ','\'',$(K))')

# docs/openapi.json through Redocly CLI (npm, scripts/lint/); make check runs it too.
lint-openapi:
	@scripts/lint-openapi.sh

# the release binary too: the package test (tests/blackbox/test_package.py) packages it
check: deps-test
	@$(MAKE) --no-print-directory build/asan/callplane unit fuzz-build build/callplane T=
	@scripts/check.sh

# The C sources' layout (.clang-format, scripts/format.sh): `make format` rewrites them,
# `make format-check` fails on a file laid out otherwise; make check runs it too.
format:
	@scripts/format.sh fix

format-check:
	@scripts/format.sh check

# The Debian package (scripts/deb.sh): the release binary, the systemd unit, the man page and
# the default configuration of packaging/; prints the .deb's path.
deb: deps-deb
	@$(MAKE) --no-print-directory build/callplane
	@scripts/deb.sh

deps-deb:
	@scripts/deps.sh deb

bench: deps-bench
	@$(MAKE) --no-print-directory build/callplane
	@bench/run.sh

# One entry per C file with the flags its build uses (release flags for src/, the sanitizer
# build's for unit tests), written from the variables above: no build and no extra tool needed.
# Always rewritten, so it follows new files and pkg-config's answers.
cc_entry = printf '  {"directory": "%s", "file": "%s", "command": "%s"},\n' '$(CURDIR)' '$(1)' '$(2)';
compile_commands.json:
	@{ echo '['; \
	   { $(foreach f,$(SRC) src/main.c,$(call cc_entry,$(f),$(CC) $(BASE_CFLAGS) $(OPT) $(PKG_CFLAGS) -c -o $(f:src/%.c=build/obj/%.o) $(f))) \
	     $(foreach f,$(UNIT_SRC),$(call cc_entry,$(f),$(CC) $(BASE_CFLAGS) -O1 $(SAN) $(PKG_CFLAGS) $(shell pkg-config --cflags cmocka) -c -o $(f:tests/unit/%.c=build/asan/tests/%.o) $(f))) \
	   } | sed '$$ s/,$$//'; \
	   echo ']'; } > $@.tmp && mv $@.tmp $@
	@echo "compile_commands.json: $$(grep -c '"file"' $@) files"

clean:
	rm -rf build

-include $(OBJ:.o=.d) $(ASAN_OBJ:.o=.d) $(FUZZ_OBJ:.o=.d) $(TSAN_OBJ:.o=.d) build/obj/main.d build/asan/obj/main.d \
	build/tsan/obj/main.d
