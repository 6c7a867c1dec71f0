"""SNGAN-32 training throughput: resgan against torch-mimicry (Kwot Sin Lee), like for like (issue 16).

    .venv/bin/pip download --no-deps torch-mimicry==0.1.16 -d /tmp/mim && tar -xzf /tmp/mim/*.tar.gz -C /tmp/mim
    OMP_NUM_THREADS=1 python benchmarks/vs_mimicry.py --mimicry-src /tmp/mim/torch_mimicry-0.1.16 \
        --before 0e14684 --steps 1 --warmup 1 --repeats 3

(one fp32 step takes ~25 s on one AVX2 core, hence 1 timed step per process; the measured table, the
machine and what it says: ``docs/generation.md``, "mimicry"). Instead of ``--mimicry-src``:
``pip install --no-deps torch-mimicry`` into the environment, a benchmark-time step only: mimicry is no
dependency of resgan, and its own requirements (tensorflow among them) are neither needed nor wanted.

Both sides train SNGAN-32 (Miyato et al. 2018, CIFAR-10 ResNet) one D update and one G update per step,
batch 64 of synthetic real images (fixed noise in [-1, 1]), hinge loss, Adam(2e-4, betas 0.0 / 0.9), fp32,
one thread:

- ``mimicry``: ``SNGANGenerator32()`` / ``SNGANDiscriminator32()`` (ngf 256, ndf 128, nz 128, their
  defaults) and their own ``train_step`` methods, called as mimicry's ``Trainer`` calls them (D then G,
  a fresh ``MetricLog`` per step). ``mimicry:tuned-glibc``: the same with glibc's allocator set as resgan
  sets it (``GLIBC_TUNABLES``, see below), to show how much of the gap is the allocator alone.
- ``before``: resgan at git ref ``--before`` (0e14684, the code before issue 16), ``cifar10_sngan`` with
  ``gan.n_dis=1``, fp32, NCHW, glibc's allocator as it is (as ``resgan train`` ran then).
- ``after:malloc=0`` / ``after``: this tree, same settings, without / with resgan's allocator tuning
  (``resgan.runtime``, as ``resgan train`` runs now: ``mallopt`` M_MMAP_MAX 0, M_TRIM_THRESHOLD 2 GiB,
  or jemalloc where installed).
- ``after:shipped``: this tree with the preset's own precision and layout (``train.precision: auto``,
  ``train.channels_last: true``); on a CPU without bf16 instructions auto is fp32, elsewhere bf16.

The networks have the same layers and the same parameter count (G 4,276,739, D 1,053,825); the
differences are mimicry's own, part of what is measured: its generator upsamples bilinearly (resgan and
SNGAN's Chainer original: nearest); its D step runs G with autograd on and detaches the output (resgan:
no_grad) and runs D on real and fake in two passes of 64 (resgan: one of 128); its G step lets gradients
reach D's weights (resgan freezes D); its spectral norm is torch's older hook form,
``nn.utils.spectral_norm`` (resgan: ``nn.utils.parametrizations.spectral_norm``), one power iteration per
training forward on both; its DBlock's in-place ReLU also changes the input its shortcut reads (same
work). resgan's step also sets the learning rate and updates the EMA generator, which mimicry's
``train_step`` does not. Every measurement is a fresh process; the rows take
turns, ``--repeats`` rounds, medians; img per CPU-second (user + system time of the process) is the
steadier figure on a busy machine (see ``train_throughput.py``).

Importing mimicry: ``torch_mimicry/__init__.py`` imports all of the package, whose ``training`` (tensorboard),
``metrics`` (tensorflow) and ``datasets`` (``torch._six``, gone from torch 2) parts do not import here. The
nets need only torch, so the child registers ``torch_mimicry`` and ``torch_mimicry.training`` as empty
packages over their folders (their ``__init__.py`` files are skipped; every module below them is mimicry's
own, unchanged) and imports ``torch_mimicry.nets.sngan.sngan_32`` and ``torch_mimicry.training.metric_log``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import types
from pathlib import Path

from train_throughput import extract_src, run_child, time_steps

SNGAN = ["gan.n_dis=1"]
FP32_NCHW = ["train.precision=fp32", "train.channels_last=false"]
TUNED_GLIBC = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=2147483647"  # resgan.runtime's mallopt
# row -> (code: mimicry / before / after, config overrides, environment changes)
ROWS: dict[str, tuple[str, list[str], dict[str, str]]] = {
    "mimicry": ("mimicry", [], {}),
    "mimicry:tuned-glibc": ("mimicry", [], {"GLIBC_TUNABLES": TUNED_GLIBC}),
    "before": ("before", SNGAN + FP32_NCHW, {}),
    "after:malloc=0": ("after", SNGAN + FP32_NCHW, {"RESGAN_MALLOC": "0"}),
    "after": ("after", SNGAN + FP32_NCHW, {}),
    "after:shipped": ("after", SNGAN, {}),
}


def mimicry_dir(src: str | None) -> Path:
    """The ``torch_mimicry`` package folder: under ``src``, else where it is installed (found without
    importing it)."""
    if src:
        pkg = Path(src) / "torch_mimicry"
    else:
        spec = importlib.util.find_spec("torch_mimicry")
        pkg = Path(spec.submodule_search_locations[0]) if spec and spec.submodule_search_locations else Path()
    if not (pkg / "nets" / "sngan" / "sngan_32.py").is_file():
        raise SystemExit("torch_mimicry not found: pip install --no-deps torch-mimicry, or --mimicry-src DIR "
                         "(a folder holding torch_mimicry/, e.g. the extracted sdist)")
    return pkg


def measure_mimicry(pkg: str, steps: int, warmup: int, threads: int) -> dict:
    """One mimicry measurement (the child side): its SNGAN-32 nets and train_step methods."""
    for name, path in (("torch_mimicry", Path(pkg)), ("torch_mimicry.training", Path(pkg) / "training")):
        module = types.ModuleType(name)
        module.__path__ = [str(path)]  # a package whose __init__.py is not run (see the module doc)
        sys.modules[name] = module
    import torch
    from torch_mimicry.nets.sngan.sngan_32 import SNGANDiscriminator32, SNGANGenerator32
    from torch_mimicry.training.metric_log import MetricLog

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    device = torch.device("cpu")
    netG, netD = SNGANGenerator32().to(device), SNGANDiscriminator32().to(device)
    optG = torch.optim.Adam(netG.parameters(), 2e-4, betas=(0.0, 0.9))
    optD = torch.optim.Adam(netD.parameters(), 2e-4, betas=(0.0, 0.9))
    n = 64
    real_batch = (torch.rand(n, 3, 32, 32) * 2 - 1, torch.zeros(n, dtype=torch.long))

    def step() -> None:  # one Trainer step with n_dis 1
        log_data = MetricLog()
        log_data = netD.train_step(real_batch=real_batch, netG=netG, optD=optD, log_data=log_data, device=device)
        netG.train_step(real_batch=real_batch, netD=netD, optG=optG, log_data=log_data, device=device)

    timed = time_steps(step, steps, warmup, n)
    version = re.search(r"__version__\s*=\s*['\"]([^'\"]+)", (Path(pkg) / "__init__.py").read_text())
    tunables = os.environ.get("GLIBC_TUNABLES")
    return {**timed, "threads": torch.get_num_threads(), "allocator": f"GLIBC_TUNABLES {tunables}" if tunables
            else "default", "batch": n, "res": 32, "precision": "fp32", "channels_last": False,
            "torch": torch.__version__, "code": f"torch-mimicry {version[1] if version else '?'}"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mimicry-src", help="a folder holding torch_mimicry/ (default: the installed package)")
    p.add_argument("--before", default="0e14684", metavar="GIT_REF", help="the code of the 'before' row")
    p.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, of: {', '.join(ROWS)}")
    p.add_argument("--steps", type=int, default=5, help="timed steps per measurement")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--one-mimicry", help=argparse.SUPPRESS)  # child: measure mimicry, print JSON
    a = p.parse_args()
    if a.one_mimicry:
        print(json.dumps(measure_mimicry(**json.loads(a.one_mimicry))))
        return
    rows = a.rows.split(",")
    if unknown := set(rows) - set(ROWS):
        raise SystemExit(f"unknown rows {', '.join(sorted(unknown))}; choose from {', '.join(ROWS)}")
    pkg = str(mimicry_dir(a.mimicry_src)) if any(ROWS[r][0] == "mimicry" for r in rows) else ""
    here = Path(__file__).resolve()
    tmp = Path(tempfile.mkdtemp(prefix="resgan-before-"))
    results: dict[str, list[dict]] = {r: [] for r in rows}
    try:
        before_src = extract_src(a.before, tmp) if any(ROWS[r][0] == "before" for r in rows) else None
        for rnd in range(a.repeats):
            for r in rows:
                code, sets, env_mod = ROWS[r]
                env = {**os.environ, **env_mod}
                if code == "mimicry":
                    args = [str(here), "--one-mimicry", json.dumps(
                        {"pkg": pkg, "steps": a.steps, "warmup": a.warmup, "threads": a.threads})]
                else:
                    if code == "before":
                        env["PYTHONPATH"] = os.pathsep.join([str(before_src), env.get("PYTHONPATH", "")])
                    args = [str(here.with_name("train_throughput.py")), "--one-variant", json.dumps(
                        {"config": "cifar10_sngan", "sets": sets, "steps": a.steps, "warmup": a.warmup,
                         "threads": a.threads, "now": code == "after"})]
                res = run_child(args, env, r)
                if res is not None:
                    results[r].append(res)
                    print(f"round {rnd + 1} {r}: {res['img_s']:.1f} img/s, {res['img_cpu_s']:.1f} img/CPU-s "
                          f"({res['code']})", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    keys = ("img_s", "img_cpu_s", "sys_share", "faults_step", "peak_mib")
    med = {r: {k: statistics.median(x[k] for x in xs) for k in keys} for r, xs in results.items() if xs}
    base = med.get("mimicry")
    print(f"\nSNGAN-32, batch 64, one D + one G update per step; torch {next(iter(results.values()))[0]['torch']}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; medians of {a.repeats} interleaved "
          f"fresh processes, {a.steps} timed steps each after {a.warmup} untimed")
    print("| row | code | precision, layout | threads | allocator | img/s | vs mimicry | img per CPU-s | vs mimicry "
          "| page faults / step | kernel share of CPU | peak RSS (MiB) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r, m in med.items():
        info = results[r][0]
        kind = ROWS[r][0]
        code = info["code"] if kind == "mimicry" else f"resgan {a.before if kind == 'before' else 'this tree'}"
        ratio = {k: f"{m[k] / base[k]:.2f}x" if base else "" for k in ("img_s", "img_cpu_s")}
        print(f"| {r} | {code} | {info['precision']}, {'channels_last' if info['channels_last'] else 'NCHW'} | "
              f"{info['threads']} | {info['allocator']} | {m['img_s']:.1f} | {ratio['img_s']} | {m['img_cpu_s']:.1f} "
              f"| {ratio['img_cpu_s']} | {m['faults_step'] / 1000:.0f}k | {100 * m['sys_share']:.0f}% "
              f"| {m['peak_mib']:.0f} |")


if __name__ == "__main__":
    main()
