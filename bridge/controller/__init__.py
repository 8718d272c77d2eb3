"""The Controller of Mojo::Webqq on the bus: many accounts behind one endpoint (README).

datafile.py keeps what survives a controller restart; supervisor.py runs the local bridge
processes; registry.py knows every account of the namespace (local or not); multi.py keeps
one single-account API per account; api.py serves the Controller API; run.py wires them.
"""
