"""pixelrl's run layer: what the command lines in scripts/ call. It imports only downward
(nets <- envs <- agents <- pixelrl <- scripts).

- `training`: a run (restore, loop, finish) around an agent's loop; `cli`: the commands' shared parsing.
- `checkpoint`, `logger`: the run directory's files (safetensors + JSON, metrics.jsonl, W&B).
- `evaluation`: the evaluation protocol, statistics and reference scores; `report`: run summaries.
- `plots`; `measure`, `throughput`, `benchmarks`: speed measurements the benchmarks share.
- `supervised`: the supervised core's digits demo.
"""
