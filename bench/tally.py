"""Work done by one side of a measurement and what it cost, summed over interleaved rounds
(baseline, cca, baseline, cca…, so that load that comes and goes hits both alike)."""

from __future__ import annotations

from dataclasses import dataclass

from bench.cpu import CpuSpent


@dataclass
class Tally:
    count: int = 0
    elapsed_s: float = 0.0
    cpu_s: float = 0.0  # all the benchmark's processes, servers included
    own_cpu_s: float = 0.0  # this process only (the clients)

    def add(self, count: int, elapsed_s: float, spent: CpuSpent) -> None:
        self.count += count
        self.elapsed_s += elapsed_s
        self.cpu_s += spent.seconds
        self.own_cpu_s += spent.own_seconds

    @property
    def rate(self) -> float:
        """Units per second."""
        return self.count / self.elapsed_s

    @property
    def cpu_ms(self) -> float:
        """CPU milliseconds per unit, all processes."""
        return self.cpu_s * 1000 / self.count

    @property
    def own_cpu_ms(self) -> float:
        """CPU milliseconds per unit, this process."""
        return self.own_cpu_s * 1000 / self.count
