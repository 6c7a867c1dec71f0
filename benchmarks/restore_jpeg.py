"""JPEG artefact removal on BSD68 (grey) and CBSD68 (colour) at quality 10 / 20 / 30: PSNR / SSIM of the
decoded JPEG and of resgan's restoration of it, the gain, beside the published gains on LIVE1 q10 (grey).

    .venv/bin/python benchmarks/restore_jpeg.py [--data ../shared/data] [--gray jpeg_gray] [--color jpeg_color]
        [--sets BSD68,CBSD68,Set12]  (Set12: a second grey set, 12 classic test images)

Inputs: each clean PNG encoded by Pillow (grey as a one-channel JPEG; colour with Pillow's default 4:2:0
chroma subsampling), decoded to uint8, as a user's .jpg file is. PSNR on the image's own channels (grey: L,
colour: RGB), no border crop, uint8 against uint8. The same files for every model given.
"""

from __future__ import annotations

import argparse
import io
import time

import numpy as np
import torch
from PIL import Image
from restore_common import command, data_root, table, to_u8

from resgan.data import IMAGE_EXTS
from resgan.imageio import read_image
from resgan.metrics.psnr_ssim import psnr, ssim
from resgan.restore.infer import load_model, restore_array

# Published gains over the JPEG input, grey LIVE1 at quality 10 (the papers' tables; a different image set)
PUBLISHED_Q10 = {"ARCNN (Dong et al. 2015)": 1.19, "FBCNN (Jiang et al. 2021)": 1.98}


def jpeg_roundtrip(img: np.ndarray, quality: int) -> np.ndarray:
    """uint8 (H, W, C) -> the same image after a Pillow JPEG encode / decode at ``quality``."""
    pil = Image.fromarray(img[..., 0] if img.shape[2] == 1 else img)
    buf = io.BytesIO()
    pil.save(buf, format="JPEG", quality=quality)
    out = np.asarray(Image.open(io.BytesIO(buf.getvalue())))
    return out[..., None] if out.ndim == 2 else out


def run_set(model, files: list, qualities: list[int], limit: int | None) -> list[list]:
    rows = []
    for q in qualities:
        base_p, ours_p, base_s, ours_s, times = [], [], [], [], []
        for f in files[:limit]:
            clean = to_u8(read_image(f).data)
            coded = jpeg_roundtrip(clean, q)
            t0 = time.perf_counter()
            out = to_u8(restore_array(model, coded.astype(np.float32) / 255))
            times.append(time.perf_counter() - t0)
            base_p.append(psnr(coded, clean))
            ours_p.append(psnr(out, clean))
            base_s.append(ssim(coded, clean))
            ours_s.append(ssim(out, clean))
        rows.append([q, float(np.mean(base_p)), float(np.mean(ours_p)), float(np.mean(ours_p) - np.mean(base_p)),
                     f"{np.mean(base_s):.4f}", f"{np.mean(ours_s):.4f}", f"{np.median(times):.2f}"])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data")
    ap.add_argument("--gray", default="jpeg_gray", help="grey model (built-in name, run directory or file)")
    ap.add_argument("--color", default="jpeg_color", help="colour model")
    ap.add_argument("--quality", default="10,20,30", help="comma-separated JPEG qualities")
    ap.add_argument("--sets", default="BSD68,CBSD68", help="comma-separated: BSD68, CBSD68 (colour), Set12")
    ap.add_argument("--limit", type=int, help="first N images of each set")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    qualities = [int(q) for q in args.quality.split(",")]
    root = data_root(args.data) / "denoise"
    colour = {"BSD68": False, "Set12": False, "CBSD68": True}
    for set_name in args.sets.split(","):
        if set_name not in colour:
            ap.error(f"unknown set {set_name!r} (BSD68, CBSD68, Set12)")
        model = load_model("jpeg", args.color if colour[set_name] else args.gray)
        files = sorted(f for f in (root / set_name).iterdir() if f.suffix.lower() in IMAGE_EXTS)
        rows = run_set(model, files, qualities, args.limit)
        print(f"\n{set_name} ({len(files[:args.limit])} images, {'RGB' if colour[set_name] else 'grey'}); model "
              f"{model.source} ({model.step} steps); {torch.get_num_threads()} CPU threads\n")
        print(table(["quality", "JPEG (dB)", "resgan (dB)", "gain (dB)", "JPEG SSIM", "resgan SSIM",
                     "resgan s / image"], rows))
    print("\npublished gains over the JPEG input, grey LIVE1 q10: "
          + ", ".join(f"{k} +{v:.2f} dB" for k, v in PUBLISHED_Q10.items()))
    print(f"\ncommand: {command()}")


if __name__ == "__main__":
    main()
