# Makefile: builds build/libtapegrad.a, the examples and the tests.
#   make            library and examples       make check      install Check if missing, run the tests
#   make demo       train the example RNN      make sanitize   the tests under ASan + UBSan
#   make experiments  the gradient lab, writing results/   make figures  copy its charts to docs/img
#   make bench      speed against PyTorch and numpy (BENCH_FLAGS=--quick for a short run)
#   make bench-floor  the step's products alone: the floor under any step (FLOOR_FLAGS=--quick)
#   make install PREFIX=/usr/local [DESTDIR=]   header, library and tapegrad.pc
#   make valgrind   the tests under valgrind   make clean      remove build/
#   make fuzz       the checkpoint loader under libFuzzer for FUZZ_SECONDS (clang)
#   make tsan       two threads training at once on the pool, under ThreadSanitizer (clang)
#   make hostile    the damaged-checkpoint corpus at full size (HOSTILE_COUNT files)
#   make web        the browser lab in build/web/ (WebAssembly; installs clang, wasi-libc if missing)
#   make web-test   the lab in headless Chromium   make web-serve  serve it on a local URL
#   KERNELS=ref     with any of these: the library on the reference kernels alone
#                   (src/kernels_ref.c, no src/kernels_fast.c), built under build/ref
CC      ?= cc
CFLAGS  ?= -O3 -g
WARN    := -std=c11 -Wall -Wextra -Wpedantic
CPPFLAGS := -Iinclude
LDLIBS  := -lm -pthread

# KERNELS=fast (the default): the ops call src/kernels_fast.c, and the reference kernels are
# in the library too, for the tests to compare against. KERNELS=ref: the reference kernels
# alone, in a build directory of their own so that the two kinds of objects never mix.
KERNELS ?= fast
ifeq ($(KERNELS),fast)
BUILD    := build
SRC      := $(wildcard src/*.c)
else ifeq ($(KERNELS),ref)
BUILD    := build/ref
SRC      := $(filter-out src/kernels_fast.c,$(wildcard src/*.c))
CPPFLAGS += -DTG_KERNELS_REF
else
$(error KERNELS must be fast or ref, not $(KERNELS))
endif
LIB      := $(BUILD)/libtapegrad.a
OBJ      := $(SRC:src/%.c=$(BUILD)/obj/%.o)
EXAMPLES := $(patsubst examples/%.c,$(BUILD)/examples/%,$(wildcard examples/*.c))
TEST_SRC := $(wildcard tests/*.c tests/support/*.c)
TESTS    := $(BUILD)/tests/run_tests

.PHONY: all demo experiments figures bench bench-floor check sanitize valgrind fuzz tsan hostile clean check-deps install uninstall install-test web web-deps web-test web-serve web-native-check

all: $(LIB) $(EXAMPLES)

$(BUILD)/obj/%.o: src/%.c include/tapegrad.h $(wildcard src/*.h)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) -c $< -o $@

$(LIB): $(OBJ)
	rm -f $@.tmp
	ar rcs $@.tmp $^
	mv $@.tmp $@

$(BUILD)/examples/%: examples/%.c $(wildcard examples/*.h) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) $< $(LIB) $(LDLIBS) -o $@

demo: $(BUILD)/examples/train_sine
	./$(BUILD)/examples/train_sine

# The speed benchmark: one training step of the RNN cell and the matrix products behind it,
# next to PyTorch and numpy on one thread when /usr/bin/python3 has them (bench/peer.py).
# make bench BENCH_FLAGS=--quick for a short run; ./build/bench/bench --help for the flags.
# It includes src/kernels.h (private) only to name the instruction set the kernels chose.
BENCH       := $(BUILD)/bench/bench
BENCH_FLAGS ?=
$(BENCH): bench/bench.c bench/common.c bench/common.h include/tapegrad.h src/kernels.h $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Isrc $(WARN) $(CFLAGS) bench/bench.c bench/common.c $(LIB) $(LDLIBS) -o $@

bench: $(BENCH)
	$(BENCH) $(BENCH_FLAGS)

# The floor under any step built on our kernels: the step's products alone, next to the whole
# step and an FMA loop. It includes src/kernels.h (private), unlike bench.
FLOOR       := $(BUILD)/bench/floor
FLOOR_FLAGS ?=
$(FLOOR): bench/floor.c bench/common.c bench/common.h include/tapegrad.h src/kernels.h $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Isrc $(WARN) $(CFLAGS) bench/floor.c bench/common.c $(LIB) $(LDLIBS) -o $@

bench-floor: $(FLOOR)
	$(FLOOR) $(FLOOR_FLAGS)

# The gradient lab: every examples/lab_*.c, run in turn, writing CSV and SVG under results/
# and its output as results/PROGRAM.txt; then docs/bptt.md's tables and docs/img's lab
# figures are checked against them (tests/lab_tables.sh --long --fresh results).
LAB := $(patsubst examples/%.c,$(BUILD)/examples/%,$(wildcard examples/lab_*.c))
experiments: $(LAB)
	@mkdir -p results
	@for program in $(LAB); do echo "== $$program"; \
	    ./$$program --out results > results/$${program##*/}.txt || exit 1; \
	    cat results/$${program##*/}.txt; done
	sh tests/lab_tables.sh $(BUILD)/examples --long --fresh results

# Copies the lab figures of the last `make experiments` (results/*.svg) over the ones in
# docs/img that have the same name, for a commit that changes them.
figures:
	@for figure in docs/img/*.svg; do \
	    if [ -f results/$${figure##*/} ]; then cp results/$${figure##*/} $$figure && echo "$$figure"; fi; \
	done

PREFIX  ?= /usr/local
VERSION := 0.1.0
PC_DIR   = $(DESTDIR)$(PREFIX)/lib/pkgconfig

install: $(LIB)
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib $(PC_DIR)
	install -m 644 include/tapegrad.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(LIB) $(DESTDIR)$(PREFIX)/lib/
	printf '%s\n' 'prefix=$(PREFIX)' 'includedir=$${prefix}/include' 'libdir=$${prefix}/lib' '' \
	    'Name: tapegrad' 'Description: a small tape-based autograd engine with RNN, LSTM and GRU cells' \
	    'Version: $(VERSION)' 'Cflags: -I$${includedir}' 'Libs: -L$${libdir} -ltapegrad -lm -pthread' \
	    > $(PC_DIR)/tapegrad.pc

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/include/tapegrad.h $(DESTDIR)$(PREFIX)/lib/libtapegrad.a $(PC_DIR)/tapegrad.pc

# Install into a scratch prefix, then build and run two programs through pkg-config alone:
# a hello, and examples/custom_op.c, an op of its own added through the public extension API
# (it exits non-zero when its gradient check fails).
INSTALL_TEST := $(abspath $(BUILD))/install-test
INSTALLED_FLAGS = $$(PKG_CONFIG_PATH=$(INSTALL_TEST)/lib/pkgconfig pkg-config --cflags --libs tapegrad)
install-test: $(LIB)
	rm -rf $(INSTALL_TEST)
	$(MAKE) --no-print-directory install PREFIX=$(INSTALL_TEST)
	$(CC) $(WARN) $(CFLAGS) tests/standalone/installed_hello.c $(INSTALLED_FLAGS) \
	    -o $(INSTALL_TEST)/installed_hello
	$(INSTALL_TEST)/installed_hello
	$(CC) $(WARN) $(CFLAGS) examples/custom_op.c $(INSTALLED_FLAGS) -o $(INSTALL_TEST)/custom_op
	$(INSTALL_TEST)/custom_op --iters 200

check-deps:
	@sh tests/install-check.sh

# The test binary wraps malloc, calloc and realloc (ld --wrap) so that a test can count
# the library's heap allocations during a training step.
CHECK_CFLAGS = $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS   = $(shell pkg-config --libs check 2>/dev/null)
WRAP := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc

$(TESTS): $(TEST_SRC) $(wildcard tests/*.h tests/support/*.h) examples/truncated.h examples/model.h $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Isrc -Itests/support $(WARN) $(CFLAGS) $(CHECK_CFLAGS) $(TEST_SRC) $(LIB) \
	    $(WRAP) $(CHECK_LIBS) $(LDLIBS) -o $@

# Built from include/ and the library alone: the cell against PyTorch's reference values.
$(BUILD)/tests/pytorch_match: tests/standalone/pytorch_match.c tests/support/fixture.c tests/support/fixture.h $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Itests/support $(WARN) $(CFLAGS) $< tests/support/fixture.c $(LIB) $(LDLIBS) -o $@

$(BUILD)/tests/gated_match: tests/standalone/gated_match.c tests/support/fixture.c tests/support/fixture.h $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Itests/support $(WARN) $(CFLAGS) $< tests/support/fixture.c $(LIB) $(LDLIBS) -o $@

# Several threads training models of their own at once on the pool (tg_set_threads(4)).
$(BUILD)/tests/concurrent_callers: tests/standalone/concurrent_callers.c $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) $< $(LIB) $(LDLIBS) -o $@

# The README's first C block, compiled and run so that it cannot go stale.
$(BUILD)/tests/readme_example.c: README.md
	@mkdir -p $(@D)
	awk '/^```c$$/ { inside = 1; next } /^```/ { if (inside) exit } inside' $< > $@

$(BUILD)/tests/readme_example: $(BUILD)/tests/readme_example.c $(LIB)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) $< $(LIB) $(LDLIBS) -o $@

# The damaged-checkpoint corpus (tests/hostile): gen_corpus writes it, run_hostile loads every
# file with every loader and checks the promises against an independent reader (oracle.c).
HOSTILE_SRC := tests/hostile/oracle.c tests/hostile/oracle.h tests/hostile/hostile.h
$(BUILD)/tests/gen_corpus $(BUILD)/tests/run_hostile: $(BUILD)/tests/%: tests/hostile/%.c $(HOSTILE_SRC) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) $< tests/hostile/oracle.c $(LIB) $(LDLIBS) -o $@

# Writes the corpus of $(3) files into directory $(2) with the programs of build directory $(1).
HOSTILE_SMALL := 300
HOSTILE_COUNT ?= 10000
make_corpus = rm -rf $(2) && ./$(1)/tests/gen_corpus tests/fixtures/checkpoints $(2) $(3)

hostile: $(BUILD)/tests/gen_corpus $(BUILD)/tests/run_hostile
	$(call make_corpus,$(BUILD),$(BUILD)/hostile-full,$(HOSTILE_COUNT))
	./$(BUILD)/tests/run_hostile $(BUILD)/hostile-full

# Every test program, and how to run it from the directory B holding them.
TEST_PROGRAMS = $(1)/tests/run_tests $(1)/tests/pytorch_match $(1)/tests/gated_match $(1)/tests/readme_example \
    $(1)/tests/concurrent_callers $(1)/tests/gen_corpus $(1)/tests/run_hostile
define run_tests
	sh tests/api_doc_check.sh
	sh tests/api_doc_check_test.sh
	sh tests/reading_list_check.sh
	sh tests/reading_list_check_test.sh
	$(2) ./$(1)/tests/readme_example > /dev/null
	$(2) ./$(1)/tests/pytorch_match tests/fixtures/rnn_cell.txt
	$(2) ./$(1)/tests/gated_match tests/fixtures/lstm_cell.txt
	$(2) ./$(1)/tests/gated_match tests/fixtures/gru_cell.txt
	$(2) ./$(1)/tests/concurrent_callers 2 > /dev/null
	$(2) ./$(1)/tests/concurrent_callers 4 > /dev/null
	rm -rf $(1)/hostile && $(2) ./$(1)/tests/gen_corpus tests/fixtures/checkpoints $(1)/hostile $(HOSTILE_SMALL)
	$(2) ./$(1)/tests/run_hostile $(1)/hostile
	./$(1)/tests/run_hostile --self-test $(1)/hostile
	CK_FORK=$(3) $(4) $(2) ./$(1)/tests/run_tests
endef

check: check-deps
	$(MAKE) --no-print-directory $(call TEST_PROGRAMS,$(BUILD)) $(EXAMPLES) install-test
	sh tests/charlm_smoke.sh $(BUILD)/examples/charlm
	sh tests/examples_output.sh $(BUILD)/examples
	sh tests/seed_cell_backward.sh $(BUILD)/examples/seed_cell
	sh tests/lab_truncated.sh $(BUILD)/examples/lab_truncated
	sh tests/lab_flags.sh $(BUILD)/examples
	sh tests/exercises_check.sh $(BUILD)
	$(if $(filter ref,$(KERNELS)),@echo "lab_tables.sh: skipped with KERNELS=ref: docs/bptt.md's numbers are the default kernels' and the diverging runs of experiment C differ in rounding",sh tests/lab_tables.sh $(BUILD)/examples)
	sh tests/lab_tables_test.sh
	@mkdir -p $(BUILD)/lab-quick
	for program in $(LAB); do ./$$program --quick --out $(BUILD)/lab-quick > /dev/null || exit 1; done
	sh tests/lab_outputs_check.sh $(BUILD)
	$(call run_tests,$(BUILD),,yes)

SAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
SAN_BUILD := $(BUILD)/sanitize
sanitize: check-deps
	$(MAKE) --no-print-directory BUILD=$(SAN_BUILD) CFLAGS="$(SAN_FLAGS)" \
	    $(call TEST_PROGRAMS,$(SAN_BUILD)) $(SAN_BUILD)/examples/train_sine $(SAN_BUILD)/examples/charlm
	./$(SAN_BUILD)/examples/train_sine --epochs 3 > /dev/null
	sh tests/charlm_smoke.sh $(SAN_BUILD)/examples/charlm
	$(call run_tests,$(SAN_BUILD),,no)

# Test cases tagged "slow" (long training runs) are left out here; ASan runs them.
VALGRIND := valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=all
valgrind: check-deps
	$(MAKE) --no-print-directory $(call TEST_PROGRAMS,$(BUILD)) $(BUILD)/examples/train_sine $(BUILD)/examples/charlm
	$(VALGRIND) ./$(BUILD)/examples/train_sine --epochs 2 > /dev/null
	$(VALGRIND) ./$(BUILD)/examples/charlm --text README.md --cell lstm --hidden 8 --steps 8 --batch 2 \
	    --iters 5 --save $(BUILD)/charlm_vg.ckpt > /dev/null
	$(VALGRIND) ./$(BUILD)/examples/charlm --resume $(BUILD)/charlm_vg.ckpt --cell lstm --hidden 8 \
	    --iters 0 --sample 20 > /dev/null
	$(call run_tests,$(BUILD),$(VALGRIND),no,CK_EXCLUDE_TAGS=slow)

# The checkpoint loader under libFuzzer (clang) for FUZZ_SECONDS, starting from the fixture
# checkpoints and the damaged-checkpoint corpus at full size (HOSTILE_COUNT files, in
# build/fuzz/seeds); what it finds that is new is kept in build/fuzz/corpus.
FUZZ_SECONDS ?= 60
FUZZ_FLAGS   := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
$(BUILD)/fuzz/fuzz_load: tests/fuzz/fuzz_load.c $(SRC) include/tapegrad.h $(wildcard src/*.h)
	@mkdir -p $(@D)
	clang $(CPPFLAGS) $(WARN) $(FUZZ_FLAGS) $< $(SRC) $(LDLIBS) -o $@

fuzz: $(BUILD)/fuzz/fuzz_load $(BUILD)/tests/gen_corpus
	@mkdir -p $(BUILD)/fuzz/corpus
	$(call make_corpus,$(BUILD),$(BUILD)/fuzz/seeds,$(HOSTILE_COUNT)) > /dev/null
	./$(BUILD)/fuzz/fuzz_load -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    $(BUILD)/fuzz/corpus $(BUILD)/fuzz/seeds tests/fixtures/checkpoints

# The library and tests/standalone/concurrent_callers.c under ThreadSanitizer, run with two
# caller threads. clang: gcc's TSan crashes in the resolver of target_clones before main
# (TG_ELEMENTWISE, gcc only, leaves clang's build without them).
TSAN_FLAGS := -O1 -g -fsanitize=thread -fno-omit-frame-pointer
TSAN_BUILD := $(BUILD)/tsan
tsan:
	$(MAKE) --no-print-directory BUILD=$(TSAN_BUILD) CC=clang CFLAGS="$(TSAN_FLAGS)" \
	    $(TSAN_BUILD)/tests/concurrent_callers
	TSAN_OPTIONS=halt_on_error=1 ./$(TSAN_BUILD)/tests/concurrent_callers 2 300

clean:
	rm -rf $(BUILD)

# ---- The gradient lab in the browser (docs/web.md) -------------------------------------------
#   make web        build/web/: the page (examples/web/) and the library compiled to WebAssembly
#   make web-test   the page in headless chromium, held to the native numbers (tests/web_test.js)
#   make web-serve  serve build/web/ on 127.0.0.1 and print its URL
# The library's own src/*.c for wasm32-wasi (clang, lld and Debian's wasi-libc), but for
# src/files.c (POSIX file I/O, which the lab does not use) and with TG_SINGLE_THREAD (no pool).
# There the fast kernels take their plain C path, the one print_native takes natively, so that
# the page and print_native compute the same floats; the x86 helpers left unused by that path
# would warn (unused). Only wasi-libc's headers: -nostdlibinc keeps the host's /usr/include out.
WEB_CC      ?= clang
WEB_INCLUDE ?= /usr/include/wasm32-wasi
WEB_CFLAGS  := --target=wasm32-wasi -nostdlibinc -isystem $(WEB_INCLUDE) -Iinclude $(WARN) -O2 \
               -DTG_SINGLE_THREAD
WEB_SRC     := $(filter-out src/files.c,$(wildcard src/*.c))
WEB_OBJ     := $(WEB_SRC:src/%.c=build/web-obj/%.o)
WEB_PAGE    := $(addprefix build/web/,index.html app.js worker.js wasi.js style.css bptt.md)
WEB_NATIVE  := $(BUILD)/web-native/print_native
WEB_SINGLE  := $(BUILD)/web-native/print_native_single
WEB_LAB     := examples/web/lab_web.c examples/web/lab_web.h examples/model.h
WEB_PORT    ?= 8000

web-deps:
	@sh tests/install-web.sh

build/web-obj/kernels_fast.o: WEB_CFLAGS += -Wno-unused-variable -Wno-unused-parameter -Wno-unused-function
build/web-obj/%.o: src/%.c include/tapegrad.h $(wildcard src/*.h) | web-deps
	@mkdir -p $(@D)
	$(WEB_CC) $(WEB_CFLAGS) -c $< -o $@

build/web-obj/libtapegrad.a: $(WEB_OBJ)
	rm -f $@ && llvm-ar rcs $@ $^

build/web/lab.wasm: $(WEB_LAB) build/web-obj/libtapegrad.a
	@mkdir -p $(@D)
	$(WEB_CC) $(WEB_CFLAGS) -mexec-model=reactor examples/web/lab_web.c build/web-obj/libtapegrad.a \
	    -lm -o $@

build/web/%: examples/web/%
	@mkdir -p $(@D)
	cp $< $@

build/web/bptt.md: docs/bptt.md
	@mkdir -p $(@D)
	cp $< $@

web: build/web/lab.wasm $(WEB_PAGE)

# The same lab_web.c natively, and again with the single-thread threads.c in the library.
$(WEB_NATIVE): examples/web/print_native.c $(WEB_LAB) examples/cli.h src/kernels.h $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) examples/web/print_native.c examples/web/lab_web.c $(LIB) \
	    $(LDLIBS) -o $@

$(WEB_SINGLE): examples/web/print_native.c $(WEB_LAB) examples/cli.h src/threads.c $(OBJ)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) -DTG_SINGLE_THREAD examples/web/print_native.c \
	    examples/web/lab_web.c src/threads.c $(filter-out $(BUILD)/obj/threads.o,$(OBJ)) -lm -o $@

WEB_NATIVE_NEEDS := $(WEB_NATIVE) $(WEB_SINGLE) $(BUILD)/examples/lab_gradient_norms $(BUILD)/examples/seed_cell
web-native-check: $(WEB_NATIVE_NEEDS)
	sh tests/web_native.sh $(BUILD)
check: web-native-check

web-test: web $(WEB_NATIVE)
	node tests/web_test.js build/web $(WEB_NATIVE)

web-serve: web
	node tests/web_server.js build/web $(WEB_PORT)
