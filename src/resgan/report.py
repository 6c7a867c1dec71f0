"""Run outputs a person looks at: sample grids (PNG), metrics (JSONL, TensorBoard if
installed) and ``report.html`` with loss curves and the latest grids."""

from __future__ import annotations

import html
import io
import json
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .checkpoint import atomic_write_bytes
from .data import to_uint8


def make_grid(images: torch.Tensor, ncol: int, pad: int = 2) -> Image.Image:
    """float [-1, 1] or uint8 (N, C, H, W) -> one PIL image, ``ncol`` images a row."""
    if images.dtype != torch.uint8:
        images = to_uint8(images)
    n, c, h, w = images.shape
    nrow = math.ceil(n / ncol)
    grid = np.zeros((nrow * (h + pad) + pad, ncol * (w + pad) + pad, c), dtype=np.uint8)
    arr = images.permute(0, 2, 3, 1).numpy()
    for i in range(n):
        r, k = divmod(i, ncol)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + k * (w + pad): pad + k * (w + pad) + w] = arr[i]
    return Image.fromarray(grid[:, :, 0] if c == 1 else grid)


def save_png(img: Image.Image, path: Path) -> None:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


def _row(line: str) -> dict | None:
    """A metrics.jsonl line as a dict with a step; None for a blank or torn one (a kill mid-append)."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return None
    return row if isinstance(row, dict) and "step" in row else None


class MetricsLog:
    """Appends one JSON object per logged step to ``metrics.jsonl``; mirrors to TensorBoard."""

    def __init__(self, run_dir: Path, resume_step: int = 0):
        self.path = run_dir / "metrics.jsonl"
        if self.path.exists():  # drop lines past the checkpoint we resume from, and a torn last line
            lines = self.path.read_text().splitlines()
            kept = [ln for ln in lines if (row := _row(ln)) is not None and row["step"] <= resume_step]
            atomic_write_bytes(self.path, "".join(ln + "\n" for ln in kept).encode())
        self.file = open(self.path, "a")
        self.tb = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run_dir / "tb"))
        except Exception:  # tensorboard is optional
            pass

    def log(self, step: int, values: dict[str, float]) -> None:
        self.file.write(json.dumps({"step": step, **{k: round(v, 6) for k, v in values.items()}}) + "\n")
        self.file.flush()
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(k, v, step)

    def close(self) -> None:
        self.file.close()
        if self.tb is not None:
            self.tb.close()


def _svg_chart(title: str, series: dict[str, list[tuple[int, float]]], width: int = 560, height: int = 220) -> str:
    colours = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]
    pts = [p for s in series.values() for p in s if math.isfinite(p[1])]
    if not pts:
        return ""
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y0, y1 = min(p[1] for p in pts), max(p[1] for p in pts)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1e-6)
    m = 40

    def sx(x: float) -> float:
        return m + (x - x0) / (x1 - x0) * (width - m - 10)

    def sy(y: float) -> float:
        return height - 25 - (y - y0) / (y1 - y0) * (height - 45)

    parts = [f'<svg width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg" style="background:#fff">',
             f'<text x="{m}" y="14" font-size="13">{html.escape(title)}</text>',
             f'<text x="2" y="{sy(y1) + 4:.0f}" font-size="10">{y1:.3g}</text>',
             f'<text x="2" y="{sy(y0):.0f}" font-size="10">{y0:.3g}</text>',
             f'<text x="{m}" y="{height - 8}" font-size="10">step {x0}</text>',
             f'<text x="{width - 90}" y="{height - 8}" font-size="10">step {x1}</text>']
    for i, (name, s) in enumerate(series.items()):
        c = colours[i % len(colours)]
        # at most ~600 points a line: average runs of neighbours
        k = max(1, len(s) // 600)
        s = [(s[j][0], sum(v for _, v in s[j:j + k]) / len(s[j:j + k])) for j in range(0, len(s), k)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in s if math.isfinite(y))
        parts.append(f'<polyline fill="none" stroke="{c}" stroke-width="1.2" points="{path}"/>')
        label = f"{name} {s[-1][1]:.4g}" if s else name  # the latest value beside the name
        parts.append(f'<text x="{width - 150}" y="{16 + 13 * i}" font-size="11" fill="{c}">{html.escape(label)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


CHARTS = [("Losses", ("loss_d", "loss_g")), ("Discriminator outputs", ("d_real", "d_fake")),
          ("Penalties", ("gp", "r1")), ("FID (EMA generator)", ("fid",)), ("CAS (EMA generator)", ("cas",)),
          ("PSNR (dB)", ("psnr", "psnr_input", "psnr_fill")), ("SSIM", ("ssim",)), ("Speed (img/s)", ("img_per_s",))]


GRID_WIDTH = 360  # px a sample grid is shown at in the report
GRID_PAD = 2  # make_grid's padding


def _grid_figure(path: Path, row_labels: list[str]) -> str:
    """One sample grid, with each row's label beside it when the grid has that many rows."""
    img = f'<img src="samples/{path.name}" style="image-rendering:pixelated;width:{GRID_WIDTH}px;display:block">'
    caption = f"<figcaption>{html.escape(path.stem)}</figcaption>"
    rows = len(row_labels)
    try:
        with Image.open(path) as im:
            w, h = im.size
    except OSError:
        rows = 0
    if not rows or (h - GRID_PAD) % rows:
        return f"<figure>{img}{caption}</figure>"
    scale = GRID_WIDTH / w
    cell = (h - GRID_PAD) // rows
    labels = "".join(
        f'<div class="row" style="top:{(GRID_PAD + i * cell) * scale:.1f}px;height:{(cell - GRID_PAD) * scale:.1f}px"'
        f' title="{html.escape(name)}">{html.escape(name)}</div>' for i, name in enumerate(row_labels))
    return (f'<figure><div class="labelled"><div class="rows" style="height:{h * scale:.1f}px">{labels}</div>'
            f"{img}</div>{caption}</figure>")


def write_report(run_dir: Path, title: str, extra_html: str = "", row_labels: list[str] | None = None) -> Path:
    """(Re)write ``run_dir/report.html`` from ``metrics.jsonl`` and ``samples/*.png``; ``row_labels``
    names the rows of the sample grids (a conditional GAN: its class names)."""
    series: dict[str, list[tuple[int, float]]] = {}
    metrics = run_dir / "metrics.jsonl"
    if metrics.exists():
        for rec in filter(None, map(_row, metrics.read_text().splitlines())):
            for k, v in rec.items():
                if k != "step" and isinstance(v, (int, float)):
                    series.setdefault(k, []).append((rec["step"], float(v)))
    charts = [_svg_chart(t, {k: series[k] for k in keys if k in series}) for t, keys in CHARTS]
    grids = sorted((run_dir / "samples").glob("*.png"))[-4:][::-1]
    imgs = "\n".join(_grid_figure(g, row_labels or []) for g in grids)
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:20px;background:#f6f6f6}} figure{{display:inline-block;margin:8px}}
.charts svg{{margin:6px;border:1px solid #ddd}} .labelled{{display:flex}}
.rows{{position:relative;width:110px;margin-right:4px;font-size:11px}}
.row{{position:absolute;right:0;width:110px;display:flex;align-items:center;justify-content:flex-end;
overflow:hidden;white-space:nowrap;text-overflow:ellipsis}}</style></head><body>
<h1>{html.escape(title)}</h1><div class="charts">{''.join(charts)}</div>
<h2>Latest samples (EMA generator, fixed noise)</h2>{imgs}{extra_html}</body></html>"""
    path = run_dir / "report.html"
    atomic_write_bytes(path, doc.encode())
    return path
