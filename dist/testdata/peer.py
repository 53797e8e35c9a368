"""Rank 1 of a 2-process gloo group whose rank 0 is dist's Go test
(TestPythonPeer). Run with /usr/bin/python3 (Debian python3-torch 1.13.1):

    peer.py PORT TIMEOUT_SECONDS

It joins through torch.distributed.init_process_group with a tcp:// store
that rank 0 hosts, runs the same collectives in the same order as the Go side,
and prints one JSON line with its inputs and results, so that the Go test can
check both ranks got bit-identical results.
"""
import json
import sys
from datetime import timedelta

import torch
import torch.distributed as dist


def main():
    port, timeout = int(sys.argv[1]), float(sys.argv[2])
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=1, world_size=2,
                            timeout=timedelta(seconds=timeout))
    out = {}

    x = torch.arange(6, dtype=torch.float32) * 0.1 + 1.0 / 3.0
    out["allreduce_input"] = x.tolist()
    dist.all_reduce(x)
    out["allreduce"] = x.tolist()

    y = (torch.arange(6, dtype=torch.float32).reshape(2, 3) + 0.7) / 7.0
    out["allgather_input"] = y.flatten().tolist()
    parts = [torch.empty_like(y) for _ in range(2)]
    dist.all_gather(parts, y)
    out["allgather"] = torch.cat(parts, 0).flatten().tolist()

    perm = torch.zeros(5, dtype=torch.int64)
    dist.broadcast(perm, src=0)
    out["broadcast"] = perm.tolist()

    dist.barrier()
    dist.destroy_process_group()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
