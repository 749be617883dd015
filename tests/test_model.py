"""The track classifier: shapes, invariances, masking, ablation switches, parameter count."""

import pytest
import torch

from moseg.models import ClassifierConfig, TrackClassifier, count_parameters, frequency_encode
from moseg.models.classifier import camera_residual

TINY = dict(
    num_freqs=3,
    motion_dim=8,
    motion_hidden=8,
    motion_heads=2,
    motion_ffn=16,
    motion_layers=2,
    dim=16,
    heads=2,
    ffn=32,
    encoder_layers=2,
    decoder_layers=1,
    semantic_dim=6,
)

ABLATIONS = {
    "full": {},
    "no_depth": {"use_depth": False},
    "no_tracks": {"use_tracks": False},
    "no_semantics": {"semantic_mode": "none"},
    "no_semantics_width0": {"semantic_dim": 0},
    "semantics_at_input": {"semantic_mode": "motion_input"},
    "semantics_attended": {"semantic_mode": "attention"},
    "no_posenc": {"use_posenc": False},
    "no_cross_track": {"cross_track_attention": False},
    "shared_attention": {"share_attention_weights": True},
    "query_frame_channel": {"use_query_frame": True},
    "camera_residual": {"use_camera_residual": True},
    "camera_residual_ransac_gaps": {
        "use_camera_residual": True,
        "camera_ransac": 8,
        "residual_gaps": (2, 4),
    },
    "mean_pool": {"pool": "mean"},
    "maxmean_pool": {"pool": "maxmean"},
}


def inputs(B=2, N=12, T=7, C=6, seed=0, p_vis=0.7):
    g = torch.Generator().manual_seed(seed)
    hw = torch.tensor([[48, 64]] * B)
    tracks = torch.rand(B, N, T, 2, generator=g) * torch.tensor([64.0, 48.0])
    vis = torch.rand(B, N, T, generator=g) < p_vis
    conf = torch.rand(B, N, T, generator=g)
    depth = torch.rand(B, N, T, generator=g)
    feats = torch.randn(B, N, C, generator=g)
    return dict(
        tracks=tracks, visibility=vis, confidence=conf, image_size=hw, depth=depth, features=feats
    )


def model(seed=0, **kw):
    torch.manual_seed(seed)
    return TrackClassifier(**{**TINY, **kw}).eval()


@pytest.mark.parametrize("name", ABLATIONS)
def test_forward_backward_every_ablation(name):
    m = model(**ABLATIONS[name]).train()
    x = inputs()
    out = m(**x)
    assert out.shape == (2, 12) and torch.isfinite(out).all()
    out.sum().backward()
    grads = [p.grad for p in m.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_ablations_change_what_the_model_sees():
    x = inputs()
    # without depth, depth does not matter; with it, it does
    m = model(use_depth=False)
    y = dict(x, depth=torch.rand_like(x["depth"]))
    assert torch.allclose(m(**x), m(**y))
    m = model()
    assert not torch.allclose(m(**x), m(**y))
    # without semantics, features do not matter
    y = dict(x, features=torch.randn_like(x["features"]))
    assert torch.allclose(model(semantic_mode="none")(**x), model(semantic_mode="none")(**y))
    assert not torch.allclose(model()(**x), model()(**y))
    # without tracks, motion does not matter
    y = dict(x, tracks=torch.rand_like(x["tracks"]) * 40)
    assert torch.allclose(model(use_tracks=False)(**x), model(use_tracks=False)(**y))
    # without cross-track attention a track's output ignores the other tracks' motion ...
    # ... apart from the tracks decoder, which is what 'w/o spatio-temporal' keeps
    m_time, m_full = model(cross_track_attention=False), model()
    assert m_time.motion.axes == ["time", "time"] and m_full.motion.axes == ["time", "track"]


def test_shared_attention_shares_one_module():
    m = model(share_attention_weights=True, motion_layers=4)
    blocks = m.motion.blocks
    assert blocks[0].attn is blocks[1].attn and blocks[2].attn is blocks[3].attn
    assert blocks[0].attn is not blocks[2].attn
    n_shared = count_parameters(m)
    assert n_shared < count_parameters(model(motion_layers=4))


def test_permuting_tracks_permutes_outputs():
    m, x = model(), inputs()
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(3))
    y = {k: (v[:, perm] if k != "image_size" else v) for k, v in x.items()}
    assert torch.allclose(m(**x)[:, perm], m(**y), atol=1e-5)


def test_padding_changes_nothing_for_real_tracks():
    m = model()
    a, b = inputs(B=1, N=9, seed=1), inputs(B=1, N=5, seed=2)
    alone = [m(**a)[0], m(**b)[0]]
    # pad b to 9 tracks with garbage and batch it with a
    pad = inputs(B=1, N=4, seed=9)
    batch = {}
    for k in a:
        if k == "image_size":
            batch[k] = torch.cat([a[k], b[k]])
        else:
            batch[k] = torch.cat([a[k], torch.cat([b[k], pad[k]], dim=1)])
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[1, 5:] = False
    out = m(**batch, track_mask=mask)
    assert torch.allclose(out[0], alone[0], atol=1e-5)
    assert torch.allclose(out[1, :5], alone[1], atol=1e-5)


def test_invisible_points_have_no_influence():
    m, x = model(), inputs()
    y = dict(x)
    hidden = ~x["visibility"]
    y["tracks"] = torch.where(hidden.unsqueeze(-1), x["tracks"] * 3 - 50, x["tracks"])
    y["depth"] = torch.where(hidden, torch.rand_like(x["depth"]), x["depth"])
    y["confidence"] = torch.where(hidden, torch.rand_like(x["confidence"]), x["confidence"])
    assert torch.allclose(m(**x), m(**y), atol=1e-5)


def test_never_visible_tracks_and_empty_frames_stay_finite():
    m, x = model().train(), inputs()
    x["visibility"][0, :4] = False  # tracks never seen
    x["visibility"][1, :, 2] = False  # a frame where nothing is seen
    out = m(**x)
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)


def test_visible_gather_matches_masked_attention():
    """The fast across-track path (visible points gathered) equals plain masked attention."""
    from moseg.models.classifier import _guard

    m, x = model(), inputs(p_vis=0.6)
    pts = m.point_inputs(
        x["tracks"], x["visibility"], x["confidence"], x["image_size"], x["depth"], None
    )
    enc = m.motion
    fast = enc(pts, x["visibility"])
    # reference: every block on the full [B, N, T] grid with boolean masks
    h = enc.embed(pts)
    vis = x["visibility"]
    for axis, blk in zip(enc.axes, enc.blocks, strict=True):
        if axis == "time":
            h = h + blk.attn(blk.norm1(h), allowed=_guard(vis.unsqueeze(-2)))
        else:
            ht = blk.norm1(h).transpose(1, 2)
            upd = blk.attn(ht, allowed=_guard(vis.transpose(1, 2).unsqueeze(-2))).transpose(1, 2)
            h = h + upd * vis.unsqueeze(-1)
        h = h + blk.ff(blk.norm2(h))
    h = enc.norm(h).masked_fill(~vis.unsqueeze(-1), float("-inf")).amax(2)
    h = torch.where(torch.isfinite(h), h, torch.zeros_like(h))
    assert torch.allclose(fast, h, atol=1e-5)


def test_missing_modalities_and_wrong_widths():
    m, x = model(), inputs()
    assert torch.isfinite(m(**dict(x, depth=None, features=None))).all()
    with pytest.raises(ValueError, match="semantic_dim=6"):
        m(**dict(x, features=torch.zeros(2, 12, 5)))
    with pytest.raises(ValueError, match="unknown classifier options"):
        ClassifierConfig.from_dict({"hidden": 3})
    with pytest.raises(ValueError, match="use_tracks=False"):
        TrackClassifier(**{**TINY, "use_tracks": False, "semantic_mode": "none"})


def test_query_frame_channel():
    m, x = model(use_query_frame=True), inputs()
    q0 = torch.zeros(2, 12, dtype=torch.long)
    q3 = torch.full((2, 12), 3)
    assert not torch.allclose(m(**x, query_frame=q0), m(**x, query_frame=q3))
    assert ClassifierConfig(use_query_frame=True).point_channels() == 89


def test_point_channels_match_the_paper():
    cfg = ClassifierConfig()
    assert cfg.point_channels() == 88  # 42 + 42 + depth, depth change, visibility, confidence
    assert ClassifierConfig(use_posenc=False).point_channels() == 8


def test_paper_config_has_the_published_size():
    n = count_parameters(TrackClassifier(ClassifierConfig(semantic_dim=768)))
    assert abs(n - 3.44e6) / 3.44e6 < 0.05, n


def test_frequency_encoding():
    v = torch.tensor([[0.25, -0.5]])
    e = frequency_encode(v, 2)
    assert e.shape == (1, 2 * 5)
    assert torch.allclose(e[0, :2], v[0])
    # sin(pi * 0.25), sin(2 pi * 0.25), cos(pi * 0.25), cos(2 pi * 0.25) for x
    exp = torch.tensor([0.70710678, 1.0, 0.70710678, 0.0])
    assert torch.allclose(e[0, 2:6], exp, atol=1e-6)


def _camera_clip(B=1, N=400, T=10, n_obj=60, seed=0):
    """Tracks under a known affine camera motion; the first ``n_obj`` also move on their own."""
    g = torch.Generator().manual_seed(seed)
    A = torch.tensor([[1.02, 0.03], [-0.03, 0.99]])
    b = torch.tensor([0.02, -0.01])
    p = [torch.rand(B, N, 2, generator=g) * 2 - 1]
    for _ in range(T - 1):
        q = p[-1] @ A.T + b
        q[:, :n_obj] += torch.tensor([0.04, 0.0])
        p.append(q)
    vis = torch.rand(B, N, T, generator=g) > 0.1
    return torch.stack(p, 2), vis


def test_camera_residual_removes_the_camera_and_keeps_the_object():
    pos, vis = _camera_clip()
    res, ratio = camera_residual(pos, vis)
    both = vis[..., 1:] & vis[..., :-1]
    r = res[..., 1:, :].norm(dim=-1)
    obj, bg = both.clone(), both.clone()
    obj[:, 60:] = False
    bg[:, :60] = False
    # the background's displacement (up to 0.05 here) is explained by the camera fit
    assert r[bg].max() < 1e-4
    assert r[obj].min() > 0.02  # the object's own motion stays
    assert ratio[..., 1:][obj].min() > 3 * ratio[..., 1:][bg].max()
    # zero where a point is unseen at either end and at the first frame
    assert (res[..., 0, :] == 0).all() and (res[..., 1:, :][~both] == 0).all()


def test_camera_residual_skips_frames_with_too_few_points():
    pos, vis = _camera_clip(N=5, n_obj=0)
    res, ratio = camera_residual(pos, vis)
    assert (res == 0).all() and (ratio == 0).all()


def test_camera_residual_ignores_padding_and_adds_its_channels():
    cfg = ClassifierConfig(**TINY, use_camera_residual=True)
    base = ClassifierConfig(**TINY).point_channels()
    assert cfg.point_channels() == base + 2 * (1 + 2 * TINY["num_freqs"]) + 1
    m = TrackClassifier(cfg).eval()
    x = inputs(N=12)
    # padding tracks with wild positions must not change the real tracks' logits
    x2 = {k: v for k, v in x.items()}
    pad = 5
    x2["tracks"] = torch.cat([x["tracks"], torch.rand(2, pad, 7, 2) * 1e4], 1)
    x2["visibility"] = torch.cat([x["visibility"], torch.ones(2, pad, 7, dtype=torch.bool)], 1)
    x2["confidence"] = torch.cat([x["confidence"], torch.ones(2, pad, 7)], 1)
    x2["features"] = torch.cat([x["features"], torch.zeros(2, pad, 6)], 1)
    if x.get("depth") is not None:
        x2["depth"] = torch.cat([x["depth"], torch.zeros(2, pad, 7)], 1)
    mask = torch.ones(2, 12 + pad, dtype=torch.bool)
    mask[:, 12:] = False
    with torch.no_grad():
        a = m(**x)
        b2 = m(**x2, track_mask=mask)[:, :12]
    assert torch.allclose(a, b2, atol=1e-4)


def _big_object_clip(T=6, N=300, n_obj=130, seed=1):
    """A still camera (small affine drift) and an object covering 43 % of the tracks that
    jumps far each frame: a least-squares start is dragged towards it."""
    g = torch.Generator().manual_seed(seed)
    p = [torch.rand(1, N, 2, generator=g) * 2 - 1]
    for _ in range(T - 1):
        q = p[-1] * 1.01 + torch.tensor([0.01, 0.0])
        q[:, :n_obj] = p[-1][:, :n_obj] * 0.8 + torch.tensor([0.3, 0.2])
        p.append(q)
    return torch.stack(p, 2), torch.ones(1, N, T, dtype=torch.bool)


def test_camera_residual_ransac_start_resists_a_large_moving_object():
    pos, vis = _big_object_clip()
    bg_from_ls = camera_residual(pos, vis, iters=2)[0][:, 130:, 1:].norm(dim=-1)
    res, ratio = camera_residual(pos, vis, iters=2, ransac=32)
    bg, obj = res[:, 130:, 1:].norm(dim=-1), res[:, :130, 1:].norm(dim=-1)
    assert bg_from_ls.max() > 1e-2  # the plain start is captured (so this test can fail)
    assert bg.max() < 1e-3 and obj.min() > 0.01
    assert ratio[:, :130, 1:].min() > 3 * ratio[:, 130:, 1:].max()


def test_camera_residual_ransac_is_deterministic_and_independent_of_padding_and_batch():
    pos, vis = _camera_clip(B=1, N=300, T=8)
    a = camera_residual(pos, vis, ransac=16, gap=3)
    again = camera_residual(pos, vis, ransac=16, gap=3)
    assert torch.equal(a[0], again[0]) and torch.equal(a[1], again[1])
    # 40 padding tracks (unseen) and a second clip in the batch change nothing for this clip
    pad = torch.rand(1, 40, 8, 2) * 50
    pos2 = torch.cat([torch.cat([pos, pad], 1), torch.rand(1, 340, 8, 2)], 0)
    vis2 = torch.cat(
        [torch.cat([vis, torch.zeros(1, 40, 8, dtype=torch.bool)], 1), vis.new_ones(1, 340, 8)],
        0,
    )
    b = camera_residual(pos2, vis2, ransac=16, gap=3)
    assert torch.allclose(b[0][:1, :300], a[0], atol=1e-6)
    assert torch.allclose(b[1][:1, :300], a[1], atol=1e-6)


def test_camera_residual_longer_gap_accumulates_slow_motion():
    # an object creeping at 0.3 px per frame under noisy tracks: invisible at gap 1, clear at 8
    g = torch.Generator().manual_seed(2)
    T, N, n_obj = 16, 400, 60
    base = torch.rand(1, N, 1, 2, generator=g) * 2 - 1
    t = torch.arange(T, dtype=torch.float32).view(1, 1, T, 1)
    drift = torch.zeros(1, N, T, 2)
    drift[:, :n_obj, :, 0] = 0.0007 * t[..., 0]  # 0.3 px per frame at 854 px
    pos = base + 0.02 * t * torch.tensor([1.0, 0.5]) + drift
    pos = pos + 0.0007 * torch.randn(1, N, T, 2, generator=g)
    vis = torch.ones(1, N, T, dtype=torch.bool)

    def separation(gap):
        r = camera_residual(pos, vis, gap=gap, ransac=16)[1][:, :, gap:]
        return r[:, :n_obj].median() / r[:, n_obj:].median()

    assert separation(1) < 1.5 and separation(8) > 2.5


def test_residual_gaps_add_one_channel_each_and_are_validated():
    base = ClassifierConfig(**TINY, use_camera_residual=True)
    cfg = ClassifierConfig(**TINY, use_camera_residual=True, residual_gaps=[4, 8])
    assert cfg.residual_gaps == (4, 8)
    assert cfg.point_channels() == base.point_channels() + 2
    with pytest.raises(ValueError, match="residual_gaps"):
        ClassifierConfig(residual_gaps=(1,))
    with pytest.raises(ValueError, match="camera_ransac"):
        ClassifierConfig(camera_ransac=-1)
