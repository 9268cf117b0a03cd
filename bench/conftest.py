import os

# Benchmarks default to a capacity that fills in seconds; DQNFAST_BENCH_CAPACITY=1000000 for the
# README's figures (or run `dqnfast bench replay`, which defaults to 1M).
CAPACITY = int(os.environ.get("DQNFAST_BENCH_CAPACITY", "100000"))
