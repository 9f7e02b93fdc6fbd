"""Benchmarks: vrrp-agent (eBPF receive filter off and on) side by side with keepalived.

Run them all with ``.venv/bin/python -m bench.run_all`` (``--quick`` for a smoke run,
``--plot`` for PNG charts); each module also runs on its own (``python -m bench.failover``).
Every benchmark builds its own namespace lab (agent.lab), prints a table and writes
``bench/results/<name>.json``. Nothing here runs as part of ``make test``; one smoke test
(tests/netns/test_bench_smoke.py) keeps the code from rotting.
"""
