"""Architecture ablation at equal training steps: every variant trained from scratch by the real CLI
(``resgan train PRESET``) with the same data, seed, steps, batch, crop and LR schedule, then its EMA
net measured: parameters, s / image on 1 thread, s / training step, PSNR.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ablation_restore.py          # both tasks, ~32 min (see below)
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ablation_restore.py --tasks sr --steps 200 --keep runs/abl

* denoise (preset ``denoise_gray``: blind sigma 0-75 with a noise map, 75 % 8-bit inputs, L1, Adam 4e-4
  with linear decay), trained on BSDS500 ``train`` + ``test`` read as grey; the four nets of
  docs/restore.md: the first-generation RestoreNet (as the old built-in was: width 64, 6 blocks,
  dilations 1/2/3, unshuffle 2), the shipped UNetRestorer (64, 2 blocks, 3 scales, unshuffle 2), a
  48-wide 4-scale one and a 32-wide 4-scale one without unshuffle. Measured on BSD68 at sigma 25, 8-bit
  noisy files (noise on the uint8 image, rounded and clipped, ``default_rng(seed)``: the ``8bit``
  protocol of benchmarks/restore_denoise.py, same arrays); like restore_denoise.py's "resgan" rows,
  every net runs told the true sigma and blind (sigma estimated); PSNR over the whole image of the
  uint8 output.
* sr (preset ``sr_x4``: L1, Adam 5e-4 (0.9, 0.99), linear decay), trained on BSDS500
  ``train`` + ``test`` (colour); RFDN (shipped preset: width 50, 4 blocks) against the previous
  SRResNet-style SRNet (width 32, 4 blocks, no dilation). Measured like benchmarks/restore_sr.py on
  Set5 + Set14: antialiased bicubic x4 LR rounded to uint8, PSNR on Y with a 4-px border.

Wall time on this project's busy 2-core AMD EPYC (AVX2, fp32): denoise 27 min (training 20), sr 5 min.

Training runs with ``--threads 1`` and ``train.precision=fp32``; EMA decay 0.99 (``--ema``) instead of
the presets' 0.999: 0.999**500 = 0.61, so after a few hundred steps that EMA would still be mostly the
zero-initialised start (an identity net). Validation, sample grids and checkpoints only at the last step
(``val_limit`` 1 image of 64 px). s / train step is the median of the logged throughput after the first
log interval. Run directories go to a temporary folder, or to ``--keep DIR`` (a finished run there with
the same settings is reused, not retrained).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image
from restore_common import command, data_root, table, to_u8
from restore_denoise import noisy_image, u8
from restore_sr import SETS as SR_SETS
from restore_sr import psnr_y, sr_pair

from resgan.data import IMAGE_EXTS
from resgan.metrics.psnr_ssim import psnr
from resgan.restore.infer import load_model, restore_array

# task -> (preset, [(label, overrides)]); overrides on top of the preset
VARIANTS = {
    "denoise": ("denoise_gray", [
        ("RestoreNet (first generation: 64 wide, 6 blocks, dilations 1/2/3, unshuffle 2)",
         {"restore.arch": "resnet", "restore.width": 64, "restore.blocks": 6, "restore.dilations": [1, 2, 3],
          "restore.down": 2}),
        ("UNetRestorer 64/128/256, 2 blocks per scale, unshuffle 2 (shipped)",
         {"restore.arch": "unet", "restore.width": 64, "restore.blocks": 2, "restore.levels": 3, "restore.down": 2}),
        ("UNetRestorer 48, 4 scales, unshuffle 2",
         {"restore.arch": "unet", "restore.width": 48, "restore.blocks": 2, "restore.levels": 4, "restore.down": 2}),
        ("UNetRestorer 32, 4 scales, no unshuffle",
         {"restore.arch": "unet", "restore.width": 32, "restore.blocks": 2, "restore.levels": 4, "restore.down": 1}),
    ]),
    "sr": ("sr_x4", [
        ("RFDN 50 wide, 4 blocks (sr_x4 preset)", {"restore.arch": "rfdn", "restore.width": 50, "restore.blocks": 4}),
        ("SRNet (SRResNet-style, first generation: 32 wide, 4 blocks)",
         {"restore.arch": "resnet", "restore.width": 32, "restore.blocks": 4, "restore.dilations": [1]}),
    ]),
}
DEFAULT_CROP = {"denoise": 64, "sr": 96}
BIG = 10**9  # val_every / sample_every / ckpt_every: only at the last step
SIGMA = 25.0
WALL_FILE = "ablation_train_seconds.txt"  # kept in the run directory, for a reused run


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def overrides(task: str, own: dict, args, root: Path) -> dict:
    photos = root / "photos" / "bsds500"
    return {"data.path": f"{photos / 'train'},{photos / 'test'}", **own,
            "restore.crop": args.crop or DEFAULT_CROP[task], "train.batch_size": args.batch,
            "train.precision": "fp32", "train.ema_decay": args.ema, "train.log_every": max(1, min(25, args.steps // 4)),
            "train.sample_every": BIG, "train.ckpt_every": BIG,
            "restore.val_every": BIG, "restore.val_limit": 1, "restore.val_crop": 64}


def finished(run: Path, sets: dict, steps: int) -> bool:
    """Whether ``run`` is a finished run of exactly these settings (then it is reused)."""
    try:
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        last = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    except (OSError, ValueError):
        return False
    for key, want in {**sets, "train.steps": steps}.items():
        node = cfg
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node != want and not (isinstance(want, (int, float)) and node == float(want)):
            return False
    return bool(last) and last[-1]["step"] == steps and (run / "latest.safetensors").is_file()


def train(preset: str, run: Path, sets: dict, args) -> float:
    """Trains one variant (or reuses a finished run); wall seconds of the training subprocess."""
    if finished(run, sets, args.steps):
        log(f"  reusing the finished run {run}")
        wall = run / WALL_FILE
        return float(wall.read_text()) if wall.is_file() else 0.0
    if run.exists():
        sys.exit(f"{run} exists and is not a finished run of these settings: remove it or pick another --keep")
    cmd = [str(Path(sys.executable).with_name("resgan")), "train", preset, "--out", str(run), "--steps",
           str(args.steps), "--seed", str(args.seed), "--threads", "1", "--quiet"]
    for k, v in sets.items():
        cmd += ["--set", f"{k}={json.dumps(v) if isinstance(v, list) else v}"]
    log("  " + " ".join(cmd))
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"training failed ({r.returncode}):\n{r.stderr[-3000:]}")
    wall = time.perf_counter() - t0
    (run / WALL_FILE).write_text(f"{wall:.1f}\n")
    return wall


def step_seconds(run: Path, batch: int) -> float:
    """Median seconds per training step from the logged img/s (the first interval, with warm-up, left out)."""
    rates = [json.loads(line).get("img_per_s") for line in (run / "metrics.jsonl").read_text().splitlines()]
    rates = [r for r in rates if r]
    rates = rates[1:] or rates
    return float(np.median([batch / r for r in rates]))


def denoise_inputs(root: Path, seed: int, limit: int | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(clean uint8 (H, W, 1), noisy float) for BSD68, sigma 25, 8-bit files: restore_denoise.py's arrays."""
    files = sorted(f for f in (root / "denoise" / "BSD68").iterdir() if f.suffix.lower() in IMAGE_EXTS)[:limit]
    rng = np.random.default_rng(seed)
    out = []
    for f in files:
        clean = np.asarray(Image.open(f).convert("L"), dtype=np.float64)[:, :, None]
        out.append((clean.astype(np.uint8), noisy_image(clean, SIGMA, "8bit", rng)))
    return out


def eval_denoise(model, pairs) -> tuple[float, float, float]:
    """(PSNR told the true sigma, PSNR blind, median s / image of the true-sigma pass)."""
    known, blind, times = [], [], []
    for ref, noisy in pairs:
        t0 = time.perf_counter()
        out = u8(restore_array(model, noisy, sigma=SIGMA))
        times.append(time.perf_counter() - t0)
        known.append(psnr(out, ref))
        blind.append(psnr(u8(restore_array(model, noisy)), ref))
    return float(np.mean(known)), float(np.mean(blind)), float(np.median(times))


def sr_inputs(root: Path, limit: int | None) -> dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """set -> [(HR uint8, LR float (H/4, W/4, 3), bicubic-up uint8)] as benchmarks/restore_sr.py makes them."""
    s, out = 4, {}
    for name in ("Set5", "Set14"):
        folder = root / SR_SETS[name]
        items = []
        for f in sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_EXTS)[:limit]:
            items.append(sr_pair(f, s))
        out[name] = items
    return out


def eval_sr(model, sets) -> tuple[dict[str, float], float]:
    """(set -> PSNR Y border 4, median s / image over Set14)."""
    scores, times = {}, []
    for name, items in sets.items():
        ps = []
        for hr, lr, _ in items:
            t0 = time.perf_counter()
            out = restore_array(model, lr)
            if name == "Set14":
                times.append(time.perf_counter() - t0)
            ps.append(psnr_y(to_u8(out), hr, 4))
        scores[name] = float(np.mean(ps))
    return scores, float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="shared data folder (default: $RESGAN_DATA, else ../shared/data)")
    ap.add_argument("--tasks", default="denoise,sr", help="denoise and/or sr")
    ap.add_argument("--steps", type=int, default=500, help="training steps of every variant")
    ap.add_argument("--batch", type=int, default=8, help="crops per training step")
    ap.add_argument("--crop", type=int, help="training crop in px (default: denoise 64, sr 96 HR)")
    ap.add_argument("--ema", type=float, default=0.99, help="train.ema_decay of every variant (presets: 0.999)")
    ap.add_argument("--seed", type=int, default=0, help="training seed and BSD68 noise seed")
    ap.add_argument("--keep", help="keep the run directories here (default: a temporary folder, removed)")
    ap.add_argument("--limit", type=int, help="first N images of each test set (quick checks)")
    args = ap.parse_args()
    tasks = [t for t in args.tasks.split(",") if t]
    for t in tasks:
        if t not in VARIANTS:
            ap.error(f"unknown task {t!r}; choose from {', '.join(VARIANTS)}")
    root = data_root(args.data).resolve()
    torch.set_num_threads(1)
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="resgan_ablation_") as tmp:
        base = Path(args.keep).resolve() if args.keep else Path(tmp)
        tables = []
        for task in tasks:
            preset, variants = VARIANTS[task]
            crop = args.crop or DEFAULT_CROP[task]
            if task == "denoise":
                data = denoise_inputs(root, args.seed, args.limit)
                head = ["net", "params", "s / image", "s / train step", "train wall (s)",
                        f"BSD68 sigma {SIGMA:g}, true sigma (dB)", "blind (dB)"]
                rows = [["noisy input", "", "", "", "", float(np.mean([psnr(u8(n), c) for c, n in data])), ""]]
            else:
                data = sr_inputs(root, args.limit)
                head = ["net", "params", "s / image (Set14 median)", "s / train step", "train wall (s)",
                        "Set5 (dB)", "Set14 (dB)"]
                rows = [["bicubic", "", "", "", "", *(float(np.mean([psnr_y(up, hr, 4) for hr, _, up in items]))
                                                      for items in data.values())]]
            for i, (label, own) in enumerate(variants):
                run = base / f"{task}_{i}_{own['restore.arch']}"
                sets = overrides(task, own, args, root)
                log(f"{task} {i + 1}/{len(variants)}: {label}: training {args.steps} steps x {args.batch} "
                    f"crops of {crop} px")
                wall = train(preset, run, sets, args)
                model = load_model(task, str(run))
                params = sum(p.numel() for p in model.net.parameters()) / 1e6
                ts = step_seconds(run, args.batch)
                log(f"  trained in {wall:.0f} s ({ts:.2f} s / step), {params:.2f}M params; evaluating")
                if task == "denoise":
                    known, blind, t = eval_denoise(model, data)
                    rows.append([label, f"{params:.2f}M", f"{t:.2f}", f"{ts:.2f}", f"{wall:.0f}", known, blind])
                else:
                    scores, t = eval_sr(model, data)
                    rows.append([label, f"{params:.2f}M", f"{t:.2f}", f"{ts:.2f}", f"{wall:.0f}",
                                 scores["Set5"], scores["Set14"]])
                log(f"  {rows[-1][5:]} ({time.perf_counter() - t_start:.0f} s so far)")
            n = len(data) if task == "denoise" else "/".join(str(len(v)) for v in data.values())
            tables.append(f"{task} (preset {preset}): {args.steps} steps x {args.batch} crops of {crop} px, seed "
                          f"{args.seed}, EMA {args.ema:g}, fp32, 1 thread; {n} test images\n\n{table(head, rows)}")
            print(tables[-1] + "\n", flush=True)
    total = time.perf_counter() - t_start
    print(f"all tasks: {total / 60:.1f} min wall; torch {torch.__version__}, {os.cpu_count()} CPUs seen\n")
    print("\n\n".join(tables))
    print(f"\ncommand: {command()}")


if __name__ == "__main__":
    main()
