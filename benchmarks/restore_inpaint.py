"""Inpainting side by side: resgan models beside OpenCV's Telea and Navier-Stokes on the same inputs.

    .venv/bin/python benchmarks/restore_inpaint.py [--data ../shared/data] [--model inpaint] [--part all]

Parts: ``photos``: the 100 held-out BSDS500 ``val`` photos (never trained on) with fixed-seed LaMa-style
thin / medium / thick masks (``degradations.lama_mask``), per family PSNR / SSIM, FID / KID of the 100
filled photos against the 100 originals (resgan's own Inception metrics; PSNR rewards blur, FID does
not) and the hole detail ratio (``resgan.metrics.detail``: the holes' Laplacian variance of luma, output
over truth: 0 = smooth, 1 = as rich as the photo), beside the push-pull fill alone (the FFC net's
classical base: the table shows what the net adds), OpenCV's diffusion fills (Telea, Navier-Stokes) and
a texture-synthesis peer (``--xphoto``: ``cv2.xphoto.inpaint`` shift-map, He & Sun 2012, ~12 s per photo
on one thread; or FSR), and a strip of thick-mask results (``--strip``); ``edgeconnect``: EdgeConnect's example images
and masks (holes painted white, no ground truth: a strip of fills, ``--ec-strip``, no scores);
``places2``: DeepFill v2's six Places2 cases (inpaint/places2_examples: caseN_raw.png truth,
caseN_mask.png holes) with DeepFill v2's own caseN_output.png. Then CPU latency at 512x512.
``--model`` takes several comma-separated sources (built-in names, run dirs, files), e.g. the
previous built-in beside a new run.

Needs OpenCV with its contrib modules for the baselines (cv2.inpaint, cv2.xphoto): pip install -e '.[bench]'
(opencv-contrib-python-headless; it and opencv-python-headless both install ``cv2``, so uninstall the latter
first: pip uninstall -y opencv-python-headless). Without ``cv2.xphoto`` the shift-map row is skipped.
PSNR / SSIM are over the whole 680x512 RGB image (known pixels included, as usually reported).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from restore_common import command, data_root, psnr_u8, ssim_u8, table, to_u8

from resgan.imageio import read_image, read_mask
from resgan.metrics.detail import detail_ratio
from resgan.restore.infer import inference_precision, load_model, restore_array

FAMILIES = ("thin", "medium", "thick")
PUSHPULL = "push-pull fill (no net)"


XPHOTO = {"shiftmap": "INPAINT_SHIFTMAP", "fsr_fast": "INPAINT_FSR_FAST", "fsr_best": "INPAINT_FSR_BEST"}


def classical(cv2, truth: np.ndarray, hole: np.ndarray, flag: int) -> np.ndarray:
    masked = np.where(hole[:, :, None], 0, truth).astype(np.uint8)
    return cv2.inpaint(masked, hole.astype(np.uint8) * 255, 3, flag)


def xphoto(cv2, truth: np.ndarray, hole: np.ndarray, kind: str) -> np.ndarray:
    """``cv2.xphoto.inpaint`` (its mask is the other way round: non-zero = known). Shift-map works on CIELab
    (its docs: intensity first), FSR on BGR; the known pixels are put back exactly."""
    bgr = np.where(hole[:, :, None], 0, truth)[:, :, ::-1].astype(np.uint8).copy()
    src = cv2.cvtColor(bgr, cv2.COLOR_BGR2LAB) if kind == "shiftmap" else bgr
    dst = np.zeros_like(src)
    cv2.xphoto.inpaint(src, (~hole).astype(np.uint8) * 255, dst, getattr(cv2.xphoto, XPHOTO[kind]))
    out = (cv2.cvtColor(dst, cv2.COLOR_LAB2BGR) if kind == "shiftmap" else dst)[:, :, ::-1]
    return np.where(hole[:, :, None], out, truth)


def pushpull(truth: np.ndarray, hole: np.ndarray, smooth: int = 0) -> np.ndarray:
    """The FFC net's classical base alone: holes filled by masked averages down an image pyramid, relaxed
    by ``smooth`` Jacobi sweeps of Laplace's equation per level (``restore.fill_smooth``)."""
    from resgan.restore.ffc import pushpull_fill

    x = torch.from_numpy(truth.transpose(2, 0, 1).astype(np.float32) / 255)[None]
    return to_u8(pushpull_fill(x, torch.from_numpy(hole)[None, None], smooth)[0].numpy().transpose(1, 2, 0))


def photos_part(args, models: dict, cv2, rows_out: list) -> None:
    """bsds500/val with LaMa masks: PSNR / SSIM / FID / KID per family and method."""
    from PIL import Image

    from resgan.metrics.features import FeatureExtractor
    from resgan.metrics.stats import fid, kid
    from resgan.restore.degradations import lama_mask

    folder = data_root(args.data) / "photos" / "bsds500" / "val"
    files = sorted(f for f in folder.iterdir() if f.suffix.lower() in (".jpg", ".png"))[: args.limit]
    truths = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    fx = FeatureExtractor() if args.fid else None

    def feats(images: list[np.ndarray]) -> np.ndarray:  # 481x321 and 321x481: features one by one
        return np.concatenate([fx.extract_tensor(torch.from_numpy(im.transpose(2, 0, 1).copy())[None])["pool3"]
                               for im in images])

    real = feats(truths) if fx else None
    harmonic = f"harmonic fill (push-pull + {args.harmonic} sweeps, no net)"
    texture = f"OpenCV xphoto {args.xphoto}"
    if args.xphoto != "none" and not hasattr(cv2, "xphoto"):
        print(f"{texture}: skipped (cv2 has no xphoto module: pip install opencv-contrib-python-headless)")
    textures = [texture] if args.xphoto != "none" and hasattr(cv2, "xphoto") else []
    methods = [*models, PUSHPULL, *([harmonic] if args.harmonic else []), "OpenCV Telea", "OpenCV Navier-Stokes",
               *textures]
    strip = []
    for fam in args.families.split(","):
        rng = np.random.default_rng(args.seed + 1000 * FAMILIES.index(fam))
        holes = [lama_mask(t.shape[0], t.shape[1], rng, fam) > 0.5 for t in truths]
        outs: dict[str, list[np.ndarray]] = {m: [] for m in methods}
        times: dict[str, list[float]] = {m: [] for m in methods}
        for truth, hole in zip(truths, holes):
            for name in methods:
                t0 = time.perf_counter()
                if name in models:
                    out = to_u8(restore_array(models[name], truth.astype(np.float32) / 255, hole))
                elif name == PUSHPULL:
                    out = pushpull(truth, hole)
                elif name == harmonic:
                    out = pushpull(truth, hole, args.harmonic)
                elif name == texture:
                    out = xphoto(cv2, truth, hole, args.xphoto)
                else:
                    out = classical(cv2, truth, hole, cv2.INPAINT_TELEA if "Telea" in name else cv2.INPAINT_NS)
                times[name].append(time.perf_counter() - t0)
                outs[name].append(out)
        for name in methods:
            p = np.mean([psnr_u8(o, t) for o, t in zip(outs[name], truths)])
            q = np.mean([ssim_u8(o, t) for o, t in zip(outs[name], truths)])
            f_k = ["", ""]
            if fx:
                fake = feats(outs[name])
                f_k = [f"{fid(fake, real):.2f}", f"{kid(fake, real, subset_size=min(100, len(real)))['kid']:.4f}"]
            detail = detail_ratio(outs[name], truths, holes)
            rows_out.append([fam, f"{100 * np.mean([h.mean() for h in holes]):.1f}%", name, f"{p:.2f}", f"{q:.4f}",
                             *f_k, f"{detail:.3f}", f"{np.median(times[name]):.3f}"])
        print(table(["masks", "hole", "method", "PSNR", "SSIM", "FID", "KID", "detail", "s / image"],
                    rows_out[-len(methods):]), flush=True)
        if fam == "thick" and args.strip:
            for i in range(min(4, len(truths))):
                shown = np.where(holes[i][:, :, None], 255, truths[i]).astype(np.uint8)
                row = [shown, *[outs[m][i] for m in methods], truths[i]]
                strip.append(np.concatenate([r if r.shape[0] <= r.shape[1] else r.transpose(1, 0, 2) for r in row], 1))
    if strip:
        Image.fromarray(np.concatenate(strip, 0)).save(args.strip)
        print(f"strip (hole shown white | {' | '.join(methods)} | truth): {args.strip}")


def edgeconnect_part(args, models: dict, cv2) -> None:
    """EdgeConnect's examples have their holes painted white and no ground truth, so no PSNR: a strip of
    the fills (input | each model | Telea | Navier-Stokes) to look at."""
    from PIL import Image

    if not args.ec_strip:
        return
    root = data_root(args.data) / "inpaint" / "edgeconnect_examples"
    rows = []
    for sub in ("places2", "psv", "celeba"):
        for f in sorted((root / sub / "images").glob("*.png")):
            raw = read_image(f)
            shown = to_u8(raw.data)
            if shown.shape[2] != 3 or not (root / sub / "masks" / f.name).exists():
                continue
            hole = read_mask(root / sub / "masks" / f.name, (shown.shape[1], shown.shape[0]))
            fills = [to_u8(restore_array(m, raw.data, hole)) for m in models.values()]
            fills += [classical(cv2, shown, hole, flag) for flag in (cv2.INPAINT_TELEA, cv2.INPAINT_NS)]
            rows.append(np.concatenate([shown, *fills], 1))
    if rows:  # the sets differ in size: each row at 192 px high, padded white on the right
        rows = [np.asarray(Image.fromarray(r).resize((r.shape[1] * 192 // r.shape[0], 192))) for r in rows]
        width = max(r.shape[1] for r in rows)
        rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
        Image.fromarray(np.concatenate(rows, 0)).save(args.ec_strip)
        print(f"edgeconnect examples (no ground truth: input | {' | '.join(models)} | Telea | Navier-Stokes): "
              f"{args.ec_strip}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data")
    ap.add_argument("--model", default="inpaint", help="one or more comma-separated model sources")
    ap.add_argument("--part", default="all", choices=["all", "photos", "edgeconnect", "places2"])
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--limit", type=int, help="photos part: the first N val photos (default all 100)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-fid", dest="fid", action="store_false", help="photos part: skip FID / KID")
    ap.add_argument("--strip", default="inpaint_thick_strip.png", help="photos part: thick-mask strip ('' = none)")
    ap.add_argument("--ec-strip", default="inpaint_edgeconnect_strip.png",
                    help="edgeconnect part: strip of the fills ('' = none)")
    ap.add_argument("--harmonic", type=int, default=30,
                    help="photos part: also the push-pull fill + N Jacobi sweeps per level, no net (0 = skip)")
    ap.add_argument("--xphoto", default="shiftmap", choices=[*XPHOTO, "none"],
                    help="photos part: the cv2.xphoto.inpaint peer (shiftmap: texture synthesis, slow; none = skip)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import cv2

    cv2.setNumThreads(args.threads)

    models = {}
    for src in args.model.split(","):
        m = load_model("inpaint", src)
        models[f"resgan {src} ({m.step} steps)"] = m
    if args.part in ("all", "photos"):
        photos_part(args, models, cv2, [])
    if args.part in ("all", "edgeconnect"):
        edgeconnect_part(args, models, cv2)
    if args.part not in ("all", "places2"):
        print(f"\ncommand: {command()}")
        return
    model = next(iter(models.values()))

    folder = data_root(args.data) / "inpaint" / "places2_examples" / "places2"
    cases = sorted({f.name.split("_")[0] for f in folder.glob("case*_raw.png")}, key=lambda c: int(c[4:]))
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
    precision = inference_precision(model, torch.device("cpu"))
    print(f"\nCPU latency at 512x512: {np.median(times):.3f} s (median of 3, {torch.get_num_threads()} threads, "
          f"{precision}; RESGAN_CPU_BF16=0 for fp32)")
    print(f"\ncommand: {command()}")


if __name__ == "__main__":
    main()
