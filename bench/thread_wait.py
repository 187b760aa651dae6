"""What a worker's torch threads cost on shared cores: OpenMP's wait policy and the thread count, side by side.

Run from the project root:

    .venv/bin/python -m bench.thread_wait --busy 2 --rounds 3 --json bench/out/thread_wait.json

Two operations of a reward refit, each in a fresh process per variant (libgomp reads OMP_WAIT_POLICY
when it loads): the frozen encoder embedding ``--pairs`` (prompt, reply) pairs in batches of 64, and
one epoch of the reward heads (5 members, batches of 64) over ``--head-pairs`` synthetic pairs. The
variants: one thread; two threads that spin while they wait (OpenMP's default, ACTIVE); two that
sleep (PASSIVE, what a studio worker sets, ``feedback_app.celery.worker_threads_wait_asleep``).
``--busy K`` processes spin a Python loop meanwhile, as the web and the database keep a loaded
studio's cores busy. Rounds alternate the variants; each figure is the median of its rounds: the
process's own CPU time per operation (user + system) and the operations a second (wall).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

VARIANTS = (("1 thread", 1, "ACTIVE"), ("2 threads, spinning", 2, "ACTIVE"), ("2 threads, asleep", 2, "PASSIVE"))


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _encoder(pairs: int) -> tuple[float, float, int]:
    from rm_trainer.config import default_reward_backbone
    from rm_trainer.embeddings import PairEncoder

    encoder = PairEncoder.load(default_reward_backbone(), device="cpu")
    prompts = [f"My order number {i} has not arrived yet and I would like to know where it is" for i in range(pairs)]
    replies = [f"I am sorry about order {i}; it left our depot today and should reach you by Friday." for i in range(pairs)]
    encoder.embed(prompts[:64], replies[:64], max_length=256)  # warm
    cpu, wall = _cpu(), time.perf_counter()
    encoder.embed(prompts, replies, max_length=256)
    return _cpu() - cpu, time.perf_counter() - wall, pairs


def _heads(pairs: int) -> tuple[float, float, int]:
    import numpy as np

    from rm_trainer.ensemble import fit_ensemble

    rng = np.random.default_rng(0)
    direction = rng.normal(size=384).astype(np.float32)
    chosen, rejected = rng.normal(size=(2, pairs, 384)).astype(np.float32)
    swap = chosen @ direction < rejected @ direction
    chosen[swap], rejected[swap] = rejected[swap].copy(), chosen[swap].copy()
    cpu, wall = _cpu(), time.perf_counter()
    fit_ensemble(chosen, rejected, epochs=1, patience=0)
    return _cpu() - cpu, time.perf_counter() - wall, pairs // 64


def _child(op: str, size: int, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    cpu, wall, ops = (_encoder if op == "encoder" else _heads)(size)
    print(json.dumps({"cpu_ms_per_op": 1000 * cpu / ops, "ops_per_s": ops / wall}))


def _spin(seconds: float) -> None:
    end, x = time.time() + seconds, 0
    while time.time() < end:
        for i in range(100_000):
            x += i


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--busy", type=int, default=2, help="processes keeping the cores busy meanwhile (0: an idle machine)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=640, help="(prompt, reply) pairs the encoder embeds")
    parser.add_argument("--head-pairs", type=int, default=20_000, help="pairs of one epoch of the reward heads")
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--child", nargs=3, metavar=("OP", "SIZE", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _child(args.child[0], int(args.child[1]), int(args.child[2]))
    busy = [subprocess.Popen([sys.executable, "-c", "from bench.thread_wait import _spin; _spin(3600)"]) for _ in range(args.busy)]
    results: dict[str, dict[str, list[dict]]] = {op: {name: [] for name, _, _ in VARIANTS} for op in ("encoder", "heads")}
    try:
        for round_ in range(args.rounds):
            for op, size in (("encoder", args.pairs), ("heads", args.head_pairs)):
                for name, threads, policy in VARIANTS:
                    env = {**os.environ, "OMP_WAIT_POLICY": policy}
                    out = subprocess.run([sys.executable, "-m", "bench.thread_wait", "--child", op, str(size), str(threads)], env=env,
                                         capture_output=True, text=True, check=True).stdout
                    results[op][name].append(json.loads(out.strip().splitlines()[-1]))
                    print(f"round {round_ + 1} {op:7} {name:20} {results[op][name][-1]}", flush=True)
    finally:
        for process in busy:
            process.kill()
    summary = {op: {name: {key: statistics.median(r[key] for r in runs) for key in ("cpu_ms_per_op", "ops_per_s")}
                    for name, runs in by_variant.items()} for op, by_variant in results.items()}
    print(f"\n{args.busy} busy process(es), {os.cpu_count()} CPUs; medians of {args.rounds} rounds")
    for op, unit in (("encoder", "pair"), ("heads", "step")):
        spinning = summary[op]["2 threads, spinning"]
        for name, figures in summary[op].items():
            print(f"{op:7} {name:20} {figures['cpu_ms_per_op']:7.2f} ms CPU/{unit}  {figures['ops_per_s']:7.1f} {unit}s/s  "
                  f"CPU ×{figures['cpu_ms_per_op'] / spinning['cpu_ms_per_op']:.2f} of spinning's, rate ×{figures['ops_per_s'] / spinning['ops_per_s']:.2f}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"busy": args.busy, "rounds": args.rounds, "summary": summary, "runs": results}, out, indent=1)


if __name__ == "__main__":
    main()
