"""openqq-bridge: QQ bot accounts on a RabbitMQ bus, with the Openqq HTTP API on top."""

__version__ = "0.1.0"
