"""Tests on a private 3-node RabbitMQ cluster (see tests/cluster/rabbit.py)."""
