# The two commands of the README, and a few more. Everything builds with CMake presets into
# build/<preset>; `make run` and `make test` install missing Debian packages first.
.PHONY: run demo test deps build debug asan tsan bench bench-quick bench-embedded bench-embedded-quick bench-index fuzz clean

PRESET ?= release
DATA ?= ./data

deps:
	bash scripts/install-deps.sh

build: deps
	cmake --preset $(PRESET) >/dev/null
	cmake --build --preset $(PRESET)

# The main job: the server on the embedded default data directory (./data), in the
# foreground; Ctrl-C (SIGINT) shuts it down cleanly. LISTEN overrides the address.
LISTEN ?= 127.0.0.1:7480
run: build
	./build/$(PRESET)/src/cli/msgstore --data $(DATA) serve --listen $(LISTEN)

# The self-checking embedded demo on the same data directory.
demo: build
	./build/$(PRESET)/src/cli/msgstore --data $(DATA) demo

# Every test: unit, end-to-end and crash tests in release, the concurrency tests under
# ThreadSanitizer, and a short run of every fuzz target.
test: build
	ctest --preset $(PRESET)
	$(MAKE) tsan
	$(MAKE) fuzz

FUZZ_SECONDS ?= 10
fuzz: deps
	bash tests/fuzz/run.sh $(FUZZ_SECONDS)

asan: deps
	cmake --preset asan >/dev/null
	cmake --build --preset asan
	ctest --preset asan

# The concurrency tests (the whole log, store and server/broker suites, and the server binary
# driven end to end) under ThreadSanitizer; any report fails the run (halt_on_error).
tsan: deps
	cmake --preset tsan >/dev/null
	cmake --build --preset tsan --target store_test log_test index_test server_test msgstore
	TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" ./build/tsan/src/log_test --gtest_brief=1
	TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" ./build/tsan/src/store_test --gtest_brief=1
	TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" ./build/tsan/src/index_test --gtest_brief=1
	TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" ./build/tsan/src/server_test --gtest_brief=1
	# The server's end-to-end suite (release test driver) against the ThreadSanitizer server binary.
	cmake --build --preset $(PRESET) --target server_e2e_test
	TSAN_OPTIONS="halt_on_error=1" MSGSTORE_BINARY=$(CURDIR)/build/tsan/src/cli/msgstore \
	  ./build/$(PRESET)/tests/e2e/server_e2e_test --gtest_brief=1

# msgstore against its peers (Redis, NATS JetStream, Mosquitto, PostgreSQL, SQLite, the bare
# disk), every workload, report and plots in bench/results/ (bench/compare.py). Full: about
# 40-60 minutes; quick: under 5 minutes.
BENCH_TARGETS = msgstore msgstore_bench netbench probe
bench: deps
	bash bench/install-peers.sh
	cmake --preset release >/dev/null
	cmake --build --preset release --target $(BENCH_TARGETS)
	python3 bench/compare.py

bench-quick: deps
	bash bench/install-peers.sh
	cmake --preset release >/dev/null
	cmake --build --preset release --target $(BENCH_TARGETS)
	python3 bench/compare.py --quick

# The embedded benchmark alone (msgstore library vs SQLite vs write+fdatasync, with goals).
bench-embedded: deps
	bash bench/run.sh

bench-embedded-quick: deps
	bash bench/run.sh --quick

# The index and query goals (bench/index_bench.cc): 10 million 100 B messages over 64
# segments and the same rows in SQLite, three whole runs, medians; about 20 minutes, ~4 GB of
# disk in the system temp directory.
bench-index: deps
	cmake --preset release >/dev/null
	cmake --build --preset release --target index_bench
	./build/release/bench/index_bench --runs 3

clean:
	rm -rf build
