#!/usr/bin/python3
"""Fixtures of every official DiRA checkpoint layout, for package transfer's
tests (Debian python3-torch 1.13 / python3-torchvision 0.14: run with
/usr/bin/python3). Random weights, official key names (dira-spec 2.3, 5.4).

    make_fixtures.py OUTDIR ARCH SIZE QUEUE [all|checkpoint]

ARCH is a torchvision ResNet (resnet18 keeps the files small; the official
files use resnet50). The U-Net decoder is (64,32,16,16,8) for resnet18 and
smp's default (256,128,64,32,16) otherwise; the projection head is the
official --mlp head (Linear(C,C), ReLU, Linear(C,128)). Files written:

  checkpoint.pth         modes dir/dira: {'epoch': 3, 'arch', 'state_dict':
                         DDP keys module.queue, module.queue_ptr,
                         module.encoder_q.backbone.*, module.encoder_q.fc.*,
                         module.encoder_k.* (with decoder and head),
                         'optimizer': SGD state after one step, 'best_loss'}
  checkpoint_legacy.pth  the same object in torch's legacy (non-zip) format
  checkpoint_cuda.pth    the same object with every storage tagged 'cuda:0', as
                         the official runs (4 GPUs) saved it
  unet.pth               bare encoder_q.backbone.state_dict() (smp Unet keys);
                         best_checkpoint.pth has the same layout
  di_checkpoint.pth      mode di: {'epoch': 2, 'state_dict': module.queue,
                         module.encoder_q.<torchvision>, module.encoder_k.*}
  resnet50.pth           mode di: bare encoder_q.state_dict() (torchvision
                         keys, fc.0/fc.2), whatever ARCH is (the official name)
  D_checkpoint.pth       {'epoch': 3, 'arch', 'state_dict': module.model.*,
                         'optimizer': Adam state after one step}
  torchvision.pth        a plain torchvision resnet state_dict (fc: 1000 classes)
  smp_classes2.pth       an smp Unet with a 2-class head (does not fit 1 class)
  torchscript.pt         a TorchScript archive (not a torch.save file)
  expected.npz           inputs x [2,3,SIZE,SIZE], img [2,1,SIZE,SIZE] and the
                         eval-mode outputs of each network on them, the queue

With "checkpoint" only checkpoint.pth and expected.npz are written.
"""
import importlib.util
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

_here = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location(
    "reference", os.path.join(_here, "..", "..", "model", "testdata", "reference.py"))
ref = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ref)


class DiRAUNet(nn.Module):
    """DiRA_models.DiRA_UNet with --mlp and the given decoder widths."""

    def __init__(self, arch, dec):
        super().__init__()
        self.backbone = ref.Unet(arch, dec)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = ref.projection(self.backbone.encoder.out_channels[-1])

    def embed(self, x):
        return self.fc(torch.flatten(self.avgpool(self.backbone.encoder(x)[-1]), 1))

    def forward(self, x):
        f = self.backbone.encoder(x)
        rec = self.backbone.segmentation_head(self.backbone.decoder(*f))
        return self.fc(torch.flatten(self.avgpool(f[-1]), 1)), rec


class MoCoWrapper(nn.Module):
    """The state_dict layout of DiRA_MoCo / MoCo: own buffers queue and
    queue_ptr, then encoder_q and encoder_k."""

    def __init__(self, q, k, dim, K):
        super().__init__()
        self.encoder_q, self.encoder_k = q, k
        self.register_buffer("queue", F.normalize(torch.randn(dim, K), dim=0))
        self.register_buffer("queue_ptr", torch.tensor([K // 4], dtype=torch.long))


class DDP(nn.Module):
    """Stands in for DistributedDataParallel: its state_dict keys get 'module.'."""

    def __init__(self, m):
        super().__init__()
        self.module = m


def tv_resnet(arch, num_classes):
    return getattr(torchvision.models, arch)(num_classes=num_classes)


def di_encoder(arch):
    """Mode di's encoder: torchvision resnet(num_classes=128) with the MLP swap."""
    r = tv_resnet(arch, 128)
    c = r.fc.weight.shape[1]
    r.fc = nn.Sequential(nn.Linear(c, c), nn.ReLU(), r.fc)
    return r


def calibrate_bn(model, size, seed):
    """reference.calibrate for any module with BatchNorm (torchvision resnets
    take a 3-channel image and return logits; only the BN side effects count)."""
    ref.calibrate(model, size, seed)


def perturb(module, seed):
    """Make a key network differ from its query twin, so that the tests can
    tell which one was loaded where."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=g))


def sgd_step(params, loss):
    opt = torch.optim.SGD([p for p in params if p.requires_grad], lr=0.03, momentum=0.9, weight_decay=1e-4)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return opt


_as_cuda = [False]


def _cuda_tagger(storage):
    return "cuda:0" if _as_cuda[0] else None


torch.serialization.register_package(1, _cuda_tagger, lambda obj, location: None)


def save_as_cuda(obj, path):
    """torch.save with each storage's location recorded as 'cuda:0' (what a
    checkpoint saved from GPU tensors holds), without a GPU."""
    _as_cuda[0] = True
    try:
        torch.save(obj, path)
    finally:
        _as_cuda[0] = False


def features(resnet, x):
    """torchvision resnet forward up to the pooled features (before fc)."""
    r = resnet
    h = r.maxpool(r.relu(r.bn1(r.conv1(x))))
    h = r.layer4(r.layer3(r.layer2(r.layer1(h))))
    return torch.flatten(r.avgpool(h), 1)


def main():
    out, arch, size, K = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    only = sys.argv[5] if len(sys.argv) > 5 else "all"
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(2)
    torch.manual_seed(0)
    dec = (64, 32, 16, 16, 8) if arch == "resnet18" else (256, 128, 64, 32, 16)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, size, size, generator=g)
    img = torch.rand(2, 1, size, size, generator=g)
    exp = {"x": x, "img": img}

    # Modes dir/dira: checkpoint.pth and unet.pth.
    q, k = DiRAUNet(arch, dec), DiRAUNet(arch, dec)
    calibrate_bn(q.backbone, size, 2)
    k.load_state_dict(q.state_dict())
    perturb(k, 3)
    calibrate_bn(k.backbone, size, 4)
    for p in k.parameters():
        p.requires_grad = False
    moco = DDP(MoCoWrapper(q, k, 128, K))
    q.train()
    emb, rec = q(x)
    opt = sgd_step(moco.parameters(), emb.pow(2).mean() + rec.mean())
    for m in q.modules():  # the step's forward moved the statistics; fix the counters
        if isinstance(m, nn.BatchNorm2d):
            m.num_batches_tracked.fill_(7)
    q.eval()
    k.eval()
    with torch.no_grad():
        exp["q_mask"] = q.backbone(x)
        exp["q_features"] = torch.flatten(q.avgpool(q.backbone.encoder(x)[-1]), 1)
        exp["q_proj"] = q.embed(x)
        exp["k_proj"] = k.embed(x)
    exp["queue"] = moco.module.queue
    exp["queue_ptr"] = moco.module.queue_ptr
    ckpt = {"epoch": 3, "arch": arch, "state_dict": moco.state_dict(), "optimizer": opt.state_dict(),
            "best_loss": torch.tensor(0.75)}
    torch.save(ckpt, os.path.join(out, "checkpoint.pth"))
    if only == "checkpoint":
        np.savez(os.path.join(out, "expected.npz"), **{n: v.detach().numpy() for n, v in exp.items()})
        return
    torch.save(ckpt, os.path.join(out, "checkpoint_legacy.pth"), _use_new_zipfile_serialization=False)
    save_as_cuda(ckpt, os.path.join(out, "checkpoint_cuda.pth"))
    torch.save(q.backbone.state_dict(), os.path.join(out, "unet.pth"))

    # Mode di: checkpoint.pth and resnet50.pth.
    dq, dk = di_encoder(arch), di_encoder(arch)
    calibrate_bn(dq, size, 5)
    dk.load_state_dict(dq.state_dict())
    perturb(dk, 6)
    dq.eval()
    dk.eval()
    with torch.no_grad():
        exp["di_q_proj"] = dq(x)
        exp["di_k_proj"] = dk(x)
    di = DDP(MoCoWrapper(dq, dk, 128, K))
    exp["di_queue"] = di.module.queue
    torch.save({"epoch": 2, "arch": arch, "state_dict": di.state_dict(), "best_loss": 1.5},
               os.path.join(out, "di_checkpoint.pth"))
    torch.save(dq.state_dict(), os.path.join(out, "resnet50.pth"))

    # Mode dira: D_checkpoint.pth.
    d = ref.Discriminator()
    with torch.no_grad():
        for m in d.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.normal_(0, 0.02, generator=g)
    dd = DDP(d)
    adam = torch.optim.Adam(dd.parameters(), lr=2e-4, betas=(0.5, 0.999))
    adam.zero_grad()
    d(img).pow(2).mean().backward()
    adam.step()
    with torch.no_grad():
        exp["disc"] = d(img)
    torch.save({"epoch": 3, "arch": arch, "state_dict": dd.state_dict(), "optimizer": adam.state_dict()},
               os.path.join(out, "D_checkpoint.pth"))

    # Plain torchvision classifier and an smp Unet with another head.
    tv = tv_resnet(arch, 1000)
    calibrate_bn(tv, size, 7)
    tv.eval()
    with torch.no_grad():
        exp["tv_features"] = features(tv, x)
    torch.save(tv.state_dict(), os.path.join(out, "torchvision.pth"))
    torch.save(ref.Unet(arch, dec, classes=2).state_dict(), os.path.join(out, "smp_classes2.pth"))

    torch.jit.save(torch.jit.script(nn.Linear(2, 2)), os.path.join(out, "torchscript.pt"))
    np.savez(os.path.join(out, "expected.npz"), **{n: v.detach().numpy() for n, v in exp.items()})


if __name__ == "__main__":
    main()
