#!/usr/bin/python3
"""PyTorch 1.13 side of bench/step.sh: the same DiRA adversarial training step
as `go run ./bench/step -mode dira` (ResNet-50 U-Net query network, key network
without decoder, 4 ghost-BN groups with shuffle-BN, queue 65536, SGD, LSGAN
discriminator step with Adam), on random tensors, batch 8 at 224x224.
PRECISION=bf16 runs the forward passes and losses under
torch.autocast("cpu", dtype=torch.bfloat16), the backward passes and optimiser
steps outside it (PyTorch's AMP recipe); CHANNELS_LAST=1 also gives the
networks and the inputs the channels-last layout (PyTorch's CPU performance
recipe; dira's bf16 gives its weights that layout). `step.py flops` prints the FLOP count
of one step per image, counted from the layer shapes (see flops()).
Run with Debian's /usr/bin/python3 (python3-torch, python3-torchvision)."""
import os
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "model", "testdata"))
from reference import DiRAUNet, Discriminator, ghost, projection, ResNetEncoder  # noqa: E402


class KeyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = ResNetEncoder("resnet50")
        self.fc = projection(2048)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.encoder(x)[-1], 1), 1))


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "dira"
    threads = int(os.environ.get("THREADS", "2"))
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    if mode == "memory":
        return memory()
    if mode == "flops":
        return flops()
    precision = os.environ.get("PRECISION", "fp32")
    amp = dict(device_type="cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
    gflop = float(os.environ.get("FLOPS", "0"))
    n, size, groups, K, steps = 8, 224, 4, 65536, int(os.environ.get("STEPS", "5"))
    q_net, k_net, disc = DiRAUNet("resnet50"), KeyNet(), Discriminator()
    k_net.encoder.load_state_dict(q_net.backbone.encoder.state_dict())
    k_net.fc.load_state_dict(q_net.fc.state_dict())
    for p in k_net.parameters():
        p.requires_grad = False
    ghost(q_net, groups)
    ghost(k_net, groups)
    q_params = list(q_net.backbone.encoder.parameters()) + list(q_net.fc.parameters())
    k_params = list(k_net.encoder.parameters()) + list(k_net.fc.parameters())
    queue = F.normalize(torch.randn(128, K), dim=0)
    ptr = 0
    opt_g = torch.optim.SGD(q_net.parameters(), lr=0.03, momentum=0.9, weight_decay=1e-4)
    opt_d = torch.optim.Adam(disc.parameters(), lr=2e-4, betas=(0.5, 0.999))
    q_net.train(); k_net.train(); disc.train()
    channels_last = os.environ.get("CHANNELS_LAST") == "1"
    layout = ""
    if channels_last:
        layout = " channels-last"
        for net in (q_net, k_net, disc):
            net.to(memory_format=torch.channels_last)
    times = []
    for s in range(steps + 1):
        im_q, im_k, target = torch.rand(n, 3, size, size), torch.rand(n, 3, size, size), torch.rand(n, 1, size, size)
        if channels_last:
            im_q, im_k, target = (x.contiguous(memory_format=torch.channels_last) for x in (im_q, im_k, target))
        t0 = time.time()
        with torch.autocast(**amp):
            q, rec = q_net(im_q)
            q = F.normalize(q, dim=1)
            with torch.no_grad():
                for pq, pk in zip(q_params, k_params):
                    pk.mul_(0.999).add_(pq, alpha=0.001)
                perm = torch.randperm(n)
                k = F.normalize(k_net(im_k[perm]), dim=1)[torch.argsort(perm)]
            logits = torch.cat([(q * k).sum(1, keepdim=True), q @ queue.clone().detach()], 1) / 0.2
            nce = F.cross_entropy(logits, torch.zeros(n, dtype=torch.long))
            mse = F.mse_loss(rec, target)
            d_fake = disc(rec)
            adv = F.mse_loss(d_fake, torch.ones_like(d_fake))
            loss = nce + 10 * mse + 0.001 * adv
        opt_g.zero_grad()
        loss.backward()
        opt_g.step()
        opt_d.zero_grad()
        with torch.autocast(**amp):
            d_real, d_fake = disc(target), disc(rec.detach())
            l_d = 0.5 * (F.mse_loss(d_real, torch.ones_like(d_real)) + F.mse_loss(d_fake, torch.zeros_like(d_fake)))
        l_d.backward()
        opt_d.step()
        queue[:, ptr:ptr + n] = k.T
        ptr = (ptr + n) % K
        if s > 0:
            times.append(time.time() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    ips = n * len(times) / sum(times)
    print("torch dira-step %s%s resnet50 224 batch %d: %.3f img/s (mean of %d steps, %.2f s/step), peak RSS %d MB%s"
          % (precision, layout, n, ips, len(times), sum(times) / len(times), peak,
             ", %.0f GFLOP/s" % (ips * gflop) if gflop > 0 else ""))


def flops():
    """FLOPs of one DiRA step per image, counted from the shapes of the
    convolutions and linear layers (forward hooks on one 224x224 image):
    multiply-accumulates = output elements x (input channels / groups) x
    kernel area (x input features for a linear layer), 2 FLOPs each. A
    network that is trained costs its forward 3 times (forward, gradient of
    the input, gradient of the weights); the key network runs forward only.
    Per step: the query U-Net with its projection head (x3), the key encoder
    and head (x1), the discriminator on the restoration for the generator's
    adversarial term (x3: its weight gradients are computed, then zeroed) and
    on the real and the fake image for its own step (2 x 3), and the InfoNCE
    product q @ queue (128 x 65536, forward and the gradient of q). Batch
    norm, activations, pooling, upsampling, losses and optimiser updates are
    not counted (they are memory-bound and small in FLOPs). The input
    gradients that autograd skips (the query U-Net's first convolution, the
    discriminator's first one in its own step) are counted: an upper bound by
    about 0.4%."""
    macs = {}

    def hook(name):
        def f(m, inp, out):
            if isinstance(m, nn.Conv2d):
                k = m.kernel_size[0] * m.kernel_size[1] * m.in_channels // m.groups
            else:
                k = m.in_features
            macs[name] = macs.get(name, 0) + out.numel() * k
        return f

    q_net, k_net, disc = DiRAUNet("resnet50"), KeyNet(), Discriminator()
    for name, net in (("query", q_net), ("key", k_net), ("disc", disc)):
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.register_forward_hook(hook(name))
    with torch.no_grad():
        _, rec = q_net(torch.rand(1, 3, 224, 224))
        k_net(torch.rand(1, 3, 224, 224))
        disc(rec)
    queue = 128 * 65536
    total = 2 * (3 * macs["query"] + macs["key"] + 3 * macs["disc"] + 2 * 3 * macs["disc"] + 2 * queue)
    print("flops per image: %.2f GFLOP (forward MACs: query U-Net+head %.2f G, key encoder+head %.2f G, "
          "discriminator %.2f G, queue product %.3f G)"
          % (total / 1e9, macs["query"] / 1e9, macs["key"] / 1e9, macs["disc"] / 1e9, queue / 1e9))
    print("%.4f" % (total / 1e9))


def memory():
    from reference import Unet
    u = Unet("resnet18")
    ghost(u, 2)
    opt = torch.optim.SGD(u.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    x, target = torch.rand(8, 3, 64, 64), torch.rand(8, 1, 64, 64)
    rss = []
    t0 = time.time()
    for s in range(1, 101):
        opt.zero_grad()
        F.mse_loss(u(x), target).backward()
        opt.step()
        if s % 10 == 0:
            with open("/proc/self/statm") as f:
                rss.append("%d:%d" % (s, int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // (1 << 20)))
    print("torch memory resnet18-unet 64x64 batch 8: %.1f img/s; RSS MB by step %s" % (800 / (time.time() - t0), " ".join(rss)))


if __name__ == "__main__":
    main()
