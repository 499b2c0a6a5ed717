"""Beyond one machine: per-frame stages sharded over a Ray cluster (optional `cluster` extra).

Nothing here imports Ray at module import time: `facecast merge`/`extract` without `--engine ray` never
load it (tests/test_cluster.py checks sys.modules). engine.py talks to Ray, shards.py splits frame lists
and keeps the progress file `facecast cluster status` reads, stages.py drives merge and extract on the
cluster by calling the stages' own functions (no second implementation).
"""
