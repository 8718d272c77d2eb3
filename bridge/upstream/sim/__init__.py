"""The simulated account (``upstream = "sim"``): a QQ account in memory, for demos, tests, load.

Modules, each importing only those listed before it: ``settings`` (SimSettings), ``world``
(the example contacts and lookups in them), ``png`` (the login QR code image), ``inject``
(bodies of ``POST /sim/inject`` and ``/sim/load``), ``login`` (the login states, cancellable
by a stop), ``load`` (the load generator), ``control`` (the ``/sim/*`` HTTP endpoint),
``account`` (SimulatedAccount, the Upstream port).
"""
