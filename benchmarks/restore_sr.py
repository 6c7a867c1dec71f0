"""x4 super-resolution on Set5 / Set14 / BSD100: PSNR on Y (BT.601) with a 4-pixel border crop, of a
resgan SR model beside bicubic upscaling and the published figures of FSRCNN / SRResNet / IMDN / RFDN.

    .venv/bin/python benchmarks/restore_sr.py [--data ../shared/data] [--model sr_x4] [--sets Set5,Set14,BSD100]

BSD100 is the BSDS300 test set, i.e. ``photos/bsds500/val`` (100 photos; never trained on).

Low-resolution inputs: HR cropped to a multiple of 4, antialiased bicubic downscale (PyTorch,
like the training degradation), rounded to uint8. Two bicubic baselines: PyTorch's upsampling (cubic
a = -0.75) and Pillow's (a = -0.5, MATLAB's imresize kernel), which reproduces the papers' bicubic rows
(Set5 28.43 / Set14 26.09 here vs 28.42 / 26.00 published), i.e. these inputs match MATLAB's closely.

A second table puts every method (the bicubic rows, each ``--model``: by default ``sr_x4`` and, once it is a
built-in, ``sr_x4_gan``) side by side on what PSNR does not see: the detail ratio (``resgan.metrics.detail``:
the Laplacian variance of luma over the whole image less the border, output over HR; bicubic lands near 0,
1 = as sharp as the photo) and FID / KID of 256-px crops (a non-overlapping grid of each image, SR output
against the HR crops at the same places; few crops make FID noisy: BSD100 gives 100).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from PIL import Image
from restore_common import command, data_root, table, to_u8

from resgan.data import IMAGE_EXTS
from resgan.imageio import read_image
from resgan.metrics.detail import detail_ratio
from resgan.metrics.psnr_ssim import psnr
from resgan.restore.degradations import bicubic_down, bicubic_up
from resgan.restore.infer import load_model, restore_array

# Published x4 PSNR (Y, border 4, MATLAB bicubic degradation): Set5 / Set14 / BSD100
PUBLISHED = {"FSRCNN": (30.72, 27.61, 26.98), "SRResNet": (32.05, 28.49, 27.58), "IMDN": (32.21, 28.58, 27.56),
             "RFDN": (32.24, 28.61, 27.57)}
SETS = {"Set5": "sr/Set5", "Set14": "sr/Set14", "BSD100": "photos/bsds500/val"}
CROP = 256  # FID crops


def psnr_y(a: np.ndarray, b: np.ndarray, border: int) -> float:
    return psnr(a, b, crop_border=border, y=True)


def sr_pair(path, s: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(HR uint8 cropped to a multiple of ``s``, LR float32 (H/s, W/s, 3) rounded to 8 bits, PyTorch's
    bicubic upscaling of it as uint8) for one image file (grey ones as RGB)."""
    hr = read_image(path).data
    hr = np.repeat(hr, 3, 2) if hr.shape[2] == 1 else hr
    hr = hr[:hr.shape[0] // s * s, :hr.shape[1] // s * s]
    x = torch.from_numpy(np.ascontiguousarray(hr.transpose(2, 0, 1)))[None]
    lr = (bicubic_down(x, s).clamp(0, 1) * 255).round() / 255
    up = bicubic_up(lr, s)[0].numpy().transpose(1, 2, 0)
    return to_u8(hr), lr[0].numpy().transpose(1, 2, 0).astype(np.float32), to_u8(up)


def crops(img: np.ndarray, size: int = CROP) -> list[np.ndarray]:
    """Non-overlapping ``size`` crops on a grid from the top-left corner (none from a smaller image)."""
    h, w = img.shape[:2]
    return [img[y:y + size, x:x + size] for y in range(0, h - size + 1, size) for x in range(0, w - size + 1, size)]


def default_models() -> str:
    from resgan.zoo import BUILTINS

    return ",".join(m for m in ("sr_x4", "sr_x4_gan") if m in BUILTINS)


def perceptual_rows(name: str, outs: dict[str, list[np.ndarray]], truths: list[np.ndarray], s: int, fx) -> list:
    """One row per method: PSNR-Y, whole-image detail ratio vs HR (border ``s`` cut), FID / KID of 256-px crops."""
    from resgan.metrics.stats import fid, kid

    inner = [t[s:-s, s:-s] for t in truths]
    real_crops = [c for t in truths for c in crops(t)]
    real = None
    if fx is not None and len(real_crops) >= 2:
        real = fx.extract_tensor(torch.from_numpy(np.stack(real_crops).transpose(0, 3, 1, 2).copy()))["pool3"]
    rows = []
    for method, images in outs.items():
        p = float(np.mean([psnr_y(o, t, s) for o, t in zip(images, truths)]))
        d = detail_ratio([o[s:-s, s:-s] for o in images], inner)
        f_k = ["", ""]
        if real is not None:
            fake = fx.extract_tensor(torch.from_numpy(np.stack([c for o in images for c in crops(o)])
                                                      .transpose(0, 3, 1, 2).copy()))["pool3"]
            f_k = [f"{fid(fake, real):.2f}", f"{kid(fake, real, subset_size=min(100, len(real)))['kid']:.4f}"]
        rows.append([name, method, p, f"{d:.3f}", len(real_crops), *f_k])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data")
    ap.add_argument("--model", default=default_models(), help="one or more comma-separated model sources; "
                    "the PSNR table is the first one's")
    ap.add_argument("--sets", default="Set5,Set14,BSD100")
    ap.add_argument("--limit", type=int, help="first N images of each set")
    ap.add_argument("--no-fid", dest="fid", action="store_false", help="skip FID / KID of the 256-px crops")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    models = {src: load_model("sr", src) for src in args.model.split(",")}
    model = next(iter(models.values()))
    s = model.scale
    if any(m.scale != s for m in models.values()):
        raise SystemExit("every --model must have the same scale")
    fx = None
    if args.fid:
        from resgan.metrics.features import FeatureExtractor

        fx = FeatureExtractor()
    rows, prows = [], []
    for name in args.sets.split(","):
        folder = data_root(args.data) / SETS[name]
        files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_EXTS)[:args.limit]
        truths, times = [], []
        outs: dict[str, list[np.ndarray]] = {"bicubic a=-0.5": [], "bicubic torch": [],
                                             **{f"resgan {src}": [] for src in models}}
        for f in files:
            truth, lr, up = sr_pair(f, s)
            truths.append(truth)
            outs["bicubic a=-0.5"].append(np.asarray(Image.fromarray(to_u8(lr)).resize(truth.shape[1::-1],
                                                                                       Image.BICUBIC)))
            outs["bicubic torch"].append(up)
            for i, (src, m) in enumerate(models.items()):
                t0 = time.perf_counter()
                outs[f"resgan {src}"].append(to_u8(restore_array(m, lr)))
                if i == 0:
                    times.append(time.perf_counter() - t0)
        first = outs[f"resgan {next(iter(models))}"]
        ours = [psnr_y(o, t, s) for o, t in zip(first, truths)]
        bic = [psnr_y(o, t, s) for o, t in zip(outs["bicubic torch"], truths)]
        bic_m = [psnr_y(o, t, s) for o, t in zip(outs["bicubic a=-0.5"], truths)]
        col = list(SETS).index(name)
        rows.append([name, len(files), float(np.mean(bic_m)), float(np.mean(bic)), float(np.mean(ours)),
                     float(np.mean(ours) - np.mean(bic_m)),
                     f"{np.median(times):.2f}", *(v[col] for v in PUBLISHED.values())])
        prows += perceptual_rows(name, outs, truths, s, fx)
    print(f"x{s} SR, PSNR on Y, border {s}; model {model.source} ({model.step} steps, width "
          f"{model.cfg.restore.width}, {model.cfg.restore.blocks} blocks); {torch.get_num_threads()} CPU threads\n")
    print(table(["set", "images", "bicubic a=-0.5 (dB)", "bicubic torch (dB)", "resgan (dB)",
                 "gain over a=-0.5 (dB)", "resgan s / image",
                 *(f"{k} (published)" for k in PUBLISHED)], rows))
    print("\npublished figures use MATLAB's bicubic downscale; ours PyTorch's antialiased one: the a=-0.5 "
          "bicubic column lands within 0.1 dB of the papers' bicubic rows, so the inputs are comparable\n")
    print(f"detail ratio (whole image less a {s}-px border, output over HR) and FID / KID of {CROP}-px crops "
          "(output vs HR at the same places; resgan's Inception)\n")
    print(table(["set", "method", "PSNR-Y (dB)", "detail", f"{CROP}-px crops", "FID", "KID"], prows))
    print(f"\ncommand: {command()}")


if __name__ == "__main__":
    main()
