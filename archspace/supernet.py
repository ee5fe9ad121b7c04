"""The weight-sharing supernet (Once-for-All style) and the standalone subnets cut out of it.

Sharing rules, as in Once-for-All (Cai et al., ICLR 2020):
- elastic kernel: a smaller depthwise kernel is the centre of the next larger one passed through a
  learned linear transform (one matrix per kernel-size step, initialised to the identity);
- elastic width / expand ratio: fewer channels are the first channels of every weight and BN;
- elastic depth: a shallower stage skips its last blocks.

`Supernet.subnet(arch)` materialises those rules into plain `nn.Conv2d` / `nn.BatchNorm2d` layers,
so the result exports to ONNX like any network and computes exactly what the supernet computes in
that configuration (eval mode).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from archspace.architecture import Architecture
from archspace.space import ArchSpace, make_divisible

__all__ = ["Supernet", "SubNet", "build_network"]


def _init_conv(weight: torch.Tensor) -> None:
    nn.init.kaiming_normal_(weight, mode="fan_out", nonlinearity="relu")


def _mid_channels(in_channels: int, expand: int) -> int:
    return make_divisible(in_channels * expand)


# ---------------------------------------------------------------------------------------------
# Dynamic (elastic) layers of the supernet
# ---------------------------------------------------------------------------------------------
class DynamicConv2d(nn.Module):
    """A dense conv with a fixed kernel whose input and output channels are the first ones."""

    def __init__(self, max_in: int, max_out: int, kernel_size: int = 1, stride: int = 1) -> None:
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride
        self.weight = nn.Parameter(torch.empty(max_out, max_in, kernel_size, kernel_size))
        _init_conv(self.weight)

    def active_weight(self, in_channels: int, out_channels: int) -> torch.Tensor:
        return self.weight[:out_channels, :in_channels]

    def forward(self, x: torch.Tensor, out_channels: int) -> torch.Tensor:
        w = self.active_weight(x.size(1), out_channels)
        return F.conv2d(x, w, stride=self.stride, padding=self.kernel_size // 2)


class DynamicDepthwiseConv2d(nn.Module):
    """Depthwise conv with elastic channels and an elastic kernel (centre crop + learned transform)."""

    def __init__(self, max_channels: int, kernel_sizes: tuple[int, ...], stride: int) -> None:
        super().__init__()
        self.kernel_sizes = tuple(sorted(kernel_sizes))
        self.stride = stride
        kmax = self.kernel_sizes[-1]
        self.weight = nn.Parameter(torch.empty(max_channels, 1, kmax, kmax))
        _init_conv(self.weight)
        # One (k*k x k*k) matrix per step down, applied to the centre crop, as in OFA.
        self.transforms = nn.ParameterDict()
        for big, small in zip(self.kernel_sizes[::-1], self.kernel_sizes[-2::-1]):
            self.transforms[f"{big}to{small}"] = nn.Parameter(torch.eye(small * small))

    def active_weight(self, channels: int, kernel_size: int) -> torch.Tensor:
        w = self.weight[:channels]  # (C, 1, Kmax, Kmax)
        size = self.kernel_sizes[-1]
        for small in self.kernel_sizes[-2::-1]:
            if size == kernel_size:
                break
            start = (size - small) // 2
            crop = w[:, :, start:start + small, start:start + small].reshape(-1, small * small)
            w = (crop @ self.transforms[f"{size}to{small}"]).reshape(channels, 1, small, small)
            size = small
        if size != kernel_size:
            raise ValueError(f"kernel size {kernel_size} not among {self.kernel_sizes}")
        return w

    def forward(self, x: torch.Tensor, kernel_size: int) -> torch.Tensor:
        c = x.size(1)
        return F.conv2d(x, self.active_weight(c, kernel_size), stride=self.stride,
                        padding=kernel_size // 2, groups=c)


class DynamicBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm over the first C channels of the largest layer (statistics and affine)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W), C <= num_features
        c = x.size(1)
        return F.batch_norm(
            x, self.running_mean[:c], self.running_var[:c], self.weight[:c], self.bias[:c],
            self.training, self.momentum if self.momentum is not None else 0.1, self.eps)


class DynamicMBConv(nn.Module):
    """Inverted bottleneck: 1x1 expand, kxk depthwise, 1x1 project; residual when shapes allow."""

    def __init__(self, max_in: int, max_out: int, stride: int, kernel_sizes: tuple[int, ...],
                 expand_ratios: tuple[int, ...]) -> None:
        super().__init__()
        max_mid = _mid_channels(max_in, max(expand_ratios))
        self.stride = stride
        self.expand = DynamicConv2d(max_in, max_mid)
        self.bn1 = DynamicBatchNorm2d(max_mid)
        self.depthwise = DynamicDepthwiseConv2d(max_mid, kernel_sizes, stride)
        self.bn2 = DynamicBatchNorm2d(max_mid)
        self.project = DynamicConv2d(max_mid, max_out)
        self.bn3 = DynamicBatchNorm2d(max_out)

    def forward(self, x: torch.Tensor, out_channels: int, kernel_size: int, expand: int) -> torch.Tensor:
        mid = _mid_channels(x.size(1), expand)
        h = F.relu6(self.bn1(self.expand(x, mid)))
        h = F.relu6(self.bn2(self.depthwise(h, kernel_size)))
        h = self.bn3(self.project(h, out_channels))
        if self.stride == 1 and x.size(1) == out_channels:
            h = h + x
        return h


class Supernet(nn.Module):
    """One set of weights for every architecture of an `ArchSpace`."""

    def __init__(self, space: ArchSpace | None = None, in_channels: int = 1, num_classes: int = 10) -> None:
        super().__init__()
        self.space = space or ArchSpace()
        self.in_channels, self.num_classes = in_channels, num_classes
        c = self.space.config
        wmax = c.width_mults[-1]
        stem = self.space.stem_channels(wmax)
        self.stem = DynamicConv2d(in_channels, stem, 3, c.stem_stride)
        self.stem_bn = DynamicBatchNorm2d(stem)
        self.stages = nn.ModuleList()
        prev = stem
        for out, stride in zip(self.space.stage_channels(wmax), c.stage_strides):
            blocks = nn.ModuleList()
            for b in range(c.depths[-1]):
                blocks.append(DynamicMBConv(prev if b == 0 else out, out, stride if b == 0 else 1,
                                            c.kernel_sizes, c.expand_ratios))
            self.stages.append(blocks)
            prev = out
        self.head = DynamicConv2d(prev, c.head_channels)
        self.head_bn = nn.BatchNorm2d(c.head_channels)
        self.classifier = nn.Linear(c.head_channels, num_classes)
        nn.init.normal_(self.classifier.weight, 0, 0.01)
        nn.init.zeros_(self.classifier.bias)
        self.active = self.space.largest()

    def set_active(self, arch: Architecture) -> None:
        self.space.check(arch)
        self.active = arch

    def forward(self, x: torch.Tensor, arch: Architecture | None = None) -> torch.Tensor:
        """x: (B, C_in, R, R) already at the architecture's resolution -> logits (B, classes)."""
        arch = arch or self.active
        h = F.relu6(self.stem_bn(self.stem(x, self.space.stem_channels(arch.width_mult))))
        for s, out in enumerate(self.space.stage_channels(arch.width_mult)):
            for b in range(arch.depths[s]):
                h = self.stages[s][b](h, out, arch.kernel_sizes[s][b], arch.expand_ratios[s][b])
        h = F.relu6(self.head_bn(self.head(h, self.head_bn.num_features)))
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(h, 1), 1))

    @torch.no_grad()
    def subnet(self, arch: Architecture) -> "SubNet":
        """A standalone module with the weights this supernet gives `arch` (copied, not shared)."""
        self.space.check(arch)
        net = build_network(arch, self.space, self.in_channels, self.num_classes)
        stem_out = self.space.stem_channels(arch.width_mult)
        net.stem[0].weight.copy_(self.stem.active_weight(self.in_channels, stem_out))
        _copy_bn(net.stem[1], self.stem_bn)
        blocks = iter(net.blocks)
        for s in range(arch.num_stages):
            for b in range(arch.depths[s]):
                src, dst = self.stages[s][b], next(blocks)
                cin, mid, cout = dst.expand[0].in_channels, dst.expand[0].out_channels, dst.project[0].out_channels
                dst.expand[0].weight.copy_(src.expand.active_weight(cin, mid))
                _copy_bn(dst.expand[1], src.bn1)
                dst.depthwise[0].weight.copy_(src.depthwise.active_weight(mid, arch.kernel_sizes[s][b]))
                _copy_bn(dst.depthwise[1], src.bn2)
                dst.project[0].weight.copy_(src.project.active_weight(mid, cout))
                _copy_bn(dst.project[1], src.bn3)
        net.head[0].weight.copy_(self.head.active_weight(net.head[0].in_channels, net.head[0].out_channels))
        _copy_bn(net.head[1], self.head_bn)
        net.classifier.load_state_dict(self.classifier.state_dict())
        net.train(self.training)
        return net


def _copy_bn(dst: nn.BatchNorm2d, src: nn.BatchNorm2d) -> None:
    c = dst.num_features
    dst.weight.copy_(src.weight[:c])
    dst.bias.copy_(src.bias[:c])
    dst.running_mean.copy_(src.running_mean[:c])
    dst.running_var.copy_(src.running_var[:c])
    dst.num_batches_tracked.copy_(src.num_batches_tracked)
    dst.eps, dst.momentum = src.eps, src.momentum


# ---------------------------------------------------------------------------------------------
# Static networks (subnets, and stand-alone networks trained from scratch)
# ---------------------------------------------------------------------------------------------
def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
                               nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU6(inplace=False))
    return nn.Sequential(*layers)


class MBConv(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, kernel_size: int, expand: int) -> None:
        super().__init__()
        mid = _mid_channels(cin, expand)
        self.expand = _conv_bn(cin, mid, 1)
        self.depthwise = _conv_bn(mid, mid, kernel_size, stride, groups=mid)
        self.project = _conv_bn(mid, cout, 1, act=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.project(self.depthwise(self.expand(x)))
        return h + x if self.residual else h


class SubNet(nn.Module):
    """A plain MobileNetV2-style network for one `Architecture` (exports to ONNX as is)."""

    def __init__(self, arch: Architecture, space: ArchSpace, in_channels: int, num_classes: int) -> None:
        super().__init__()
        c = space.config
        self.arch = arch
        stem = space.stem_channels(arch.width_mult)
        self.stem = _conv_bn(in_channels, stem, 3, c.stem_stride)
        blocks, prev = [], stem
        for s, (out, stride) in enumerate(zip(space.stage_channels(arch.width_mult), c.stage_strides)):
            for b in range(arch.depths[s]):
                blocks.append(MBConv(prev, out, stride if b == 0 else 1,
                                     arch.kernel_sizes[s][b], arch.expand_ratios[s][b]))
                prev = out
        self.blocks = nn.Sequential(*blocks)
        self.head = _conv_bn(prev, c.head_channels, 1)
        self.classifier = nn.Linear(c.head_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, R, R) -> (B, classes)
        h = self.head(self.blocks(self.stem(x)))
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(h, 1), 1))


def build_network(arch: Architecture, space: ArchSpace | None = None, in_channels: int = 1,
                  num_classes: int = 10) -> SubNet:
    """A freshly initialised stand-alone network for `arch` (latency needs no trained weights)."""
    space = space or ArchSpace()
    space.check(arch)
    net = SubNet(arch, space, in_channels, num_classes)
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            _init_conv(m.weight)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)
    return net
