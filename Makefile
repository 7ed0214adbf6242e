# scriptumfs: the filesystem, the CLI, the client library and the emulator.
#
#   make          install missing Debian packages, build everything into build/
#   make check    format check, lint, unit tests (plain, ASan+UBSan,
#                 ThreadSanitizer), fuzzing briefly, integration tests, a soak
#                 of a minute
#   make demo     the emulator with demo data, and what to type
#   make bench    the benchmarks, each figure next to its baseline
#   make soak     faults that change, every byte checked, for SECONDS (600)
#   make install  the binaries, mount.scriptumfs and the manual pages under
#                 PREFIX (/usr/local), staged under DESTDIR; make uninstall
#
# Every public target first runs `make deps`, so a fresh Debian machine needs
# nothing else. The real work happens in a second make (`build`, `unit`, ...)
# so that pkg-config is only asked after the packages are there.

BUILD  ?= build
SAN    ?=
CC     ?= cc
# Debian's interpreter, which has the packages mk/deps.sh installs
PYTHON3 := /usr/bin/python3
PYTEST  ?= $(PYTHON3) -m pytest
PKGS   := fuse3 libcurl jansson yaml-0.1 libmicrohttpd

ifeq ($(SAN),1)
BUILD    := build/asan
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
endif
ifeq ($(SAN),thread)
BUILD    := build/tsan
SANFLAGS := -fsanitize=thread
endif

CFLAGS   ?= -O2 -g
CFLAGS   += -std=c11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	    -Wno-missing-field-initializers -pthread -MMD -MP $(SANFLAGS)
CPPFLAGS += -D_GNU_SOURCE
# Each directory compiles with its own headers and those of the layers
# below it only: the library (client/) sees itself, the CLI (client/cli/)
# and the daemon (fs/) the library too, the emulator itself; the tests see
# everything.
TEST_INC := -Iclient -Iclient/cli -Ifs -Itests/emulator
inc_for   = $(strip $(if $(filter client/cli/%,$1),-Iclient/cli -Iclient,\
		$(if $(filter client/%,$1),-Iclient,\
		$(if $(filter fs/%,$1),-Ifs -Iclient,\
		$(if $(filter tests/emulator/%,$1),-Itests/emulator,$(TEST_INC))))))
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   = $(shell pkg-config --libs $(PKGS))
LDFLAGS  += -pthread $(SANFLAGS)

EMU_SRC  := $(filter-out tests/emulator/main.c,$(wildcard tests/emulator/*.c))
EMU_OBJ  := $(EMU_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/demo_catalog.o
CLI_SRC  := $(wildcard client/cli/*.c)
LIB_SRC  := $(wildcard client/*.c)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
FS_SRC   := $(filter-out fs/main.c,$(wildcard fs/*.c))
FS_OBJ   := $(FS_SRC:%.c=$(BUILD)/obj/%.o)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
C_FILES  := $(shell find client fs mount-helper tests bench -name '*.[ch]' 2>/dev/null)

CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)

BINARIES := $(BUILD)/scriptum-emulator $(BUILD)/scriptum $(if $(wildcard fs/main.c),$(BUILD)/scriptumfs)

.PHONY: all deps build unit check check-format check-man lint format integration conformance-asan \
	tsan tsan-run fuzz fuzz-run fuzz-merge demo demo-stop bench soak soak-run soak-model clean install uninstall
.DEFAULT_GOAL := all

all: deps
	@$(MAKE) --no-print-directory build

deps:
	@sh mk/deps.sh

build: $(BINARIES)

check: deps
	@$(MAKE) --no-print-directory check-format check-man lint
	@$(MAKE) --no-print-directory build unit
	@$(MAKE) --no-print-directory SAN=1 build unit
	@$(MAKE) --no-print-directory SAN=thread tsan-run
	@$(MAKE) --no-print-directory FUZZ_SECONDS=10 fuzz-run
	@$(MAKE) --no-print-directory integration
	@$(MAKE) --no-print-directory SOAK_SEED=1 soak-run

check-format:
	@echo "== format (clang-format)"
	@clang-format --dry-run --Werror $(C_FILES)

format:
	clang-format -i $(C_FILES)

# the project's own source rules (mk/lint.py: purpose comments, no strcpy
# and kin, no reserved names, include layering, file and function sizes)
lint:
	@echo "== lint (mk/lint.py)"
	@$(PYTHON3) mk/lint.py

check-man:
	@echo "== manual pages (mandoc -T lint)"
	@out=$$(mandoc -T lint man/* 2>&1); if [ -n "$$out" ]; then echo "$$out"; exit 1; fi

# Some unit tests talk to the emulator of the same build.
unit: $(UNIT_BIN) $(BUILD)/scriptum-emulator
	@echo "== unit tests ($(BUILD))"
	@set -e; for t in $(UNIT_BIN); do echo "-- $$t"; \
		SCRIPTUM_EMULATOR=$(BUILD)/scriptum-emulator $$t; done

# ThreadSanitizer on the daemon's concurrent parts: the payload, metadata,
# watch and listing unit tests, then a short mounted run (payload readers,
# freshness with watches). `make tsan` alone; `make check` runs it.
TSAN_UNIT := test_fs_payload test_fs_meta test_fs_watch test_listing

tsan: deps
	@$(MAKE) --no-print-directory SAN=thread tsan-run

tsan-run: build $(TSAN_UNIT:%=$(BUILD)/tests/%)
	@echo "== ThreadSanitizer ($(BUILD))"
	@set -e; for t in $(TSAN_UNIT); do echo "-- $$t"; \
		TSAN_OPTIONS=exitcode=88:second_deadlock_stack=1 \
		SCRIPTUM_EMULATOR=$(BUILD)/scriptum-emulator $(BUILD)/tests/$$t; done
	SCRIPTUM_BUILD=$(BUILD) $(PYTEST) tests/test_fs_payload.py tests/test_fs_fresh.py

# The integration tests drive the plain binaries; the emulator conformance,
# CLI and mount suites then run once more against the ASan+UBSan builds,
# which must stay clean (the fixtures fail a test on any sanitizer report),
# and once more against an emulator that spells every answer at random
# (SPEC §2.6) from WIRE_SEED.
integration:
	@echo "== integration tests (pytest)"
	$(PYTEST) tests
	@echo "== the same suites against the ASan+UBSan builds"
	SCRIPTUM_BUILD=build/asan $(PYTEST) tests/test_emulator_*.py tests/test_cli_*.py \
		tests/test_fs_*.py
	@echo "== the CLI and mount suites against an emulator spelling the wire at random"
	SCRIPTUM_WIRE=random SCRIPTUM_WIRE_SEED=$(WIRE_SEED) $(PYTEST) tests/test_cli_*.py \
		tests/test_fs_*.py --ignore=tests/test_fs_model.py

# libFuzzer targets (clang, ASan+UBSan), each run from its seed corpus for
# FUZZ_SECONDS, or for FUZZ_RUNS executions when that is given (make fuzz
# FUZZ_RUNS=10000000); `make check` runs them briefly. Each target's
# executions are recorded in build/fuzz/executions. What a run adds to the
# corpus is in build/fuzz/corpus/; `make fuzz-merge` folds the inputs that
# reach new coverage into tests/fuzz/corpus/.
FUZZ_SECONDS ?= 60
FUZZ_RUNS    ?=
# the seed of the random wire the CLI and mount suites run under once
WIRE_SEED    ?= 7
FUZZ_SRC     := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN     := $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)
FUZZ_FLAGS   := -g -O1 -std=c11 -D_GNU_SOURCE -Iclient -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=all
FUZZ_LIMIT   := $(if $(FUZZ_RUNS),-runs=$(FUZZ_RUNS) -max_total_time=0,-max_total_time=$(FUZZ_SECONDS))

fuzz: deps
	@$(MAKE) --no-print-directory fuzz-run

fuzz-run: $(FUZZ_BIN)
	@echo "== fuzzing, $(if $(FUZZ_RUNS),$(FUZZ_RUNS) executions,$(FUZZ_SECONDS) s) a target"
	@set -e; for f in $(FUZZ_BIN); do \
		name=$$(basename $$f); mkdir -p build/fuzz/corpus/$$name; \
		echo "-- $$name"; t0=$$(date +%s); \
		if ! $$f $(FUZZ_LIMIT) -rss_limit_mb=2048 -print_final_stats=1 \
			-artifact_prefix=build/fuzz/ build/fuzz/corpus/$$name \
			tests/fuzz/corpus/$$name >build/fuzz/$$name.log 2>&1; then \
			tail -n 40 build/fuzz/$$name.log; exit 1; \
		fi; \
		runs=$$(sed -n 's/^stat::number_of_executed_units: *//p' build/fuzz/$$name.log); \
		echo "$$(date -u +%FT%TZ) $$name: $$runs executions in $$(( $$(date +%s) - t0 )) s," \
			"no crash" | tee -a build/fuzz/executions; \
	done

fuzz-merge: $(FUZZ_BIN)
	@set -e; for f in $(FUZZ_BIN); do \
		name=$$(basename $$f); mkdir -p build/fuzz/corpus/$$name; \
		before=$$(ls tests/fuzz/corpus/$$name | wc -l); \
		$$f -merge=1 tests/fuzz/corpus/$$name build/fuzz/corpus/$$name \
			>build/fuzz/$$name.merge.log 2>&1 || { tail -n 20 build/fuzz/$$name.merge.log; exit 1; }; \
		echo "$$name: $$before -> $$(ls tests/fuzz/corpus/$$name | wc -l) inputs"; \
	done

# what the fuzzed parsers are made of; no network code
FUZZ_LIB     := client/stream.c client/errmap.c client/b64.c client/model.c client/model_enum.c \
		client/model_out.c client/jsontext.c \
		client/utf8.c client/dynbuf.c \
		client/jsonload.c \
		client/errbuf.c

build/fuzz/%: tests/fuzz/%.c $(FUZZ_LIB)
	@mkdir -p $(@D)
	clang $(FUZZ_FLAGS) $(PKG_CFLAGS) -o $@ $< $(FUZZ_LIB) $(PKG_LIBS)

demo: all
	@sh mk/demo.sh start

demo-stop:
	@sh mk/demo.sh stop

bench: all
	@sh bench/run.sh

# The soak (tests/soak.py): the ASan+UBSan mount and CLI for SECONDS
# against an emulator whose faults change every few seconds, with readers
# checking every byte, sweeps, creates, answers, tail -f; it fails on a
# wrong byte, a hang, a sanitizer report, or an RSS or descriptor count
# still growing in the second half. `make check` runs it for 60 s.
# soak-model: the reference-model test (tests/refmodel.py) over successive
# seeds and wire settings for SECONDS (check runs it briefly, in
# tests/test_fs_model.py); WIRE=spec keeps to one wire setting.
SECONDS   ?= 600
SOAK_SEED ?= $(shell date +%s)
soak: deps
	@$(MAKE) --no-print-directory SAN=1 build
	@$(MAKE) --no-print-directory SOAK_SECONDS=$(SECONDS) soak-run

SOAK_SECONDS ?= 60
soak-run:
	@echo "== soak, $(SOAK_SECONDS) s (build/asan)"
	SCRIPTUM_BUILD=build/asan $(PYTHON3) tests/soak.py --seconds $(SOAK_SECONDS) \
		--seed $(SOAK_SEED)

soak-model: deps
	@$(MAKE) --no-print-directory build
	$(PYTHON3) tests/soak_model.py --seconds $(SECONDS)

clean:
	rm -rf build

# make install [PREFIX=/usr/local] [DESTDIR=]: the binaries to bin/, the
# mount helper to sbin/ with a link in /sbin, where mount(8) looks for
# mount.<type> (none when PREFIX's sbin is /sbin already, as /usr/sbin is
# with a merged /usr), the manual pages to share/man/. Directories are
# created as needed and never removed: uninstall removes the files, and
# the /sbin link only if it is still the one install made.
PREFIX   ?= /usr/local
BINDIR   := $(PREFIX)/bin
SBINDIR  := $(PREFIX)/sbin
MANDIR   := $(PREFIX)/share/man
INST_BIN := scriptum scriptumfs scriptum-emulator
INST_MAN := man1/scriptum.1 man1/scriptumfs.1 man1/scriptum-emulator.1 man5/scriptum-config.5 \
	    man8/mount.scriptumfs.8
HELPER   := $(SBINDIR)/mount.scriptumfs
SBINLINK := $(DESTDIR)/sbin/mount.scriptumfs

install: all
	@set -e; for b in $(INST_BIN); do echo "install $(DESTDIR)$(BINDIR)/$$b"; \
		install -D -m 755 $(BUILD)/$$b $(DESTDIR)$(BINDIR)/$$b; done
	@echo "install $(DESTDIR)$(HELPER)"
	@install -D -m 755 mount-helper/mount.scriptumfs $(DESTDIR)$(HELPER)
	@set -e; for m in $(INST_MAN); do echo "install $(DESTDIR)$(MANDIR)/$$m"; \
		install -D -m 644 man/$${m#*/} $(DESTDIR)$(MANDIR)/$$m; done
	@mkdir -p $(DESTDIR)/sbin
	@if [ ! $(DESTDIR)/sbin -ef $(DESTDIR)$(SBINDIR) ]; then \
		echo "ln -sf $(HELPER) $(SBINLINK)"; ln -sf $(HELPER) $(SBINLINK); fi

uninstall:
	@for f in $(INST_BIN:%=$(DESTDIR)$(BINDIR)/%) $(DESTDIR)$(HELPER) \
		$(INST_MAN:%=$(DESTDIR)$(MANDIR)/%); do \
		if [ -e $$f ] || [ -L $$f ]; then echo "rm -f $$f"; rm -f $$f; fi; done
	@if [ -L $(SBINLINK) ] && [ "$$(readlink $(SBINLINK))" = $(HELPER) ]; then \
		echo "rm -f $(SBINLINK)"; rm -f $(SBINLINK); fi

$(BUILD)/scriptum-emulator: $(BUILD)/obj/tests/emulator/main.o $(BUILD)/libemu.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/scriptum: $(CLI_OBJ) $(BUILD)/libscriptum.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/scriptumfs: $(BUILD)/obj/fs/main.o $(BUILD)/libfs.a $(BUILD)/libscriptum.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/libfs.a: $(FS_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libemu.a: $(EMU_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libscriptum.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# Unit tests of the emulator (test_emu_*) link its code; those of the
# filesystem (test_fs_*) link its modules; the others link only libscriptum.
# The last two kinds also link emu.o, the emulator a test starts (tests/unit/emu.c);
# it is kept, not deleted as an intermediate file.
.SECONDARY: $(BUILD)/obj/tests/unit/emu.o
$(BUILD)/tests/test_emu_%: tests/unit/test_emu_%.c $(BUILD)/libemu.a
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(TEST_INC) $(PKG_CFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libemu.a \
		$(PKG_LIBS) -lcmocka

$(BUILD)/tests/test_fs_%: tests/unit/test_fs_%.c $(BUILD)/obj/tests/unit/emu.o $(BUILD)/libfs.a \
		$(BUILD)/libscriptum.a
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(TEST_INC) $(PKG_CFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/obj/tests/unit/emu.o \
		$(BUILD)/libfs.a $(BUILD)/libscriptum.a $(PKG_LIBS) -lcmocka

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/obj/tests/unit/emu.o $(BUILD)/libscriptum.a
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(TEST_INC) $(PKG_CFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/obj/tests/unit/emu.o \
		$(BUILD)/libscriptum.a $(PKG_LIBS) -lcmocka

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(call inc_for,$<) $(PKG_CFLAGS) $(CFLAGS) -c -o $@ $<

# The demo catalog is compiled in, so `--seed demo` needs no file at run time.
$(BUILD)/gen/demo_catalog.c: tests/emulator/demo.yaml
	@mkdir -p $(@D)
	cd tests/emulator && xxd -i demo.yaml > $(CURDIR)/$@

$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -Wno-missing-variable-declarations -c -o $@ $<

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
