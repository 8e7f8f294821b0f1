"""PyTorch definitions of marginface's backbones, shared by the scripts that need them.

The networks are written for marginface after the structure of insightface's arcface_torch
backbones (iresnet.py, mobilefacenet.py) and the PyTorch SphereFace-20 port, with the same module
attribute names, so their state_dict keys are the names the C++ modules use and an insightface
`iresnet50` state_dict loads into `IResNet(IRESNET_LAYERS[50])` as it is. They add a channel
width multiplier, a configurable input size and depth, and an optional squeeze-excitation unit
(marginface's IR-SE layout).

Also here: build_backbone() by registry name (as `model.backbone` in a config), the sensible
random initialisation used by the fixtures, and the reference image pipeline (OpenCV BGR → RGB,
(x − 127.5) / 127.5, NCHW) with flip test-time augmentation, as in src/eval/embed.cpp.

Needs Debian's python3-torch (run with /usr/bin/python3); load_faces() also python3-opencv.
"""

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


def scaled(base, width):
    """Channels after a width multiplier, rounded half away from zero like the C++ llround."""
    return max(1, int(math.floor(base * width + 0.5)))


def conv_out(size, kernel=3, stride=2, pad=1):
    return (size + 2 * pad - kernel) // stride + 1


# ---------------------------------------------------------------------------------------------
# IResNet / IR-SE (insightface arcface_torch backbones/iresnet.py structure)


class SqueezeExcite(nn.Module):
    def __init__(self, channels, reduction):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=True)

    def forward(self, x):
        s = x.mean(dim=(2, 3), keepdim=True)
        s = torch.sigmoid(self.fc2(torch.relu(self.fc1(s))))
        return x * s


class IBasicBlock(nn.Module):
    def __init__(self, inplanes, planes, stride, se_reduction):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=1e-5)
        self.conv1 = nn.Conv2d(inplanes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-5)
        self.prelu = nn.PReLU(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes, eps=1e-5)
        self.se = SqueezeExcite(planes, se_reduction) if se_reduction > 0 else None
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride, bias=False),
                nn.BatchNorm2d(planes, eps=1e-5))

    def forward(self, x):
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        if self.se is not None:
            out = self.se(out)
        identity = self.downsample(x) if self.downsample is not None else x
        return out + identity


class IResNet(nn.Module):
    def __init__(self, layers, width=1.0, num_features=512, dropout=0.0, se_reduction=0,
                 input_size=(112, 112)):
        super().__init__()
        stem = scaled(64, width)
        self.conv1 = nn.Conv2d(3, stem, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem, eps=1e-5)
        self.prelu = nn.PReLU(stem)
        inplanes, (h, w) = stem, input_size
        for s, blocks in enumerate(layers):
            planes = scaled(64 << s, width)
            stage = [IBasicBlock(inplanes, planes, 2, se_reduction)]
            stage += [IBasicBlock(planes, planes, 1, se_reduction) for _ in range(1, blocks)]
            setattr(self, "layer%d" % (s + 1), nn.Sequential(*stage))
            inplanes, h, w = planes, conv_out(h), conv_out(w)
        self.bn2 = nn.BatchNorm2d(inplanes, eps=1e-5)
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(inplanes * h * w, num_features)
        self.features = nn.BatchNorm1d(num_features, eps=1e-5)
        nn.init.constant_(self.features.weight, 1.0)
        self.features.weight.requires_grad = False

    def forward(self, x):
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.bn2(x), 1)
        return self.features(self.fc(self.dropout(x)))


# ---------------------------------------------------------------------------------------------
# MobileFaceNet (insightface arcface_torch backbones/mobilefacenet.py structure, `mbf`)


class ConvBlock(nn.Module):
    def __init__(self, in_c, out_c, kernel=1, stride=1, padding=0, groups=1, activation=True):
        super().__init__()
        mods = [nn.Conv2d(in_c, out_c, kernel, stride, padding, groups=groups, bias=False),
                nn.BatchNorm2d(out_c)]
        if activation:
            mods.append(nn.PReLU(out_c))
        self.layers = nn.Sequential(*mods)

    def forward(self, x):
        return self.layers(x)


class DepthWise(nn.Module):
    def __init__(self, in_c, out_c, residual, stride, expansion):
        super().__init__()
        self.residual = residual
        self.layers = nn.Sequential(
            ConvBlock(in_c, expansion),
            ConvBlock(expansion, expansion, 3, stride, 1, groups=expansion),
            ConvBlock(expansion, out_c, activation=False))

    def forward(self, x):
        y = self.layers(x)
        return x + y if self.residual else y


class Residual(nn.Module):
    def __init__(self, c, num_block, expansion):
        super().__init__()
        self.layers = nn.Sequential(
            *[DepthWise(c, c, True, 1, expansion) for _ in range(num_block)])

    def forward(self, x):
        return self.layers(x)


class Flatten(nn.Module):
    def forward(self, x):
        return x.view(x.size(0), -1)


class GDC(nn.Module):
    def __init__(self, channels, kernel, embedding_size):
        super().__init__()
        self.layers = nn.Sequential(
            ConvBlock(channels, channels, kernel, 1, 0, groups=channels, activation=False),
            Flatten(),
            nn.Linear(channels, embedding_size, bias=False),
            nn.BatchNorm1d(embedding_size))

    def forward(self, x):
        return self.layers(x)


class MobileFaceNet(nn.Module):
    def __init__(self, num_features=512, blocks=(1, 4, 6, 2), scale=2, width=1.0, input_size=112):
        super().__init__()
        ch = lambda base: scaled(base, width)
        c64, c128, c512 = ch(64 * scale), ch(128 * scale), ch(512)
        self.layers = nn.ModuleList()
        self.layers.append(ConvBlock(3, c64, 3, 2, 1))
        if blocks[0] == 1:
            self.layers.append(ConvBlock(c64, c64, 3, 1, 1, groups=ch(64)))
        else:
            self.layers.append(Residual(c64, blocks[0], ch(128)))
        self.layers.extend([
            DepthWise(c64, c64, False, 2, ch(128)),
            Residual(c64, blocks[1], ch(128)),
            DepthWise(c64, c128, False, 2, ch(256)),
            Residual(c128, blocks[2], ch(256)),
            DepthWise(c128, c128, False, 2, ch(512)),
            Residual(c128, blocks[3], ch(256)),
        ])
        self.conv_sep = ConvBlock(c128, c512)
        final = input_size
        for _ in range(4):
            final = conv_out(final)
        self.features = GDC(c512, final, num_features)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return self.features(self.conv_sep(x))


# ---------------------------------------------------------------------------------------------
# SphereFace-20 (names of the PyTorch port `sphere20a`: conv1_1, relu1_1, …, fc5)


class SphereNet(nn.Module):
    def __init__(self, units=(1, 2, 4, 1), width=1.0, num_features=512, input_size=(112, 96)):
        super().__init__()
        self.units = units
        cin, (h, w) = 3, input_size
        for s, n in enumerate(units):
            cout = scaled(64 << s, width)
            for j in range(1, 2 * n + 2):
                setattr(self, "conv%d_%d" % (s + 1, j),
                        nn.Conv2d(cin if j == 1 else cout, cout, 3, 2 if j == 1 else 1, 1))
                setattr(self, "relu%d_%d" % (s + 1, j), nn.PReLU(cout))
            cin, h, w = cout, conv_out(h), conv_out(w)
        self.fc5 = nn.Linear(cin * h * w, num_features)

    def unit(self, s, j, x):
        return getattr(self, "relu%d_%d" % (s, j))(getattr(self, "conv%d_%d" % (s, j))(x))

    def forward(self, x):
        for s, n in enumerate(self.units, start=1):
            x = self.unit(s, 1, x)
            for k in range(1, n + 1):
                x = x + self.unit(s, 2 * k + 1, self.unit(s, 2 * k, x))
        return self.fc5(x.view(x.size(0), -1))


# ---------------------------------------------------------------------------------------------


def sensible_init(model, gen):
    """He-scaled weights and random affine parameters, so every gradient is exercised."""
    def rand(shape, lo, hi):
        return torch.rand(shape, generator=gen) * (hi - lo) + lo

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(rand(m.bias.shape, -0.1, 0.1))
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                if m.weight.requires_grad:
                    m.weight.copy_(rand(m.weight.shape, 0.5, 1.5))
                m.bias.copy_(rand(m.bias.shape, -0.2, 0.2))
            elif isinstance(m, nn.PReLU):
                m.weight.copy_(rand(m.weight.shape, 0.1, 0.4))


def warm_up_running_stats(model, input_shape, gen, passes=4):
    """Running statistics as the average over a few train-mode passes (momentum None:
    cumulative)."""
    bns = [m for m in model.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    for m in bns:
        m.momentum = None
        m.reset_running_stats()
    model.train()
    with torch.no_grad():
        for _ in range(passes):
            model(torch.rand(input_shape, generator=gen) * 2 - 1)
    for m in bns:
        m.momentum = 0.1
        m.num_batches_tracked.zero_()


IRESNET_LAYERS = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 14, 3], 100: [3, 13, 30, 3]}

BACKBONES = (["ir%d" % d for d in IRESNET_LAYERS] + ["ir_se%d" % d for d in IRESNET_LAYERS] +
             ["mobilefacenet", "sphere20"])


def build_backbone(name, width=1.0, embedding_size=512):
    """The network marginface builds for registry name `name`, and its input size (H, W)."""
    if name.startswith("ir_se") or name.startswith("ir"):
        se = name.startswith("ir_se")
        depth = name[len("ir_se" if se else "ir"):]
        if depth.isdigit() and int(depth) in IRESNET_LAYERS:
            return IResNet(IRESNET_LAYERS[int(depth)], width, embedding_size,
                           se_reduction=16 if se else 0), (112, 112)
    if name == "mobilefacenet":
        return MobileFaceNet(embedding_size, width=width), (112, 112)
    if name == "sphere20":
        return SphereNet(width=width, num_features=embedding_size), (112, 96)
    raise ValueError("unknown backbone '%s' (known: %s)" % (name, ", ".join(BACKBONES)))


def load_face(path, height, width):
    """One aligned face as (3, H, W) float32: BGR → RGB, (x − 127.5) / 127.5. A larger image
    keeps its centre when the excess is even (112×112 → 112×96), as marginface does."""
    import cv2  # python3-opencv; imported here so the models work without it
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError("cannot read image '%s'" % path)
    h, w = img.shape[:2]
    if (h, w) != (height, width):
        dy, dx = h - height, w - width
        if dy < 0 or dx < 0 or dy % 2 or dx % 2:
            raise ValueError("%s: image is %dx%d, expected %dx%d" % (path, h, w, height, width))
        img = img[dy // 2:dy // 2 + height, dx // 2:dx // 2 + width]
    rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    x = (rgb.astype(np.float32) - np.float32(127.5)) / np.float32(127.5)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


def load_faces(paths, height, width):
    return torch.stack([load_face(p, height, width) for p in paths])


@torch.no_grad()
def embed(model, images, flip="sum", batch=32):
    """L2-normalised embeddings of an (N, 3, H, W) batch in eval mode. flip: off (f(x)), sum
    (f(x) + f(mirror x)), concat ([f(x)/‖f(x)‖, f(mirror x)/‖f(mirror x)‖], normalised)."""
    if flip not in ("off", "sum", "concat"):
        raise ValueError("flip must be off, sum or concat, got '%s'" % flip)
    was_training = model.training
    model.eval()
    rows = []
    for i in range(0, images.shape[0], batch):
        x = images[i:i + batch]
        f = model(x)
        if flip == "sum":
            f = f + model(torch.flip(x, dims=[3]))
        elif flip == "concat":
            g = model(torch.flip(x, dims=[3]))
            f = torch.cat([F.normalize(f, dim=1), F.normalize(g, dim=1)], dim=1)
        rows.append(F.normalize(f, dim=1))
    model.train(was_training)
    return torch.cat(rows)


def random_backbone(name, width, embedding_size, seed, passes=4, batch=8):
    """A backbone with He-scaled random weights, random affine parameters and running statistics
    from a few train-mode passes over random images, in eval mode: a stand-in for trained weights
    whose eval-mode activations stay well scaled."""
    model, (h, w) = build_backbone(name, width, embedding_size)
    gen = torch.Generator().manual_seed(seed)
    sensible_init(model, gen)
    warm_up_running_stats(model, (batch, 3, h, w), gen, passes)
    return model.eval()
