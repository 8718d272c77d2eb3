"""SimSettings: how the simulated account behaves (from the ``sim_*`` settings)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class SimSettings:
    """How the simulated account behaves."""

    listen: tuple[str, int] | None = ("127.0.0.1", 5001)
    login_delay: float = 0.2
    qrcode_path: Path = Path("mojo_webqq_qrcode_default.png")
    extra_friends: int = 0
    extra_groups: int = 0
    members_per_group: int = 0
    load_rate: float = 0.0
    load_seconds: float = 60.0
