"""The ``berth`` command line, one module per group of commands.

:mod:`berth.cli.main` holds the app and the bundle commands (inspect, verify, import, predict, pack, unpack,
serve); :mod:`~berth.cli.registry`, :mod:`~berth.cli.monitor` and :mod:`~berth.cli.deploy` add their groups;
:mod:`~berth.cli.render` draws tables and progress. The console script is ``berth = "berth.cli:main"``.
"""

from berth.cli.main import app, main

__all__ = ["app", "main"]
