"""Helpers shared by the tests and the benchmarks: real servers on loopback, started and stopped.

Importable from the repository root (``python -m pytest``, ``python -m bench.NAME``); nothing here imports
pytest, so the benchmarks can use it outside a test run. The pytest fixtures built on it live in ``tests/``.

- ``support.ports``: a free loopback port;
- ``support.server_process``: ``berth serve`` as a real subprocess;
- ``support.postgres``: a throwaway PostgreSQL server (Debian's binaries, a temporary data directory);
- ``support.s3``: moto's S3-compatible server on loopback, and a view of one bucket on it;
- ``support.rollout``: the live-rollout load driver (a server on an alias, clients, alias moves).
"""
