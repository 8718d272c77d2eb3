"""Upstreams: the QQ side of the bridge (simulated account; OneBot v11 and Openqq to come)."""
