#!/usr/bin/python3
"""PyTorch reference for package model's tests (Debian python3-torch 1.13,
python3-torchvision 0.14; run with /usr/bin/python3).

The U-Net mirrors segmentation_models_pytorch 0.1.3's Unet (which Debian does
not package): torchvision's ResNet with avgpool and fc deleted as the encoder,
UnetDecoder with center=Identity and no attention, SegmentationHead
Conv3x3 + activation. Module attribute names are smp's, so state_dict keys are
the ones DiRA checkpoints hold. The MoCo forward is DiRA_MoCo.forward for one
process (no all_gather; shuffle is the identity with one ghost group).

Modes:
  keys OUTDIR                 write the *_keys.golden files (name shape per line)
  forward OUTDIR ARCH SIZE N  weights.npz, input.npz, outputs.npz for the forward tests
  moco OUTDIR                 one MoCo step on a fixed batch (ResNet-18 U-Net)
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision


class ResNetEncoder(torchvision.models.ResNet):
    """smp's ResNetEncoder: torchvision ResNet minus fc/avgpool, six outputs."""

    def __init__(self, arch):
        block, layers = {
            "resnet18": (torchvision.models.resnet.BasicBlock, [2, 2, 2, 2]),
            "resnet34": (torchvision.models.resnet.BasicBlock, [3, 4, 6, 3]),
            "resnet50": (torchvision.models.resnet.Bottleneck, [3, 4, 6, 3]),
            "resnet101": (torchvision.models.resnet.Bottleneck, [3, 4, 23, 3]),
        }[arch]
        super().__init__(block, layers)
        del self.fc
        del self.avgpool
        self.out_channels = (3, 64, 64, 128, 256, 512) if block is torchvision.models.resnet.BasicBlock \
            else (3, 64, 256, 512, 1024, 2048)

    def forward(self, x):
        f0 = x
        f1 = self.relu(self.bn1(self.conv1(x)))
        f2 = self.layer1(self.maxpool(f1))
        f3 = self.layer2(f2)
        f4 = self.layer3(f3)
        f5 = self.layer4(f4)
        return [f0, f1, f2, f3, f4, f5]


class Conv2dReLU(nn.Sequential):
    def __init__(self, cin, cout):
        super().__init__(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class DecoderBlock(nn.Module):
    def __init__(self, cin, skip, cout):
        super().__init__()
        self.conv1 = Conv2dReLU(cin + skip, cout)
        self.attention1 = nn.Identity()
        self.conv2 = Conv2dReLU(cout, cout)
        self.attention2 = nn.Identity()

    def forward(self, x, skip=None):
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.attention2(self.conv2(self.conv1(self.attention1(x))))


class UnetDecoder(nn.Module):
    def __init__(self, enc_channels, dec_channels=(256, 128, 64, 32, 16)):
        super().__init__()
        enc = list(enc_channels[1:])[::-1]
        head = enc[0]
        ins = [head] + list(dec_channels[:-1])
        skips = list(enc[1:]) + [0]
        self.center = nn.Identity()
        self.blocks = nn.ModuleList([DecoderBlock(i, s, o) for i, s, o in zip(ins, skips, dec_channels)])

    def forward(self, *features):
        features = features[1:][::-1]
        x = self.center(features[0])
        skips = features[1:]
        for i, b in enumerate(self.blocks):
            x = b(x, skips[i] if i < len(skips) else None)
        return x


class Unet(nn.Module):
    def __init__(self, arch, dec_channels=(256, 128, 64, 32, 16), classes=1):
        super().__init__()
        self.encoder = ResNetEncoder(arch)
        self.decoder = UnetDecoder(self.encoder.out_channels, dec_channels)
        self.segmentation_head = nn.Sequential(nn.Conv2d(dec_channels[-1], classes, 3, padding=1), nn.Identity(), nn.Sigmoid())

    def forward(self, x):
        return self.segmentation_head(self.decoder(*self.encoder(x)))


def projection(cin, hidden=None, out=128):
    hidden = hidden or cin
    return nn.Sequential(nn.Linear(cin, hidden), nn.ReLU(), nn.Linear(hidden, out))


class Discriminator(nn.Module):
    """DiRA_models.Discriminator(channels=1)."""

    def __init__(self, channels=1):
        super().__init__()

        def block(cin, cout, stride, norm):
            layers = [nn.Conv2d(cin, cout, 3, stride, 1)]
            if norm:
                layers.append(nn.InstanceNorm2d(cout))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            return layers

        layers = []
        cin = channels
        for cout, stride, norm in [(64, 2, False), (128, 2, True), (256, 2, True), (512, 1, True)]:
            layers += block(cin, cout, stride, norm)
            cin = cout
        layers.append(nn.Conv2d(cin, 1, 3, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class DiRAUNet(nn.Module):
    """DiRA_models.DiRA_UNet with --mlp."""

    def __init__(self, arch):
        super().__init__()
        self.backbone = Unet(arch)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = projection(self.backbone.encoder.out_channels[-1])

    def forward(self, x):
        f = self.backbone.encoder(x)
        rec = self.backbone.segmentation_head(self.backbone.decoder(*f))
        return self.fc(torch.flatten(self.avgpool(f[-1]), 1)), rec


class GhostBN(nn.Module):
    """Reference for model.Mode.Groups: split the batch into g groups, each
    normalised on its own; only group 0 updates the running statistics."""

    def __init__(self, bn, g):
        super().__init__()
        self.bn, self.g = bn, g

    def forward(self, x):
        chunks = x.chunk(self.g)
        outs = [F.batch_norm(chunks[0], self.bn.running_mean, self.bn.running_var, self.bn.weight, self.bn.bias,
                             True, self.bn.momentum, self.bn.eps)]
        for c in chunks[1:]:
            outs.append(F.batch_norm(c, None, None, self.bn.weight, self.bn.bias, True, 0.0, self.bn.eps))
        self.bn.num_batches_tracked.add_(1)
        return torch.cat(outs)


def ghost(module, g):
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, GhostBN(child, g))
        else:
            ghost(child, g)


def calibrate(model, size, seed):
    """Give BN layers realistic running statistics and non-trivial affine
    parameters, so eval-mode outputs test them."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = 1.0
            with torch.no_grad():
                m.weight.copy_(1 + 0.1 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
    model.train()
    with torch.no_grad():
        model(torch.rand(4, 3, size, size, generator=g))
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = 0.1
            m.num_batches_tracked.fill_(7)


def state(module, prefix=""):
    return {prefix + k: v.detach().clone().numpy() for k, v in module.state_dict().items()}


def write_keys(path, module):
    with open(path, "w") as f:
        for k, v in module.state_dict().items():
            f.write("%s %s\n" % (k, list(v.shape)))


def main():
    torch.set_num_threads(2)
    mode, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    if mode == "keys":
        write_keys(os.path.join(out, "unet_resnet18_keys.golden"), Unet("resnet18"))
        write_keys(os.path.join(out, "unet_resnet50_keys.golden"), Unet("resnet50"))
        write_keys(os.path.join(out, "projection_resnet50_keys.golden"), nn.ModuleDict({"fc": projection(2048)}))
        write_keys(os.path.join(out, "discriminator_keys.golden"), Discriminator())
        return

    if mode == "forward":
        arch, size, n = sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
        torch.manual_seed(1)
        unet, disc = Unet(arch), Discriminator()
        proj = nn.ModuleDict({"fc": projection(unet.encoder.out_channels[-1])})
        calibrate(unet, size, 2)
        x = torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(3))
        img = torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(4))
        weights = state(unet)
        weights.update(state(disc))
        weights.update(state(proj))
        outputs = {}
        with torch.no_grad():
            unet.eval()
            outputs["eval_mask"] = unet(x)
            outputs["eval_features"] = torch.flatten(F.adaptive_avg_pool2d(unet.encoder(x)[-1], 1), 1)
            outputs["eval_projection"] = proj["fc"](outputs["eval_features"])
            outputs["disc"] = disc(img)
            unet.train()
            outputs["train_mask"] = unet(x)
            for k, v in unet.state_dict().items():
                if "running" in k or "num_batches" in k:
                    outputs["after_train/" + k] = v.clone()
            if n % 2 == 0:
                ghost(unet, 2)
                outputs["train_mask_groups2"] = unet(x)
                for k, v in unet.state_dict().items():
                    if "running_mean" in k:
                        outputs["after_groups2/" + k.replace(".bn.", ".")] = v.clone()
        np.savez(os.path.join(out, "weights.npz"), **weights)
        np.savez(os.path.join(out, "input.npz"), x=x.numpy(), img=img.numpy())
        np.savez(os.path.join(out, "outputs.npz"), **{k: v.numpy() for k, v in outputs.items()})
        return

    if mode == "moco":
        torch.manual_seed(5)
        q_net, k_net = DiRAUNet("resnet18"), DiRAUNet("resnet18")
        calibrate(q_net.backbone, 64, 6)
        # The key network starts as a perturbed copy so the momentum update shows.
        k_net.load_state_dict(q_net.state_dict())
        with torch.no_grad():
            for p in k_net.parameters():
                p.add_(0.01 * torch.randn_like(p))
        K, dim, T, m, n = 64, 128, 0.2, 0.99, 4
        queue = F.normalize(torch.randn(dim, K), dim=0)
        ptr = 8
        weights = {"queue": queue.numpy().copy(), "queue_ptr": np.array([ptr], dtype=np.int64)}
        weights.update(state(q_net, "encoder_q."))
        weights.update(state(k_net, "encoder_k."))
        g = torch.Generator().manual_seed(7)
        im_q, im_k = torch.rand(n, 3, 64, 64, generator=g), torch.rand(n, 3, 64, 64, generator=g)
        q_net.train()
        k_net.train()
        q, rec = q_net(im_q)
        q = F.normalize(q, dim=1)
        with torch.no_grad():
            for pq, pk in zip(q_net.parameters(), k_net.parameters()):
                pk.data = pk.data * m + pq.data * (1.0 - m)
            k, _ = k_net(im_k)
            k = F.normalize(k, dim=1)
        l_pos = torch.einsum("nc,nc->n", [q, k]).unsqueeze(-1)
        l_neg = torch.einsum("nc,ck->nk", [q, queue.clone().detach()])
        logits = torch.cat([l_pos, l_neg], dim=1) / T
        loss = F.cross_entropy(logits, torch.zeros(n, dtype=torch.long))
        queue[:, ptr:ptr + n] = k.T
        outs = {"logits": logits.detach(), "loss": loss.detach().reshape(1), "rec": rec.detach(),
                "queue_after": queue, "ptr_after": torch.tensor([(ptr + n) % K]),
                "k_conv1_after": k_net.backbone.encoder.conv1.weight.detach(),
                "k_fc2_after": k_net.fc[2].weight.detach()}
        np.savez(os.path.join(out, "weights.npz"), **weights)
        np.savez(os.path.join(out, "input.npz"), im_q=im_q.numpy(), im_k=im_k.numpy())
        np.savez(os.path.join(out, "outputs.npz"), **{k: v.numpy() for k, v in outs.items()})
        return
    sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main()
