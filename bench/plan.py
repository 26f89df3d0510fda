"""How big each measurement is: the full run behind the README's figures, or a quick run with
tiny sizes that only proves every figure is produced (tests/bench)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Plan:
    quick: bool = False
    noise_mb: float = 20  # 1. each file through the app vs. its floor
    camera_mp: tuple[float, float] = (24, 48)
    screenshot: tuple[int, int] = (2880, 1800)
    floor_runs: int = 5
    memory_mb: tuple[float, float] = (50, 200)  # 2. two sizes: growth must not follow size
    gallery_photos: int = 1000  # 3. rows seeded for one user
    page_size: int = 50
    latency_requests: int = 400
    load_seconds: float = 5  # 4. per run and URL
    load_runs: int = 3
    load_connections: int = 16
    users: int = 10  # 5. per kind of account
    views: int = 100
    suite: tuple[str, ...] = ("tests/integration",)  # 6.
    suite_timeout: float = 1800
    link_runs: int = 3  # 9. the larger camera photo over a 100 Mbit/s link
    capacity_clients: int = 8  # 10. concurrent uploads of the larger camera photo
    capacity_uploads_each: int = 3

    @property
    def max_upload_mb(self) -> int:
        """The app's upload cap for the run: room for the largest file and its multipart framing."""
        return int(max(self.noise_mb, *self.memory_mb) * 1.05) + 2


FULL = Plan()

QUICK = Plan(
    quick=True,
    noise_mb=1,
    camera_mp=(1, 2),
    screenshot=(640, 400),
    floor_runs=2,
    memory_mb=(1, 2),
    gallery_photos=60,
    latency_requests=30,
    load_seconds=1,
    load_runs=1,
    load_connections=4,
    users=2,
    views=4,
    suite=("tests/integration/test_photos.py::test_probes",),
    suite_timeout=300,
    link_runs=1,
    capacity_clients=2,
    capacity_uploads_each=1,
)
