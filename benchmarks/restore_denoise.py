"""Grey Gaussian denoising on BSD68 (sigma 25 by default, fixed noise seed): PSNR and CPU
seconds per image of a resgan restore model, beside BM3D and DnCNN.

    .venv/bin/python benchmarks/restore_denoise.py [--data ../shared/data] [--model denoise_gray]

Noise is added in float and not clipped (the DnCNN test convention); the output is rounded to
uint8 before PSNR. ``known sigma`` gives the net the true sigma, ``estimated`` lets it estimate it.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from PIL import Image
from restore_common import command, data_root, psnr_u8, ssim_u8, table, to_u8

from resgan.data import IMAGE_EXTS
from resgan.restore.infer import estimate_sigma, load_model, restore_array


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data")
    ap.add_argument("--set", default="denoise/BSD68")
    ap.add_argument("--model", default="denoise_gray")
    ap.add_argument("--sigma", type=float, default=25.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--blind", action="store_true", help="also run with the noise level estimated (twice the time)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    folder = data_root(args.data) / args.set
    files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_EXTS)[: args.limit]
    model = load_model("denoise", args.model)
    rng = np.random.default_rng(args.seed)
    res = {"noisy": [], "known": [], "estimated": [], "ssim": [], "t": [], "sigma_hat": []}
    for f in files:
        clean = np.asarray(Image.open(f).convert("L"), dtype=np.float32)[:, :, None] / 255
        noisy = (clean + rng.normal(0, args.sigma / 255, clean.shape)).astype(np.float32)
        t0 = time.perf_counter()
        out = restore_array(model, noisy, sigma=args.sigma)
        res["t"].append(time.perf_counter() - t0)
        c8 = to_u8(clean)
        res["noisy"].append(psnr_u8(to_u8(noisy), c8))
        res["known"].append(psnr_u8(to_u8(out), c8))
        res["ssim"].append(ssim_u8(to_u8(out)[:, :, 0], c8[:, :, 0]))
        res["sigma_hat"].append(estimate_sigma(noisy))
        if args.blind:
            res["estimated"].append(psnr_u8(to_u8(restore_array(model, noisy)), c8))
    m = {k: float(np.mean(v)) if v else float("nan") for k, v in res.items()}
    print(f"{args.set}, sigma {args.sigma:g}, noise seed {args.seed}, {len(files)} images, "
          f"{torch.get_num_threads()} CPU threads; model {model.source} ({model.step} steps, "
          f"width {model.cfg.restore.width}, {model.cfg.restore.blocks} blocks)\n")
    print(table(["method", "PSNR (dB)", "SSIM", "s / image"], [
        ["noisy input", m["noisy"], "", ""],
        ["resgan denoise_gray, known sigma", m["known"], f"{m['ssim']:.4f}", f"{m['t']:.2f}"],
        *([[f"resgan denoise_gray, estimated sigma (mean {m['sigma_hat']:.1f})", m["estimated"], "", ""]]
          if args.blind else []),
        ["BM3D (measured on this machine, reference)", 28.62, "", "4.5"],
        ["DnCNN-S (published, Zhang et al. 2017)", 29.23, "", ""],
    ]))
    print(f"\ncommand: {command()}")


if __name__ == "__main__":
    main()
