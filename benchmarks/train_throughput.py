"""Training throughput (img/s) and peak memory of a preset under each speed switch, side by side.

    python benchmarks/train_throughput.py --config cifar10_sngan --steps 1 --repeats 3
    python benchmarks/train_throughput.py --config denoise_gray --steps 5
    python benchmarks/train_throughput.py --compare --before 0e14684 \
        --configs cifar10_sngan@gan.n_dis=1,inpaint@restore.crop=128 --variants before,after,after:malloc=0

``--compare``: the code at git ref ``--before`` (extracted with ``git archive``, run from there) as
``resgan train`` ran it then (glibc's allocator as it is, torch's default threads) against this tree as
``resgan train`` runs it now (``resgan.runtime``: default threads; ``after`` has glibc tuned, the
allocator where jemalloc is not installed, ``after:jemalloc`` the one where it is), per config, with
minor page faults per step, the share of the process's CPU time spent in the kernel and peak RSS beside
img/s and img per CPU-second (the less noisy figure on a busy machine). Variants: ``before``, ``after``,
with modifiers: ``:malloc=0`` (RESGAN_MALLOC=0), ``:threads=N``, ``:jemalloc`` (preloaded with
``MALLOC_CONF=oversize_threshold:4294967296,dirty_decay_ms:-1,muzzy_decay_ms:-1``, RESGAN_MALLOC=0;
skipped where libjemalloc.so.2 is not installed), ``:tunables=A=1;B=2`` (GLIBC_TUNABLES, with ``;`` for
``:``, RESGAN_MALLOC=0). ``CONFIG@key=value@...`` overrides a config's keys.

Modes: fp32 / bf16 autocast / fp16 autocast (CUDA), NCHW or channels_last (+cl), with or without
torch.compile (+compile). Every measurement runs in a fresh process (so peak memory and compile
caches are its own), on synthetic batches (no data set needed); the modes take turns, ``--repeats``
rounds, and the table shows medians. img/s counts real images consumed per generator step
(batch x n_dis for a GAN, batch for restoration). Peak memory: the child's maximum resident set
on CPU, ``torch.cuda.max_memory_allocated`` on CUDA. ``--cpu-peaks`` adds the matmul / convolution
GFLOP/s of this CPU in fp32 and bf16 (why bf16 does or does not pay here).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

DEFAULT_MODES = "fp32,fp32+cl,bf16,bf16+cl,fp32+cl+compile,bf16+cl+compile"


def parse_mode(mode: str) -> tuple[str, bool, bool]:
    parts = mode.split("+")
    if parts[0] not in ("fp32", "bf16", "fp16") or not set(parts[1:]) <= {"cl", "compile"}:
        raise SystemExit(f"bad mode {mode!r}: precision (fp32, bf16, fp16) then optional +cl, +compile")
    return parts[0], "cl" in parts[1:], "compile" in parts[1:]


def measure_one(config: str, mode: str, steps: int, warmup: int, device_name: str, threads: int) -> dict:
    """One measurement in this process (the child side)."""
    import dataclasses

    import torch

    from resgan.config import load_config
    from resgan.train import TASKS

    torch.set_num_threads(threads)
    precision, cl, comp = parse_mode(mode)
    cfg = load_config(config, [f"train.precision={precision}", f"train.channels_last={str(cl).lower()}",
                               f"train.compile={str(comp).lower()}"])
    if cfg.task == "gan" and cfg.data.conditional:
        cfg = dataclasses.replace(cfg, gan=dataclasses.replace(cfg.gan, num_classes=10))
    device = torch.device(device_name)
    torch.manual_seed(0)
    task = TASKS[cfg.task](cfg, device)
    res = cfg.restore.crop if cfg.task == "restore" else cfg.data.resolution
    n = cfg.train.batch_size
    real = torch.rand(n, cfg.data.channels, res, res, device=device) * 2 - 1
    y = torch.randint(0, max(cfg.gan.num_classes, 1), (n,), device=device)

    def next_batch():
        return real, y

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    t0 = time.perf_counter()
    for _ in range(warmup + (2 if comp else 0)):  # compile: the first steps build the graphs
        task.train_step(next_batch)
    sync()
    first = time.perf_counter() - t0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        task.train_step(next_batch)
    sync()
    img_s = steps * task.images_per_step() / (time.perf_counter() - t0)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"img_s": img_s, "peak_mib": peak, "warmup_s": first, "batch": n, "res": res,
            "torch": torch.__version__, "threads": torch.get_num_threads()}


def measure_variant(config: str, sets: list[str], steps: int, warmup: int, threads: int | None, now: bool) -> dict:
    """One --compare measurement (the child side). ``now``: this tree's process set-up, as ``resgan train``
    applies it (allocator, then threads); else ``--before``'s: torch's default threads (or ``threads``)."""
    if now:
        from resgan.runtime import set_threads, tune_allocator

        allocator = tune_allocator() or "default"
    import dataclasses

    import torch

    import resgan
    from resgan.config import load_config
    from resgan.train import TASKS

    if now:
        set_threads(threads)
    else:
        allocator = "default"
        if threads:
            torch.set_num_threads(threads)
    if "jemalloc" in os.environ.get("LD_PRELOAD", ""):
        allocator = f"jemalloc ({os.environ.get('MALLOC_CONF', 'default settings')})"
    cfg = load_config(config, sets)
    if cfg.task == "gan" and cfg.data.conditional:
        cfg = dataclasses.replace(cfg, gan=dataclasses.replace(cfg.gan, num_classes=10))
    torch.manual_seed(0)
    task = TASKS[cfg.task](cfg, torch.device("cpu"))
    res = cfg.restore.crop if cfg.task == "restore" else cfg.data.resolution
    n = cfg.train.batch_size
    real = torch.rand(n, cfg.data.channels, res, res) * 2 - 1
    y = torch.randint(0, max(cfg.gan.num_classes, 1) if cfg.task == "gan" else 1, (n,))
    timed = time_steps(lambda: task.train_step(lambda: (real, y)), steps, warmup, task.images_per_step())
    return {**timed, "threads": torch.get_num_threads(), "allocator": allocator, "batch": n, "res": res,
            "images_step": task.images_per_step(), "precision": task.precision,
            "channels_last": cfg.train.channels_last, "torch": torch.__version__,
            "code": str(Path(resgan.__file__).parent)}


def time_steps(step: Callable[[], object], steps: int, warmup: int, images_per_step: int) -> dict:
    """``warmup`` untimed calls of ``step``, then ``steps`` timed ones: img/s, img per CPU-second (user +
    system time of this process), the kernel's share of that time, minor page faults per step, peak RSS."""
    for _ in range(warmup):
        step()
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(steps):
        step()
    wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    user, system = r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime
    images = steps * images_per_step
    return {"img_s": images / wall, "img_cpu_s": images / max(user + system, 1e-9),
            "sys_share": system / max(user + system, 1e-9), "faults_step": (r1.ru_minflt - r0.ru_minflt) / steps,
            "peak_mib": r1.ru_maxrss / 1024}


JEMALLOC = ("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", "/usr/lib64/libjemalloc.so.2", "/usr/lib/libjemalloc.so.2")
JEMALLOC_CONF = "oversize_threshold:4294967296,dirty_decay_ms:-1,muzzy_decay_ms:-1"


def variant_env(variant: str) -> tuple[bool, int | None, dict[str, str]] | None:
    """(this tree?, threads, environment changes) of a --compare variant; None: not runnable here."""
    base, *mods = variant.split(":")
    if base not in ("before", "after"):
        raise SystemExit(f"bad variant {variant!r}: before or after, then optional :malloc=0, :threads=N, "
                         ":jemalloc, :tunables=...")
    threads, env = None, {}
    for mod in mods:
        key, _, value = mod.partition("=")
        if key == "malloc":
            env["RESGAN_MALLOC"] = value
        elif key == "threads":
            threads = int(value)
        elif key == "jemalloc":
            lib = next((p for p in JEMALLOC if os.path.exists(p)), None)
            if lib is None:
                return None
            env.update(LD_PRELOAD=lib, MALLOC_CONF=JEMALLOC_CONF, RESGAN_MALLOC="0")
        elif key == "tunables":
            env.update(GLIBC_TUNABLES=value.replace(";", ":"), RESGAN_MALLOC="0")
        else:
            raise SystemExit(f"bad variant modifier {mod!r} in {variant!r}")
    return base == "after", threads, env


def extract_src(ref: str, dest: Path) -> Path:
    """This repository's ``src`` folder at git ``ref``, extracted under ``dest``; returns ``dest / "src"``."""
    repo = Path(__file__).resolve().parents[1]
    archive = subprocess.run(["git", "-C", str(repo), "archive", ref, "src"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest / "src"


def run_child(args: list[str], env: dict[str, str], label: str) -> dict | None:
    """``python ARGS`` in a fresh process with ``env``: the JSON object on its last line of output, or None
    (its stderr's tail printed) when it failed."""
    out = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        print(f"{label}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def compare(a: argparse.Namespace) -> None:
    """--compare: each config x variant in a fresh process, the variants interleaved, medians."""
    configs = [c.split("@") for c in a.configs.split(",")]
    variants = [v for v in a.variants.split(",") if v]
    runnable = {}
    for v in variants:
        spec = variant_env(v)
        if spec is None:
            print(f"{v}: skipped (libjemalloc.so.2 not installed)", file=sys.stderr)
        else:
            runnable[v] = spec
    if any(not spec[0] for spec in runnable.values()) and not a.before:
        raise SystemExit("variant 'before' needs --before GIT_REF (the code to compare against)")
    tmp = Path(tempfile.mkdtemp(prefix="resgan-before-"))
    try:
        if a.before:
            extract_src(a.before, tmp)
        results: dict[tuple[str, str], list[dict]] = {}
        for r in range(a.repeats):
            for cfg in configs:
                for v, (now, threads, env_mod) in runnable.items():
                    env = {**os.environ, **env_mod}
                    env.pop("OMP_NUM_THREADS", None)  # each side's own default threads
                    if not now:
                        env["PYTHONPATH"] = os.pathsep.join([str(tmp / "src"), env.get("PYTHONPATH", "")])
                    res = run_child([__file__, "--one-variant", json.dumps(
                        {"config": cfg[0], "sets": cfg[1:], "steps": a.steps, "warmup": a.warmup,
                         "threads": threads, "now": now})], env, f"{cfg[0]} {v}")
                    if res is None:
                        continue
                    key = "@".join(cfg)  # the overrides too: one config under two settings is two rows
                    results.setdefault((key, v), []).append(res)
                    print(f"round {r + 1} {key} {v}: {res['img_s']:.1f} img/s, {res['img_cpu_s']:.1f} img/CPU-s, "
                          f"{res['faults_step']:.0f} faults/step ({res['code']})", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nload average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; medians of {a.repeats} interleaved "
          f"fresh processes, {a.steps} timed steps each after {a.warmup} untimed")
    print("| config | variant | threads | allocator | img/s | vs before | img per CPU-s | vs before "
          "| page faults / step | kernel share of CPU | peak RSS (MiB) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for cfg in configs:
        key = "@".join(cfg)
        rows = [(v, results[(key, v)]) for v in runnable if (key, v) in results]
        base = next((xs for v, xs in rows if v.split(":")[0] == "before"), None)  # the first "before" variant

        for v, xs in rows:
            m = {k: statistics.median(x[k] for x in xs) for k in ("img_s", "img_cpu_s", "sys_share", "faults_step",
                                                                   "peak_mib")}
            b = {k: statistics.median(x[k] for x in base) for k in ("img_s", "img_cpu_s")} if base else None
            ratio = {k: f"{m[k] / b[k]:.2f}x" if b else "" for k in ("img_s", "img_cpu_s")}
            info = xs[0]
            name = f"{cfg[0]} ({', '.join(cfg[1:])})" if cfg[1:] else cfg[0]
            print(f"| {name}, batch {info['batch']}, {info['res']}px | {v} | {info['threads']} | {info['allocator']} | "
                  f"{m['img_s']:.1f} | {ratio['img_s']} | {m['img_cpu_s']:.1f} | {ratio['img_cpu_s']} | "
                  f"{m['faults_step'] / 1000:.0f}k | {100 * m['sys_share']:.0f}% | {m['peak_mib']:.0f} |")


def cpu_peaks(threads: int) -> list[tuple[str, float, float]]:
    """GFLOP/s of a 2048^2 matmul and a 3x3 convolution (32 x 128 x 32 x 32, channels_last), fp32 and bf16."""
    import torch

    torch.set_num_threads(threads)

    def timed(fn, reps=5):
        fn()
        ts = []
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
        return statistics.median(ts)

    rows = []
    for name, flops, make in (
        ("matmul 2048^2", 2 * 2048**3, _matmul),
        ("conv3x3 128ch 32px b32", 2 * 32 * 32 * 32 * 128 * 128 * 9, _conv),
    ):
        speeds = []
        for dt in (torch.float32, torch.bfloat16):
            with torch.inference_mode():
                speeds.append(flops / timed(make(dt)) / 1e9)
        rows.append((name, *speeds))
    return rows


def _matmul(dt):
    import torch

    a = torch.randn(2048, 2048, dtype=dt)
    return lambda: a @ a


def _conv(dt):
    import torch

    conv = torch.nn.Conv2d(128, 128, 3, padding=1).to(dt).to(memory_format=torch.channels_last)
    x = torch.randn(32, 128, 32, 32, dtype=dt).contiguous(memory_format=torch.channels_last)
    return lambda: conv(x)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="cifar10_sngan")
    p.add_argument("--steps", type=int, default=1, help="timed generator steps per measurement")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first (+2 with compile)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--modes", default=DEFAULT_MODES)
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--cpu-peaks", action="store_true")
    p.add_argument("--compare", action="store_true", help="before (--before REF) vs after, see the module doc")
    p.add_argument("--before", metavar="GIT_REF", help="--compare: the code of the 'before' variants")
    p.add_argument("--configs", default="cifar10_sngan@gan.n_dis=1,inpaint@restore.crop=128",
                   help="--compare: comma-separated CONFIG[@key=value...]")
    p.add_argument("--variants", default="before,after,after:malloc=0", help="--compare: see the module doc")
    p.add_argument("--one", help=argparse.SUPPRESS)  # child: measure this mode, print JSON
    p.add_argument("--one-variant", help=argparse.SUPPRESS)  # child of --compare
    a = p.parse_args()
    if a.one_variant:
        print(json.dumps(measure_variant(**json.loads(a.one_variant))))
        return
    if a.compare:
        compare(a)
        return
    if a.device is None:
        import torch

        a.device = "cuda" if torch.cuda.is_available() else "cpu"
    if a.one:
        print(json.dumps(measure_one(a.config, a.one, a.steps, a.warmup, a.device, a.threads)))
        return
    modes = a.modes.split(",")
    for m in modes:
        parse_mode(m)
    results: dict[str, list[dict]] = {m: [] for m in modes}
    for r in range(a.repeats):
        for m in modes:
            cmd = [sys.executable, __file__, "--config", a.config, "--one", m, "--steps", str(a.steps),
                   "--warmup", str(a.warmup), "--threads", str(a.threads), "--device", a.device]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode != 0:
                print(f"{m}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
                continue
            results[m].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"round {r + 1} {m}: {results[m][-1]['img_s']:.1f} img/s", file=sys.stderr, flush=True)
    done = [m for m in modes if results[m]]
    if not done:
        raise SystemExit("every measurement failed")
    info = results[done[0]][0]
    base = statistics.median(x["img_s"] for x in results[done[0]])
    print(f"\n{a.config}: batch {info['batch']}, {info['res']}px, device {a.device}, {info['threads']} threads, "
          f"torch {info['torch']}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"| mode | img/s (median of {a.repeats}) | runs | vs {done[0]} | peak memory (MiB) | first steps (s) |")
    print("|---|---|---|---|---|---|")
    for m in done:
        speeds = [x["img_s"] for x in results[m]]
        med = statistics.median(speeds)
        print(f"| {m} | {med:.1f} | {', '.join(f'{v:.1f}' for v in speeds)} | {med / base:.2f}x | "
              f"{statistics.median(x['peak_mib'] for x in results[m]):.0f} | "
              f"{statistics.median(x['warmup_s'] for x in results[m]):.0f} |")
    if a.cpu_peaks and a.device == "cpu":
        print("\n| kernel | fp32 GFLOP/s | bf16 GFLOP/s | bf16 / fp32 |\n|---|---|---|---|")
        for name, f32, b16 in cpu_peaks(a.threads):
            print(f"| {name} | {f32:.0f} | {b16:.0f} | {b16 / f32:.2f}x |")
        import torch

        from resgan.accel import cpu_has_amx, resolve_precision

        print(f"AMX: {'yes' if cpu_has_amx() else 'no'}; precision auto picks "
              f"{resolve_precision('auto', torch.device('cpu'))} on this CPU")


if __name__ == "__main__":
    main()
