# callplane - see README.md. `make` builds build/callplane; `make check` runs every test under
# AddressSanitizer + UndefinedBehaviorSanitizer; `make run` starts the server on SQLite.

PKGS     := libmicrohttpd jansson sqlite3 libcrypto sofia-sip-ua libcurl libre espeak-ng speexdsp sndfile
CC       ?= cc
WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wpointer-arith -Wformat=2 -Wvla -Wno-format-nonliteral
# recursively expanded on purpose: pkg-config runs only when a recipe needs it, after
# scripts/deps.sh had the chance to install it
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   = $(shell pkg-config --libs $(PKGS)) -lpthread -lm
BASE_CFLAGS = -std=c17 -D_GNU_SOURCE -Isrc $(WARN) -g -MMD -MP
OPT      := -O2
SAN      := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

SRC      := $(filter-out src/main.c,$(wildcard src/*.c src/*/*.c src/*/*/*.c))
OBJ      := $(SRC:src/%.c=build/obj/%.o)
ASAN_OBJ := $(SRC:src/%.c=build/asan/obj/%.o)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=build/asan/tests/%)

# Fuzzing (libFuzzer, clang): every fuzz/fuzz_*.c against the whole server's objects, built with
# clang under ASan+UBSan. `make fuzz` runs each for FUZZ_SECONDS (scripts/fuzz.sh); `make check`
# replays each target's corpus (fuzz/corpus/<target>/), so a crash once found stays fixed.
FUZZ_SRC := $(wildcard fuzz/fuzz_*.c)
FUZZ_BIN := $(FUZZ_SRC:fuzz/%.c=build/fuzz/%)
FUZZ_OBJ := $(SRC:src/%.c=build/fuzz/obj/%.o)
FUZZ_SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
# clang warns where gcc does not: the schema migrations are one string per step, written as
# concatenated literals on purpose
FUZZ_WARN := -Wno-string-concatenation

.PHONY: all asan unit check run deps deps-test deps-bench bench clean fuzz fuzz-build deps-fuzz

all: build/callplane

build/callplane: $(OBJ) build/obj/main.o
	$(CC) $(OPT) -o $@ $^ $(PKG_LIBS)

build/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(OPT) $(PKG_CFLAGS) -c -o $@ $<

asan: build/asan/callplane

build/asan/callplane: $(ASAN_OBJ) build/asan/obj/main.o
	$(CC) $(SAN) -o $@ $^ $(PKG_LIBS)

build/asan/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -O1 $(SAN) $(PKG_CFLAGS) -c -o $@ $<

unit: $(UNIT_BIN)

build/asan/tests/%: tests/unit/%.c $(ASAN_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -O1 $(SAN) $(PKG_CFLAGS) $(shell pkg-config --cflags cmocka) \
		-o $@ $< $(ASAN_OBJ) $(PKG_LIBS) $(shell pkg-config --libs cmocka)

build/fuzz/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	clang $(BASE_CFLAGS) $(FUZZ_WARN) -O1 $(FUZZ_SAN) -fsanitize=fuzzer-no-link $(PKG_CFLAGS) -c -o $@ $<

build/fuzz/%: fuzz/%.c $(FUZZ_OBJ)
	@mkdir -p $(dir $@)
	clang $(BASE_CFLAGS) $(FUZZ_WARN) -O1 $(FUZZ_SAN) -fsanitize=fuzzer $(PKG_CFLAGS) -o $@ $< $(FUZZ_OBJ) $(PKG_LIBS)

fuzz-build: $(FUZZ_BIN)

fuzz: deps-fuzz
	@$(MAKE) --no-print-directory fuzz-build
	@scripts/fuzz.sh run

deps:
	@scripts/deps.sh build

deps-test:
	@scripts/deps.sh test

deps-bench:
	@scripts/deps.sh bench

deps-fuzz:
	@scripts/deps.sh fuzz

# The two set-up commands of the README.
run: deps
	@$(MAKE) --no-print-directory build/callplane
	@scripts/run.sh

check: deps-test
	@$(MAKE) --no-print-directory build/asan/callplane unit fuzz-build
	@scripts/check.sh

bench: deps-bench
	@$(MAKE) --no-print-directory build/callplane
	@bench/run.sh

clean:
	rm -rf build

-include $(OBJ:.o=.d) $(ASAN_OBJ:.o=.d) $(FUZZ_OBJ:.o=.d) build/obj/main.d build/asan/obj/main.d
