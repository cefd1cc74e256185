# ckc - top-level build. `make` builds build/ckc and build/libckc.a.
# `make test` runs the whole suite; `make demo` the main job (README).

CC      ?= cc
BUILD   := build
WARN    := -std=c11 -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes \
           -Wmissing-prototypes -Werror
OPT     ?= -O2 -g
CPPFLAGS := -D_POSIX_C_SOURCE=200809L -I. -I$(BUILD) -Irt-min
CJSON_CFLAGS := $(shell pkg-config --cflags libcjson 2>/dev/null)
CJSON_LIBS   := $(shell pkg-config --libs libcjson 2>/dev/null || echo -lcjson)
CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS   := $(shell pkg-config --libs check 2>/dev/null || echo -lcheck)
CFLAGS  ?=
SAN     ?=
ALL_CFLAGS = $(OPT) $(SAN) $(CFLAGS) $(CJSON_CFLAGS)
LDLIBS  := $(CJSON_LIBS) -lm

# Hand-written compiler sources: every .c of the pipeline folders.
SRC_DIRS := util frontend ir passes lower emit targets
LIB_SRC  := $(sort $(foreach d,$(SRC_DIRS),$(wildcard $(d)/*.c)))
# The runtime shipped in generated projects, embedded into ckc as strings.
RT_FILES := $(sort $(wildcard rt-min/*.h rt-min/*.c rt-min/x86/*.h rt-min/x86/*.c))
STDLIB   := $(sort $(wildcard stdlib/*.ckm))

RT_SRC   := $(sort $(wildcard rt-min/*.c))
GEN_OBJ  := $(BUILD)/grammar/ckm.tab.o $(BUILD)/grammar/lex.yy.o \
            $(BUILD)/rt-embed.o $(RT_SRC:%.c=$(BUILD)/%.o)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o) $(GEN_OBJ)

.PHONY: all test test-long demo asan golden-update bench clean deps lint
all: $(BUILD)/ckc $(BUILD)/ckc-lint

deps:
	@scripts/install-deps.sh --check-or-install

# ---- generated front end -----------------------------------------------------
$(BUILD)/grammar/ckm.tab.c $(BUILD)/grammar/ckm.tab.h: grammar/ckm.y
	@mkdir -p $(@D)
	bison -Wall -Werror --defines=$(BUILD)/grammar/ckm.tab.h -o $(BUILD)/grammar/ckm.tab.c $<
$(BUILD)/grammar/lex.yy.c $(BUILD)/grammar/lex.yy.h: grammar/ckm.l $(BUILD)/grammar/ckm.tab.h
	@mkdir -p $(@D)
	flex --header-file=$(BUILD)/grammar/lex.yy.h -o $(BUILD)/grammar/lex.yy.c $<
# Generated code: relaxed warnings (style guide).
$(BUILD)/grammar/%.o: $(BUILD)/grammar/%.c $(BUILD)/grammar/ckm.tab.h $(BUILD)/grammar/lex.yy.h
	$(CC) -std=c11 $(ALL_CFLAGS) $(CPPFLAGS) -Wno-unused-function -c $< -o $@

# ---- the runtime embedded into ckc --------------------------------------------
$(BUILD)/tools/embed: tools/embed.c
	@mkdir -p $(@D)
	$(CC) -std=c11 -O1 -Wall -Wextra -Werror $< -o $@
$(BUILD)/rt-embed.c: $(BUILD)/tools/embed $(RT_FILES) $(STDLIB)
	$(BUILD)/tools/embed $(RT_FILES) $(STDLIB) > $@
$(BUILD)/rt-embed.o: $(BUILD)/rt-embed.c
	$(CC) -std=c11 $(ALL_CFLAGS) $(CPPFLAGS) -c $< -o $@
# rt-min is linked into ckc too (constant folding, tests): built as the C99 it is.
$(BUILD)/rt-min/%.o: rt-min/%.c $(wildcard rt-min/*.h)
	@mkdir -p $(@D)
	$(CC) -std=c99 -Wall -Wextra -Werror $(ALL_CFLAGS) -c $< -o $@

# ---- the compiler ---------------------------------------------------------------
$(BUILD)/%.o: %.c $(BUILD)/grammar/ckm.tab.h $(BUILD)/grammar/lex.yy.h
	@mkdir -p $(@D)
	$(CC) $(WARN) $(ALL_CFLAGS) $(CPPFLAGS) -MMD -MP -c $< -o $@
-include $(LIB_OBJ:.o=.d) $(BUILD)/main.d

$(BUILD)/libckc.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^
$(BUILD)/ckc: $(BUILD)/main.o $(BUILD)/libckc.a
	$(CC) $(OPT) $(SAN) $^ $(LDLIBS) -o $@

# ---- libclang validator of emitted C ------------------------------------------------
LLVM_CONFIG ?= llvm-config-14
$(BUILD)/ckc-lint: tools/ckc-lint.c
	@mkdir -p $(@D)
	$(CC) $(WARN) $(OPT) -I$(shell $(LLVM_CONFIG) --includedir) \
	  -DCKC_CLANG_RESOURCE_DIR='"$(shell clang-14 -print-resource-dir)"' $< \
	  -L$(shell $(LLVM_CONFIG) --libdir) -Wl,-rpath,$(shell $(LLVM_CONFIG) --libdir) -lclang -o $@

# ---- unit tests (Check) -------------------------------------------------------------------
UNIT_SRC := $(sort $(wildcard test-suite/unit/check_*.c))
UNIT_OBJ := $(UNIT_SRC:%.c=$(BUILD)/%.o)
$(BUILD)/test-suite/unit/suites.h: $(UNIT_SRC)
	@mkdir -p $(@D)
	@for f in $(UNIT_SRC); do b=$$(basename $$f .c); echo "SUITE($${b})"; done > $@
$(BUILD)/test-suite/unit/run_unit.o: test-suite/unit/run_unit.c $(BUILD)/test-suite/unit/suites.h
	@mkdir -p $(@D)
	$(CC) $(WARN) $(ALL_CFLAGS) $(CPPFLAGS) $(CHECK_CFLAGS) -c $< -o $@
$(BUILD)/test-suite/unit/%.o: test-suite/unit/%.c $(wildcard rt-min/*.h) | $(BUILD)/grammar/ckm.tab.h $(BUILD)/grammar/lex.yy.h
	@mkdir -p $(@D)
	$(CC) $(WARN) -Wno-missing-prototypes $(ALL_CFLAGS) $(CPPFLAGS) $(CHECK_CFLAGS) -MMD -MP -c $< -o $@
# the headers each test includes (rt-min/x86 ones too): a kernel header that
# changes rebuilds its tests, not only the kernels
-include $(UNIT_OBJ:.o=.d)
# Fast x86 kernels (rt-min/x86): each ISA file gets its own -march, outside
# libckc (which stays baseline x86-64); linked into run_unit for their tests.
X86_OBJ :=
ifeq ($(shell uname -m),x86_64)
X86_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(sort $(wildcard rt-min/x86/*.c)))
endif
X86_CFLAGS = -std=c99 -Wall -Wextra -Werror -O3 -fno-trapping-math -g -Irt-min $(SAN)
$(BUILD)/rt-min/x86/%_avx512.o: rt-min/x86/%_avx512.c $(wildcard rt-min/x86/*.h)
	@mkdir -p $(@D)
	$(CC) $(X86_CFLAGS) -march=x86-64-v4 -mprefer-vector-width=512 -MMD -MP -c $< -o $@
$(BUILD)/rt-min/x86/%_avx2.o: rt-min/x86/%_avx2.c $(wildcard rt-min/x86/*.h)
	@mkdir -p $(@D)
	$(CC) $(X86_CFLAGS) -march=x86-64-v3 -MMD -MP -c $< -o $@
$(BUILD)/rt-min/x86/%.o: rt-min/x86/%.c $(wildcard rt-min/x86/*.h)
	@mkdir -p $(@D)
	$(CC) $(X86_CFLAGS) -MMD -MP -c $< -o $@
-include $(X86_OBJ:.o=.d)
$(BUILD)/run_unit: $(BUILD)/test-suite/unit/run_unit.o $(UNIT_OBJ) $(BUILD)/libckc.a $(X86_OBJ)
	$(CC) $(OPT) $(SAN) $^ $(CHECK_LIBS) $(LDLIBS) -o $@

# ---- suites ---------------------------------------------------------------------------------
test: deps
	@$(MAKE) --no-print-directory all $(BUILD)/run_unit
	@test-suite/run.sh

test-long: deps
	@$(MAKE) --no-print-directory all $(BUILD)/run_unit
	@CKC_TEST_LONG=1 test-suite/run.sh

golden-update: all
	@test-suite/golden/run.sh --update

asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan OPT="-O1 -g" \
	  SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	  build-asan/ckc build-asan/run_unit
	@CKC=build-asan/ckc CKC_UNIT=build-asan/run_unit CKC_ONLY="unit golden robust" test-suite/run.sh

demo: deps
	@$(MAKE) --no-print-directory all
	@scripts/demo.sh

# Benchmarks (never timed assertions in `make test`): writes bench/results.md.
bench: deps
	@$(MAKE) --no-print-directory all
	@bench/run.sh

clean:
	rm -rf build build-asan
