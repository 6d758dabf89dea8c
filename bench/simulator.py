"""Benchmark of the fleet simulator: publishing rate over MQTT and speed of the pure model.

Measured in one run, each against a baseline measured in the same run:

1. MQTT publishing, one process, one connection, QoS 1, to a private mosquitto: achieved
   acknowledged samples/s at 100 samples per message vs 1 sample per message.
   Requirement: >= 100,000 samples/s batched.
2. Motion model: car-ticks/s of the vectorized fleet (numpy, one slot per car) vs a naive
   per-car Python loop computing the same profile and door state.
3. Pure stream (model + sampling + TelemetryMessage building, no I/O), dense sampling: samples/s.

Usage: .venv/bin/python bench/simulator.py [--rate 200000] [--seconds 10] [--cars 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time

from liftwatch.launcher import services
from liftwatch.simulators import fleet as fl
from liftwatch.simulators.load import load_fleet, run_load
from liftwatch.simulators.stream import FleetSimulator, SimulationConfig


def bench_publish(rate: float, seconds: float) -> tuple[float, float]:
    """Achieved samples/s batched (100) and unbatched (1) on a private mosquitto."""
    broker = services.start_mosquitto()
    try:
        batched = asyncio.run(run_load(broker.url, rate=rate, duration_s=seconds, batch=100))
        single = asyncio.run(run_load(broker.url, rate=rate / 10, duration_s=seconds, batch=1, cars=2000))
    finally:
        broker.stop()
    for label, report in (("batched x100", batched), ("1 per message", single)):
        print(
            f"  {label:>14}: target {report.target_rate:>9,.0f}  achieved {report.achieved_rate:>9,.0f} samples/s "
            f"({report.messages:,} messages, {report.cars} cars, acked={report.acknowledged})"
        )
    return batched.achieved_rate, single.achieved_rate


def bench_model(cars: int, ticks: int) -> float:
    """Vectorized car-ticks/s (advance + observe) at 2 Hz."""
    sim = FleetSimulator(load_fleet(cars), start_ms=0, seed=1)
    fleet = sim.fleet
    for k in range(1, 20):  # warm up
        fleet.advance(k * 0.5)
    began = time.perf_counter()
    for k in range(20, 20 + ticks):
        fleet.advance(k * 0.5)
        fleet.observe(k * 0.5).signature()
    return cars * ticks / (time.perf_counter() - began)


def bench_naive(cars: int, ticks: int) -> float:
    """The same per-tick work, one car at a time in Python (the baseline)."""
    sim = FleetSimulator(load_fleet(cars), start_ms=0, seed=1)
    f = sim.fleet
    for k in range(1, 20):
        f.advance(k * 0.5)
    # Snapshot as Python lists, as a straightforward per-car implementation would hold them.
    phase, phase_end = f.phase.tolist(), f.phase_end.tolist()
    t0, p0, p1, sign = f.t0.tolist(), f.p0.tolist(), f.p1.tolist(), f.sign.tolist()
    T1, T2, T3 = f.T1.tolist(), f.T2.tolist(), f.T3.tolist()
    S1, S2, S3 = f.S1.tolist(), f.S2.tolist(), f.S3.tolist()
    a_acc, a_dec, peak, v_l = f.a_acc.tolist(), f.a_dec.tolist(), f.peak.tolist(), f.v_l.tolist()
    pos, occupied = f.pos.tolist(), f.occupied.tolist()
    door_of = [0, 1, 2, 3, 0, 0]
    began = time.perf_counter()
    for k in range(20, 20 + ticks):
        t = k * 0.5
        for i in range(cars):
            if phase_end[i] <= t and phase[i] == fl.MOVING:
                phase[i] = fl.OPENING  # arrival (the door cycle is not replayed in the baseline)
                phase_end[i] = t + 2.5
                pos[i] = p1[i]
            speed = 0.0
            if phase[i] == fl.MOVING:
                tau = t - t0[i]
                if tau < T1[i]:
                    speed, s = a_acc[i] * tau, a_acc[i] * tau * tau / 2
                elif tau < T2[i]:
                    speed, s = peak[i], S1[i] + peak[i] * (tau - T1[i])
                elif tau < T3[i]:
                    u = tau - T2[i]
                    speed, s = peak[i] - a_dec[i] * u, S2[i] + peak[i] * u - a_dec[i] * u * u / 2
                else:
                    speed, s = v_l[i], S3[i] + v_l[i] * (tau - T3[i])
                pos[i] = p0[i] + sign[i] * s / fl.FLOOR_HEIGHT_M
            nearest = round(pos[i])
            door_zone = abs(pos[i] - nearest) * fl.FLOOR_HEIGHT_M <= fl.DOOR_ZONE_M
            direction = 0 if speed == 0 else (1 if sign[i] > 0 else 2)
            door = door_of[phase[i]]
            _ = (door | direction << 2 | int(occupied[i]) << 4, door_zone, round(speed, 2))
    return cars * ticks / (time.perf_counter() - began)


def bench_stream(cars: int, ticks: int) -> float:
    """Samples/s of the pure stream in dense mode (model + sampling + message objects)."""
    config = SimulationConfig(batch=100, linger_s=50, dense=True)
    sim = FleetSimulator(load_fleet(cars), start_ms=0, seed=1, config=config)
    began = time.perf_counter()
    for _ in range(ticks):
        sim.step()
    sim.close()
    return sim.samples_emitted / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200_000, help="target samples/s of the batched run")
    parser.add_argument("--seconds", type=float, default=10.0, help="wall seconds per publishing run")
    parser.add_argument("--cars", type=int, default=10_000, help="fleet size of the model benchmarks")
    args = parser.parse_args()

    print("1. MQTT publishing (one process, one connection, QoS 1, private mosquitto)")
    batched, single = bench_publish(args.rate, args.seconds)
    print(
        f"  ratio batched / 1-per-message: {batched / single:.1f}x; "
        f"requirement >= 100,000 samples/s: {'met' if batched >= 100_000 else 'NOT met'}"
    )

    print(f"2. Motion model, {args.cars:,} cars at 2 Hz")
    vectorized = bench_model(args.cars, 200)
    naive = bench_naive(args.cars, max(4, math.ceil(400_000 / args.cars)))
    print(f"  vectorized: {vectorized:>13,.0f} car-ticks/s")
    print(f"  naive loop: {naive:>13,.0f} car-ticks/s")
    print(f"  ratio: {vectorized / naive:.1f}x  (real time for {vectorized / 2:,.0f} cars at 2 Hz)")

    print(f"3. Pure stream (dense sampling, message objects, no I/O), {args.cars:,} cars")
    print(f"  {bench_stream(args.cars, 200):,.0f} samples/s")


if __name__ == "__main__":
    main()
