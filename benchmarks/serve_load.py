"""Load test of ``resgan serve`` on loopback: C concurrent clients x R restore requests each.

Starts the server as a subprocess (so its RSS is its own), warms it up, then every client sends
its requests one after another. Prints requests/s, p50 / p99 latency, failures (goal 0) and the
server's RSS before and after the run (goal: flat).

    .venv/bin/python benchmarks/serve_load.py                       # 32 x 10, 512x512 inpainting
    .venv/bin/python benchmarks/serve_load.py --task denoise --model denoise_gray --size 256

Without --model: the task's built-in model if its weights are installed, else a randomly
initialised net of the task's preset size (configs/inpaint.yaml, ...): the same compute as the
trained model, so the speed figures hold, the pictures do not.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

PRESETS = {"inpaint": "inpaint", "denoise": "denoise_gray", "sr": "sr_x4"}


def rss_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        fields[k] = v.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def model_source(task: str, model: str | None, tmp: Path) -> str:
    if model:
        return model
    from resgan.restore.infer import RESTORE_TASKS
    from resgan.zoo import builtin_path

    name = RESTORE_TASKS[task]
    if name and builtin_path(name).is_file():
        return name
    import torch

    from resgan.checkpoint import prefixed, save_checkpoint
    from resgan.config import load_config
    from resgan.restore.models import build_net

    cfg = load_config(PRESETS[task])
    torch.manual_seed(0)
    net = build_net(cfg)
    path = tmp / f"{task}_untrained.safetensors"
    save_checkpoint(path, prefixed("net_ema", net.state_dict()),
                    {"kind": "restorer", "task": "restore", "step": 0, "config": cfg.to_dict()})
    print(f"(no built-in {task} weights: a randomly initialised {PRESETS[task]} net, same compute)")
    return str(path)


def inputs(task: str, size: int) -> tuple[bytes, bytes | None]:
    rng = np.random.default_rng(0)
    small = rng.random((size // 16 + 1, size // 16 + 1, 3)).astype(np.float32)
    img = Image.fromarray((small * 255).astype(np.uint8)).resize((size, size), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    mask = None
    if task == "inpaint":
        m = np.zeros((size, size), np.uint8)
        m[size // 4: size // 4 + size // 8, size // 8: size * 7 // 8] = 255  # a thick stroke, ~9 % of the image
        mbuf = io.BytesIO()
        Image.fromarray(m).save(mbuf, format="PNG")
        mask = mbuf.getvalue()
    return buf.getvalue(), mask


async def one(client: httpx.AsyncClient, task: str, image: bytes, mask: bytes | None) -> tuple[float, int]:
    files = {"image": ("in.png", image, "image/png")}
    if mask is not None:
        files["mask"] = ("mask.png", mask, "image/png")
    t0 = time.perf_counter()
    try:
        r = await client.post("/v1/restore", files=files, data={"task": task})
        status = r.status_code
    except httpx.HTTPError:
        status = 0
    return time.perf_counter() - t0, status


async def load(base: str, clients: int, requests: int, task: str, image: bytes, mask: bytes | None):
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=3600, limits=limits) as client:
        async def worker():
            return [await one(client, task, image, mask) for _ in range(requests)]

        t0 = time.perf_counter()
        results = await asyncio.gather(*[worker() for _ in range(clients)])
        return time.perf_counter() - t0, [r for rs in results for r in rs]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--requests", type=int, default=10, help="requests per client")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--task", default="inpaint", choices=sorted(PRESETS))
    ap.add_argument("--model", help="built-in name, run directory or .safetensors (default: see above)")
    ap.add_argument("--workers", type=int, default=1, help="the server's --workers")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rounds", type=int, default=1, help="repeat the whole load (RSS after each: a leak grows)")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    a = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        source = model_source(a.task, a.model, Path(tmp))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cmd = [sys.executable, "-m", "resgan", "serve", "--models", f"bench={source}", "--port", str(port),
               "--workers", str(a.workers), "--queue", str(max(64, 2 * a.clients)), "--timeout", "3600",
               "--device", a.device]
        log = open(Path(tmp) / "server.log", "w")
        server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    print((Path(tmp) / "server.log").read_text(), file=sys.stderr)
                    raise SystemExit("the server did not start")
                time.sleep(0.2)
            image, mask = inputs(a.task, a.size)
            warm = asyncio.run(load(base, 2, 1, a.task, image, mask))[1]
            assert all(s == 200 for _, s in warm), warm
            rss_before, _ = rss_mib(server.pid)
            rounds = []
            for _ in range(a.rounds):
                wall, results = asyncio.run(load(base, a.clients, a.requests, a.task, image, mask))
                rounds.append((wall, results, *rss_mib(server.pid)))
        finally:
            server.terminate()
            server.wait(30)
            log.close()

    print(f"\nresgan serve load test: {a.clients} clients x {a.requests} {a.task} requests, {a.size}x{a.size}, "
          f"--workers {a.workers}, {platform.machine()}, {os.cpu_count()} cores; server RSS before: "
          f"{rss_before:.0f} MiB")
    print(f"{'round':>5} {'requests':>9} {'wall s':>8} {'req/s':>7} {'p50 s':>7} {'p99 s':>7} {'max s':>7} "
          f"{'failures':>9} {'RSS after':>10} {'RSS peak':>9}")
    rows = []
    for i, (wall, results, rss_after, rss_peak) in enumerate(rounds, 1):
        lat = np.array([t for t, _ in results])
        fails = sum(s != 200 for _, s in results)
        n = len(results)
        row = {"round": i, "task": a.task, "size": a.size, "clients": a.clients, "requests": n,
               "workers": a.workers, "wall_s": round(wall, 1), "req_per_s": round(n / wall, 3),
               "p50_s": round(float(np.percentile(lat, 50)), 2), "p99_s": round(float(np.percentile(lat, 99)), 2),
               "max_s": round(float(lat.max()), 2), "failures": fails,
               "failure_codes": sorted({s for _, s in results if s != 200}), "rss_before_mib": round(rss_before, 1),
               "rss_after_mib": round(rss_after, 1), "rss_peak_mib": round(rss_peak, 1),
               "cpu": f"{platform.machine()}, {os.cpu_count()} cores", "device": a.device}
        rows.append(row)
        print(f"{i:>5} {n:>9} {row['wall_s']:>8} {row['req_per_s']:>7} {row['p50_s']:>7} {row['p99_s']:>7} "
              f"{row['max_s']:>7} {fails:>9} {rss_after:>6.0f} MiB {rss_peak:>5.0f} MiB")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 1 if any(r["failures"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
