# Makefile: builds build/libtapegrad.a, the examples and the tests.
#   make            library and examples       make check      install Check if missing, run the tests
#   make demo       train the example RNN      make sanitize   the tests under ASan + UBSan
#   make valgrind   the tests under valgrind   make clean
CC      ?= cc
CFLAGS  ?= -O2 -g
WARN    := -std=c11 -Wall -Wextra -Wpedantic
CPPFLAGS := -Iinclude
LDLIBS  := -lm

BUILD    := build
LIB      := $(BUILD)/libtapegrad.a
SRC      := $(wildcard src/*.c)
OBJ      := $(SRC:src/%.c=$(BUILD)/obj/%.o)
EXAMPLES := $(patsubst examples/%.c,$(BUILD)/examples/%,$(wildcard examples/*.c))
TEST_SRC := $(wildcard tests/*.c)
TESTS    := $(BUILD)/tests/run_tests

.PHONY: all demo check sanitize valgrind clean check-deps

all: $(LIB) $(EXAMPLES)

$(BUILD)/obj/%.o: src/%.c include/tapegrad.h $(wildcard src/*.h)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) -c $< -o $@

$(LIB): $(OBJ)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/examples/%: examples/%.c $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) $< $(LIB) $(LDLIBS) -o $@

demo: $(BUILD)/examples/train_sine
	./$(BUILD)/examples/train_sine

check-deps:
	@sh tests/install-check.sh

# The test binary wraps malloc, calloc and realloc (ld --wrap) so that a test can count
# the library's heap allocations during a training step.
CHECK_CFLAGS = $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS   = $(shell pkg-config --libs check 2>/dev/null)
WRAP := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc

$(TESTS): $(TEST_SRC) $(wildcard tests/*.h) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Isrc $(WARN) $(CFLAGS) $(CHECK_CFLAGS) $(TEST_SRC) $(LIB) \
	    $(WRAP) $(CHECK_LIBS) $(LDLIBS) -o $@

check: check-deps
	$(MAKE) --no-print-directory $(TESTS)
	./$(TESTS)

SAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
sanitize: check-deps
	$(MAKE) --no-print-directory BUILD=$(BUILD)/sanitize CFLAGS="$(SAN_FLAGS)" $(BUILD)/sanitize/tests/run_tests
	ASAN_OPTIONS=detect_leaks=1 CK_FORK=no ./$(BUILD)/sanitize/tests/run_tests

valgrind: check-deps
	$(MAKE) --no-print-directory $(TESTS)
	CK_FORK=no valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=all ./$(TESTS)

clean:
	rm -rf $(BUILD)
