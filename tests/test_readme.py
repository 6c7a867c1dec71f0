"""README's examples run as written from a fresh clone after ``make demo`` (issue #14).

Every ```bash block's ``resgan`` lines are parsed by the real argument parser (fast, always run).
The slow checks run each ```bash and ```python block in a fresh folder that holds only what a
clone has after ``make demo`` (``.venv`` and ``../shared``, linked), plus the example inputs the
README names (``photo.png``, ``folder/``, ``small.png``, ``my_images/``), with small counts
substituted: ``train`` gets ``--steps 2`` and a small batch / data limit (a ``--resume`` line
``--steps 3``), ``-n N`` / ``n=N`` become 20. Not run: ``make`` (the precondition), ``pip``, ``serve``
(it blocks) and ``torchrun`` (tests/core/test_dist.py). A block that names a ``../shared/data`` path
that is missing here is skipped.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO
from PIL import Image

README = REPO / "README.md"
SHARED = REPO.parent / "shared"
BLOCK_RE = re.compile(r"^```(bash|python)\n(.*?)^```", re.S | re.M)
NOT_RUN = ("make ", "pip ", "/pip ", " serve", "torchrun")
SMALL = {"gan": ["data.limit=256", "train.batch_size=16", "train.sample_every=1", "train.ckpt_every=1",
                 "gan.standing_stats=1"],
         "restore": ["data.limit=4", "train.batch_size=2", "train.sample_every=1", "train.ckpt_every=1",
                     "restore.val_limit=1", "restore.val_every=1"]}


def blocks(lang: str) -> list[str]:
    return [body for kind, body in BLOCK_RE.findall(README.read_text()) if kind == lang]


def resgan_lines(block: str) -> list[list[str]]:
    """The ``resgan`` command lines of a bash block, as argument lists (variables expanded)."""
    env: dict[str, str] = {}
    out = []
    for line in block.splitlines():
        code = line.split(" #", 1)[0].strip()
        if not code or code.startswith("#"):
            continue
        if re.fullmatch(r"[A-Z_]+=\S+", code):
            k, v = code.split("=", 1)
            env[k] = v
            continue
        words = shlex.split(re.sub(r"\$(\w+)", lambda m: env.get(m.group(1), m.group(0)), code))
        if words and words[0].endswith("resgan"):
            out.append(words[1:])
        elif "-m" in words and words[words.index("-m") + 1:][:1] == ["resgan"]:  # torchrun ... -m resgan
            out.append(words[words.index("-m") + 2:])
    return out


def test_readme_resgan_lines_parse():
    """Every option the README shows exists (a renamed flag fails here, in the fast suite)."""
    from resgan.cli import build_parser

    lines = [args for b in blocks("bash") for args in resgan_lines(b)]
    assert len(lines) >= 12 and {a[0] for a in lines} >= {"train", "generate", "restore", "export", "evaluate"}
    for args in lines:
        try:
            build_parser().parse_args(args)
        except SystemExit:
            pytest.fail(f"README: resgan {' '.join(args)} does not parse")


def test_readme_python_blocks_compile():
    for b in blocks("python"):
        compile(b, "README.md", "exec")


# ---------------------------------------------------------------- slow: run them


def small_line(code: str) -> str:
    """A README command line with small counts (see the module's doc)."""
    from resgan.config import load_config

    words = code.split()
    if len(words) > 2 and words[0].endswith("resgan") or words[:1] == ["$R"]:
        if words[1] == "train":
            if "--resume" in words:
                return code + " --steps 3 --quiet"
            task = load_config(words[2]).task
            return code + " --steps 2 --quiet " + " ".join(f"--set {s}" for s in SMALL[task])
        code = re.sub(r"(\s-n\s+)\d+", r"\g<1>20", code)
    return code


def bash_script(block: str) -> str:
    lines = ["set -euo pipefail"]
    for line in block.splitlines():
        code = line.split(" #", 1)[0].rstrip()
        if code.strip().startswith("#") or not code.strip():
            continue
        if any(code.lstrip().startswith(n.strip()) or n in code for n in NOT_RUN):
            continue
        lines.append(small_line(code.strip()))
    return "\n".join(lines) + "\n"


def missing_shared(text: str) -> list[str]:
    return [p for p in re.findall(r"\.\./shared/data/[\w./-]+", text) if not (REPO / p).exists()]


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """A folder laid out as a clone after ``make demo``, with the example inputs the README names."""
    root = tmp_path / "clone"
    root.mkdir()
    (root / ".venv").symlink_to(REPO / ".venv")
    if SHARED.is_dir():
        (tmp_path / "shared").symlink_to(SHARED)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:96, 0:128]
    photo = np.stack([xx * 2, yy * 2, (xx + yy)], 2).clip(0, 255).astype(np.uint8)
    Image.fromarray(np.clip(photo + rng.normal(0, 20, photo.shape), 0, 255).astype(np.uint8)).save(root / "photo.png")
    Image.fromarray(photo[::3, ::3]).save(root / "small.png")
    (root / "folder").mkdir()
    Image.fromarray(photo).save(root / "folder" / "img.png")
    mask = np.zeros(photo.shape[:2], np.uint8)
    mask[30:60, 40:90] = 255
    Image.fromarray(mask).save(root / "folder" / "img_mask.png")
    for c, name in enumerate(["cats", "dogs"]):  # "With your own data": one sub-folder per class
        (root / "my_images" / name).mkdir(parents=True)
        for i in range(10):
            img = Image.new("RGB", (40, 40), tuple(int(v) for v in rng.integers(0, 255, 3)))
            arr = np.asarray(img).copy()
            arr[10:30, 10:30] = 255 if c else 0
            Image.fromarray(arr).save(root / "my_images" / name / f"{i}.png")
    return root


def run_in(root: Path, argv: list[str], timeout: int = 1500) -> None:
    env = {**os.environ, "RESGAN_CACHE": str(root / "cache"), "OMP_NUM_THREADS": "1"}
    env.pop("RESGAN_DATA", None)
    proc = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(argv)[:300]}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(blocks("bash"))), ids=lambda i: f"bash{i}")
def test_readme_bash_block_runs(index: int, clone: Path):
    block = blocks("bash")[index]
    if missing := missing_shared(block):
        pytest.skip(f"needs {', '.join(missing)}")
    script = bash_script(block)
    if script.count("\n") <= 1:
        pytest.skip("nothing to run here (make / pip / serve / torchrun only)")
    (clone / "block.sh").write_text(script)
    run_in(clone, ["bash", "block.sh"])


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(blocks("python"))), ids=lambda i: f"python{i}")
def test_readme_python_block_runs(index: int, clone: Path):
    block = blocks("python")[index]
    if missing := missing_shared(block):
        pytest.skip(f"needs {', '.join(missing)}")
    code = re.sub(r"\bn=\d+", "n=20", block).replace('"0-999"', '"0-19"')
    (clone / "block.py").write_text(code)
    run_in(clone, [str(REPO / ".venv" / "bin" / "python"), "block.py"])
