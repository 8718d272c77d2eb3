"""The message bus: one small interface, RabbitMQ (aio-pika) and in-memory implementations."""
