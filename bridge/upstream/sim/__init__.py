"""The simulated account (``upstream = "sim"``): a QQ account in memory, for demos, tests, load.

Modules: ``settings`` (SimSettings), ``world`` (the example contacts), ``png`` (the login QR
code image), ``inject`` (bodies of ``POST /sim/inject`` and ``/sim/load``), ``account``
(SimulatedAccount, the Upstream port).
"""
