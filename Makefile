# sshfsd build.  `make` builds the release tree, `make test` runs every
# test; README.md ("Build and test") lists all targets.
#
# Three build trees come from this one Makefile, selected by VARIANT:
#   release  build/       $(CC), the default
#   asan     build-asan/  $(CLANG) with AddressSanitizer and UBSan
#   fuzz     build-fuzz/  $(CLANG) with libFuzzer instrumentation
# The top-level targets call make again once per tree.
#
# Source layout rules:
#   src/*/*.c except *_main.c      -> $(BUILD)/libsshfsd.a
#   src/tools/NAME_main.c          -> $(BUILD)/sshfsd-NAME (image -> sshfsd-image)
#   src/server/NAME_main.c         -> $(BUILD)/NAME (sshfsd_main.c -> sshfsd)
#   tests/unit/test_*.c            -> $(BUILD)/tests/test_*, one cmocka program
#                                     each; other tests/unit/*.c are linked
#                                     into all of them as helpers
#   tests/fuzz/fuzz_*.c            -> build-fuzz/fuzz/fuzz_*, libFuzzer targets
#   src/server/sshfsd_main.c again -> $(BUILD)/tests/sshfsd-lockdown-probe,
#                                     built with SSHFSD_LOCKDOWN_PROBE for
#                                     tests/isolation/ (never installed)

PREFIX ?= /usr/local
DESTDIR ?=
CLANG ?= clang
FUZZ_SECONDS ?= 600
FUZZ_CI_SECONDS ?= 60
TESTS ?=
VARIANT ?= release
V ?= 0

ifeq ($(V),0)
Q := @
else
Q :=
endif

SANITIZE := -fsanitize=address,undefined -fno-omit-frame-pointer \
            -fno-sanitize-recover=all

ifeq ($(VARIANT),release)
BUILD := build
TREE_CC := $(CC)
TREE_FLAGS :=
else ifeq ($(VARIANT),asan)
BUILD := build-asan
TREE_CC := $(CLANG)
TREE_FLAGS := $(SANITIZE)
else ifeq ($(VARIANT),fuzz)
BUILD := build-fuzz
TREE_CC := $(CLANG)
TREE_FLAGS := $(SANITIZE) -fsanitize=fuzzer-no-link
else
$(error unknown VARIANT '$(VARIANT)': use release, asan or fuzz)
endif

BASE_CFLAGS := -std=gnu11 -O2 -g -Wall -Wextra -Werror -Isrc -D_GNU_SOURCE
ALL_CFLAGS := $(BASE_CFLAGS) $(TREE_FLAGS) $(EXTRA_CFLAGS)
LDLIBS := -lcrypto -lseccomp
TEST_LDLIBS := -lcmocka $(LDLIBS)

LIB_SRCS := $(filter-out %_main.c,$(wildcard src/*/*.c))
TOOL_MAINS := $(wildcard src/tools/*_main.c)
SERVER_MAINS := $(wildcard src/server/*_main.c)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_HELPERS := $(filter-out tests/unit/test_%.c,$(wildcard tests/unit/*.c))
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)

LIB := $(BUILD)/libsshfsd.a
LIB_LIST := $(BUILD)/libsshfsd.sources
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
TOOL_BINS := $(TOOL_MAINS:src/tools/%_main.c=$(BUILD)/sshfsd-%)
SERVER_BINS := $(SERVER_MAINS:src/server/%_main.c=$(BUILD)/%)
BINS := $(TOOL_BINS) $(SERVER_BINS)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
UNIT_HELPER_OBJS := $(UNIT_HELPERS:%.c=$(BUILD)/obj/%.o)
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=$(BUILD)/fuzz/%)
PROBE_OBJ := $(BUILD)/obj/probe/sshfsd_main.o
PROBE_BIN := $(BUILD)/tests/sshfsd-lockdown-probe

ALL_OBJS := $(LIB_OBJS) $(UNIT_HELPER_OBJS) \
            $(TOOL_MAINS:%.c=$(BUILD)/obj/%.o) \
            $(SERVER_MAINS:%.c=$(BUILD)/obj/%.o) \
            $(UNIT_SRCS:%.c=$(BUILD)/obj/%.o) \
            $(FUZZ_SRCS:%.c=$(BUILD)/obj/%.o) $(PROBE_OBJ)

# Quiet sub-makes, so that `make test` prints results only (V=1 shows all).
# Rewrite the source list only when it changed, so that its timestamp
# tells when the archive's members changed.
ifneq ($(LIB_SRCS),$(shell cat $(LIB_LIST) 2>/dev/null))
$(shell mkdir -p $(BUILD) && echo '$(LIB_SRCS)' > $(LIB_LIST))
endif

SUBMAKE := $(MAKE) --no-print-directory $(if $(filter 0,$(V)),-s)

.PHONY: all lib bins tree fuzz-targets test fuzz bench run install clean

all: lib bins

lib: $(LIB)

bins: $(BINS)

# Everything the test runner needs from one tree.
tree: lib bins $(UNIT_BINS) $(PROBE_BIN)

fuzz-targets: $(FUZZ_BINS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(Q)$(TREE_CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

# The archive is recreated, never updated, and also depends on the list of
# its sources, so that deleting a source file drops its object.
$(LIB): $(LIB_OBJS) $(LIB_LIST)
	@mkdir -p $(@D)
	@rm -f $@
	$(Q)$(AR) rcs $@ $(LIB_OBJS)

$(TOOL_BINS): $(BUILD)/sshfsd-%: $(BUILD)/obj/src/tools/%_main.o $(LIB)
	$(Q)$(TREE_CC) $(ALL_CFLAGS) $^ $(LDLIBS) -o $@

$(SERVER_BINS): $(BUILD)/%: $(BUILD)/obj/src/server/%_main.o $(LIB)
	$(Q)$(TREE_CC) $(ALL_CFLAGS) $^ $(LDLIBS) -o $@

$(PROBE_OBJ): src/server/sshfsd_main.c
	@mkdir -p $(@D)
	$(Q)$(TREE_CC) $(ALL_CFLAGS) -DSSHFSD_LOCKDOWN_PROBE -MMD -MP -c $< -o $@

$(PROBE_BIN): $(PROBE_OBJ) $(LIB)
	@mkdir -p $(@D)
	$(Q)$(TREE_CC) $(ALL_CFLAGS) $^ $(LDLIBS) -o $@

$(UNIT_BINS): $(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(UNIT_HELPER_OBJS) $(LIB)
	@mkdir -p $(@D)
	$(Q)$(TREE_CC) $(ALL_CFLAGS) $^ $(TEST_LDLIBS) -o $@

$(FUZZ_BINS): $(BUILD)/fuzz/%: $(BUILD)/obj/tests/fuzz/%.o $(LIB)
	@mkdir -p $(@D)
	$(Q)$(TREE_CC) $(ALL_CFLAGS) -fsanitize=fuzzer $^ $(LDLIBS) -o $@

-include $(ALL_OBJS:.o=.d)

# The runner takes trees and the fuzz tree as arguments; TESTS, when set,
# keeps only the tests whose name contains it (a shell glob also works).
test:
	@scripts/deps.sh
	@$(SUBMAKE) VARIANT=release tree
	@$(SUBMAKE) VARIANT=asan tree
	@$(SUBMAKE) VARIANT=fuzz fuzz-targets
	@TESTS='$(TESTS)' tests/run.sh --fuzz build-fuzz \
	    --fuzz-seconds $(FUZZ_CI_SECONDS) build build-asan

fuzz:
	@scripts/deps.sh
	@$(SUBMAKE) VARIANT=fuzz fuzz-targets
	@TESTS='$(TESTS)' tests/run.sh --fuzz build-fuzz \
	    --fuzz-seconds $(FUZZ_SECONDS)

bench:
	@$(SUBMAKE) VARIANT=release all
	@set -e; for script in bench/bench_*.sh; do \
	    [ -e "$$script" ] || continue; \
	    echo "== $$script"; \
	    BUILD="$(CURDIR)/build" bash "$$script"; \
	done

# Serve a demo image in demo/ on 127.0.0.1:22022 (scripts/run-demo.sh).
run:
	@scripts/deps.sh
	@$(SUBMAKE) VARIANT=release all
	@scripts/run-demo.sh

install:
	@$(SUBMAKE) VARIANT=release all
	install -d "$(DESTDIR)$(PREFIX)/bin"
	@set -e; for bin in build/sshfsd-image build/sshfsd \
	    build/sshfsd-sftp-server; do \
	    if [ -f "$$bin" ]; then \
	        echo "install -m 0755 $$bin $(DESTDIR)$(PREFIX)/bin/"; \
	        install -m 0755 "$$bin" "$(DESTDIR)$(PREFIX)/bin/"; \
	    fi; \
	done
	@set -e; for page in docs/*.1; do \
	    [ -e "$$page" ] || continue; \
	    install -d "$(DESTDIR)$(PREFIX)/share/man/man1"; \
	    echo "install -m 0644 $$page $(DESTDIR)$(PREFIX)/share/man/man1/"; \
	    install -m 0644 "$$page" "$(DESTDIR)$(PREFIX)/share/man/man1/"; \
	done

clean:
	rm -rf build build-asan build-fuzz
