# callplane - see README.md. `make` builds build/callplane; `make check` runs every test under
# AddressSanitizer + UndefinedBehaviorSanitizer; `make run` starts the server on SQLite.

PKGS     := libmicrohttpd jansson sqlite3 libcrypto sofia-sip-ua libcurl libre
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

.PHONY: all asan unit check run deps deps-test deps-bench bench clean

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

deps:
	@scripts/deps.sh build

deps-test:
	@scripts/deps.sh test

deps-bench:
	@scripts/deps.sh bench

# The two set-up commands of the README.
run: deps
	@$(MAKE) --no-print-directory build/callplane
	@scripts/run.sh

check: deps-test
	@$(MAKE) --no-print-directory build/asan/callplane unit
	@scripts/check.sh

bench: deps-bench
	@$(MAKE) --no-print-directory build/callplane
	@bench/run.sh

clean:
	rm -rf build

-include $(OBJ:.o=.d) $(ASAN_OBJ:.o=.d) build/obj/main.d build/asan/obj/main.d
