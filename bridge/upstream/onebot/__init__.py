"""OneBot v11 upstream: real QQ accounts through NapCat, LLOneBot, Lagrange and go-cqhttp.

Modules, each importing only those listed before it: ``errors``, ``settings``, ``frames``
(wire Structs and decoding), ``faces``, ``translate`` (segments, contacts), ``book`` (the
account's contact cache), ``inbound`` (event frames to Openqq events), ``connection`` (the
WebSocket, forward and reverse, and action calls), ``account`` (the Upstream port).
"""
