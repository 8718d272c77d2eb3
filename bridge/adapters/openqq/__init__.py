"""The Openqq HTTP API (Mojo::Webqq compatible) served from the bus."""
