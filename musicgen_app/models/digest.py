"""A checkpoint's identity: the SHA-256 of its tensors (names, shapes and bytes), independent of
the file's layout, so a re-saved file with the same weights has the same digest."""

from __future__ import annotations

import hashlib

import torch


def weights_digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()
