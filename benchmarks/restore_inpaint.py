"""Inpainting on DeepFill v2's six Places2 cases (inpaint/places2_examples: caseN_raw.png truth,
caseN_mask.png holes): PSNR / SSIM of a resgan inpainting model beside OpenCV's Telea and
DeepFill v2's own caseN_output.png, and CPU latency at 512x512.

    .venv/bin/python benchmarks/restore_inpaint.py [--data ../shared/data] [--model inpaint]

Needs opencv-python-headless for the Telea baseline (pip install -e '.[bench]').
PSNR / SSIM are over the whole 680x512 RGB image (known pixels included, as usually reported).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from restore_common import command, data_root, psnr_u8, ssim_u8, table, to_u8

from resgan.imageio import read_image, read_mask
from resgan.restore.infer import load_model, restore_array


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data")
    ap.add_argument("--model", default="inpaint")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import cv2

    folder = data_root(args.data) / "inpaint" / "places2_examples" / "places2"
    cases = sorted({f.name.split("_")[0] for f in folder.glob("case*_raw.png")}, key=lambda c: int(c[4:]))
    model = load_model("inpaint", args.model)
    rows, scores = [], {"resgan": [], "telea": [], "deepfill": []}
    for case in cases:
        raw = read_image(folder / f"{case}_raw.png")
        truth = to_u8(raw.data)
        h, w = truth.shape[:2]
        hole = read_mask(folder / f"{case}_mask.png", (w, h))
        t0 = time.perf_counter()
        ours = to_u8(restore_array(model, raw.data, hole))
        t_ours = time.perf_counter() - t0
        masked = np.where(hole[:, :, None], 0, truth).astype(np.uint8)
        t0 = time.perf_counter()
        telea = cv2.inpaint(masked, hole.astype(np.uint8) * 255, 3, cv2.INPAINT_TELEA)
        t_telea = time.perf_counter() - t0
        deepfill = to_u8(read_image(folder / f"{case}_output.png").data)
        r = [case, f"{hole.mean() * 100:.1f}%"]
        for name, img in (("resgan", ours), ("telea", telea), ("deepfill", deepfill)):
            p, s = psnr_u8(img, truth), ssim_u8(img, truth)
            scores[name].append((p, s))
            r += [f"{p:.2f} / {s:.4f}"]
        rows.append(r + [f"{t_ours:.2f}", f"{t_telea:.3f}"])
    mean = {k: np.mean(v, 0) for k, v in scores.items()}
    rows.append(["mean", ""] + [f"{mean[k][0]:.2f} / {mean[k][1]:.4f}" for k in ("resgan", "telea", "deepfill")]
                + ["", ""])
    print(f"places2_examples ({len(cases)} cases, 680x512); model {model.source} ({model.step} steps, "
          f"width {model.cfg.restore.width}); {torch.get_num_threads()} CPU threads\n")
    print(table(["case", "hole", "resgan PSNR / SSIM", "Telea PSNR / SSIM", "DeepFill v2 PSNR / SSIM",
                 "resgan s", "Telea s"], rows))
    # latency at 512x512 (median of 3, after one warm-up)
    rng = np.random.default_rng(0)
    img = rng.random((512, 512, 3)).astype(np.float32)
    hole = np.zeros((512, 512), bool)
    hole[128:256, 200:360] = True
    restore_array(model, img, hole)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        restore_array(model, img, hole)
        times.append(time.perf_counter() - t0)
    print(f"\nCPU latency at 512x512: {np.median(times):.3f} s (median of 3, {torch.get_num_threads()} threads)")
    print(f"\ncommand: {command()}")


if __name__ == "__main__":
    main()
