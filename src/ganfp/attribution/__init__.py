"""Which generator made an image: attribution to a known class (2025 subtask 2) and clustering (2024 task 2).

`files` reads and writes the per-image class tables, `features` computes the feature spaces,
`methods` holds the supervised attributors, `cluster` the clustering algorithms, `defaults` the
command's defaults (importing nothing, so the help can state them), and `run` ties them to the
`ganfp attribute` command. The package imports nothing here, so `ganfp.evaluation` can read a
class table without loading the trainer.
"""
