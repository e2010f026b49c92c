"""Measurements of what a model knows: answer likelihoods (`nll`) and the benchmark suites.

`engine` runs a benchmark's named metrics (dependencies, shared forward passes and generations, processes,
fingerprints, files); `metrics` holds the registered metric functions and `stats` their arithmetic;
`tofu` and `muse` are the benchmarks. docs/evaluation.md describes them all.
"""
