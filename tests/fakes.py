"""Stand-ins for the trackers that are not on the package registry (tapnet's TAPIR), with the
real output dictionary, shared by the tests that run preprocessing with ``tracker=tapir``."""

from __future__ import annotations

import sys
import types

import torch

FAKE_SHIFT = (3.0, -2.0)  # what the fakes add to every query, in the model's pixels


class FakeTAPIR(torch.nn.Module):
    """Stands in for ``tapnet.torch.tapir_model.TAPIR``: every track is its query point moved by
    FAKE_SHIFT; occluded (logit +20) before its query frame, visible (-20) from it on."""

    instances: list[FakeTAPIR] = []

    def __init__(self, **kwargs):
        super().__init__()
        self.kwargs = kwargs
        self.calls: list[tuple[tuple[int, ...], torch.Tensor, float, float]] = []
        FakeTAPIR.instances.append(self)

    def forward(self, video, query_points, query_chunk_size=64):
        self.calls.append(
            (tuple(video.shape), query_points.clone(), float(video.min()), float(video.max()))
        )
        B, T = video.shape[:2]
        t, y, x = query_points.unbind(-1)  # [B, N]
        xy = torch.stack([x + FAKE_SHIFT[0], y + FAKE_SHIFT[1]], -1)
        tracks = xy[:, :, None].expand(B, xy.shape[1], T, 2).clone()
        before = torch.arange(T)[None, None] < t[..., None]
        occ = torch.where(before, 20.0, -20.0)
        return {"tracks": tracks, "occlusion": occ, "expected_dist": torch.full_like(occ, -20.0)}


def install_fake_tapnet(monkeypatch) -> dict[str, types.ModuleType]:
    """Make ``import tapnet.torch.tapir_model`` give :class:`FakeTAPIR` (for this test)."""
    FakeTAPIR.instances.clear()
    mods = {n: types.ModuleType(n) for n in ("tapnet", "tapnet.torch", "tapnet.torch.tapir_model")}
    mods["tapnet.torch.tapir_model"].TAPIR = FakeTAPIR
    mods["tapnet"].torch = mods["tapnet.torch"]
    mods["tapnet.torch"].tapir_model = mods["tapnet.torch.tapir_model"]
    for n, m in mods.items():
        monkeypatch.setitem(sys.modules, n, m)
    return mods
