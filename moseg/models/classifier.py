"""The motion/semantic-decoupled track classifier (pure torch).

Shapes: ``B`` clips, ``N`` tracks (padded), ``T`` frames, ``C`` semantic channels.

    tracks      [B, N, T, 2]  (x, y) pixels, top-left pixel centre = (0, 0)
    visibility  [B, N, T]     bool
    confidence  [B, N, T]     float in [0, 1]
    depth       [B, N, T]     float in [0, 1], the video's depth sampled at the track
    features    [B, N, C]     semantic feature of each track (query-frame position)
    track_mask  [B, N]        bool, False for padding
    image_size  [B, 2]        (H, W) of each clip's frames

Two stages, as in the paper:

1. A motion encoder embeds every visible point (frequency-encoded position and displacement,
   depth, depth change, visibility, confidence) and alternates attention along time (within a
   track) and across tracks (within a frame). Invisible points and padding are never keys; a
   masked mean/max pool over visible steps gives one motion vector per track.
2. A tracks decoder whose attention sees only motion; each track's semantic feature enters
   through the input of the encoder blocks' feed-forward layers. Decoder blocks query with the
   motion embedding and cross-attend to the encoder memory. A linear head gives one logit per
   track.

Every ablation of the paper is a :class:`ClassifierConfig` switch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SemanticMode = Literal["ffn", "motion_input", "attention", "none"]


@dataclass
class ClassifierConfig:
    """Sizes and switches. The defaults are the published model (about 3.44 M parameters with
    ``semantic_dim=768``)."""

    # per-point input
    num_freqs: int = 10  # octaves 2^0 .. 2^(num_freqs-1) of the sin/cos encoding
    use_posenc: bool = True  # False: raw (x, y, dx, dy) only (ablation "w/o positional encoding")
    use_depth: bool = True  # ablation "w/o depth"
    use_tracks: bool = True  # False: the classifier sees only semantics ("w/o tracks")
    # one more channel marking each track's query frame, where its label is defined (not in
    # the paper; it helps where a tracker swaps identity away from the query frame)
    use_query_frame: bool = False
    # camera-compensated motion (not in the paper): each point's displacement minus what a
    # robust affine fit of all tracks between the two frames predicts (the camera's image
    # motion), plus that residual's size against the frame's typical residual. Computed from
    # the tracks inside the model (:func:`camera_residual`), so training and inference agree.
    use_camera_residual: bool = False
    # (the next two act only with use_camera_residual)
    # > 0: that fit starts from the inliers of this many RANSAC hypotheses (3-point affine
    # maps, fixed seed) instead of from all points, so a large moving object cannot capture it
    camera_ransac: int = 0
    # more frame gaps g > 1, each adding one channel: the residual ratio of the camera fit
    # between frames t - g and t (slow objects build up a residual over several frames)
    residual_gaps: tuple[int, ...] = ()
    # motion encoder
    motion_dim: int = 16
    motion_hidden: int = 16  # width of the first pointwise layer
    motion_heads: int = 4
    motion_ffn: int = 64
    motion_layers: int = 4  # blocks alternating time / track attention (2 encoder + 2 decoder)
    cross_track_attention: bool = True  # False: time attention only ("w/o spatio-temporal")
    share_attention_weights: bool = False  # one attention for time and tracks (the release)
    pool: Literal["max", "mean", "maxmean"] = "max"
    # tracks decoder
    dim: int = 128
    heads: int = 8
    ffn: int = 512
    encoder_layers: int = 4
    decoder_layers: int = 4
    dropout: float = 0.0
    # semantics
    semantic_dim: int = 768  # 768 for DINOv2 ViT-B keys; 0 = no semantics ("w/o DINO")
    semantic_mode: SemanticMode = "ffn"

    def __post_init__(self) -> None:
        self.residual_gaps = tuple(int(g) for g in self.residual_gaps)
        if any(g < 2 for g in self.residual_gaps):
            raise ValueError(f"residual_gaps must be frame gaps >= 2, got {self.residual_gaps}")
        if self.camera_ransac < 0:
            raise ValueError(f"camera_ransac must be >= 0, got {self.camera_ransac}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClassifierConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(
                f"unknown classifier options {sorted(unknown)}; known: {sorted(known)}"
            )
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def semantics(self) -> SemanticMode:
        """The effective semantic mode ('none' when there is no semantic input)."""
        return "none" if self.semantic_dim <= 0 else self.semantic_mode

    def point_channels(self) -> int:
        per_value = 1 + 2 * self.num_freqs if self.use_posenc else 1
        n = 4 * per_value + 2  # x, y, dx, dy encoded; visibility, confidence
        if self.use_query_frame:
            n += 1
        if self.use_camera_residual:
            n += 2 * per_value + 1  # residual (dx, dy) encoded; log residual ratio
            n += len(self.residual_gaps)  # log residual ratio over each longer gap
        if self.use_depth:
            n += 2  # depth, depth change
        if self.semantics == "motion_input":
            n += self.semantic_dim
        return n


def _irls_affine(Xh: Tensor, Y: Tensor, m: Tensor, w: Tensor, iters: int, floor: float):
    """Affine IRLS on point pairs ``Xh -> Y`` (``Xh [M, N, 3]`` homogeneous, ``Y [M, N, 2]``)
    with mask ``m [M, N]`` and start weights ``w``: ``(prediction [M, N, 2], scale [M])``."""
    eye = torch.eye(3, dtype=Xh.dtype, device=Xh.device)
    pred = scale = None
    for _ in range(iters):
        Xw = Xh * w.unsqueeze(-1)
        A = Xw.transpose(-1, -2) @ Xh + 1e-6 * eye
        theta = torch.linalg.solve(A, Xw.transpose(-1, -2) @ Y)  # [M, 3, 2]
        pred = Xh @ theta
        w, scale = _cauchy_weights((Y - pred).norm(dim=-1), m, floor)
    return pred, scale


def _ransac_affine_weights(
    Xh: Tensor, Y: Tensor, m: Tensor, hypotheses: int, thresh: float, rows_per_clip: int
) -> Tensor:
    """Start weights from a batched RANSAC: ``hypotheses`` affine maps per row, each from 3
    seen points drawn with a fixed seed (so inference gives the same result on every run); the
    one with most points within ``thresh`` wins (``rows_per_clip``: frame pairs per clip; the
    rows are clip-major) and its inliers get weight 1, the rest 0.
    Rows where it finds fewer than 3 inliers keep all seen points."""
    M, N, _ = Xh.shape
    # draw the k-th seen point of each row (k uniform) from draws that depend only on the
    # row's position within its clip (``rows_per_clip``), not on N or the batch: padding and
    # batch-mates change nothing; drawn on the CPU so every device draws the same points
    g = torch.Generator().manual_seed(0)
    u = torch.rand(rows_per_clip, 3 * hypotheses, generator=g).to(Xh.device, Xh.dtype)
    u = u.repeat(M // rows_per_clip, 1)  # [M, 3K]
    seen_first = torch.sort(m, dim=-1, descending=True, stable=True).indices
    count = m.sum(-1, keepdim=True)
    k = (u * count).long().clamp(max=N - 1)
    pick = seen_first.gather(-1, k).view(M, hypotheses, 3)
    rows = torch.arange(M, device=Xh.device)[:, None, None]
    Xs, Ys = Xh[rows, pick], Y[rows, pick]  # [M, K, 3, 3], [M, K, 3, 2]
    eye = torch.eye(3, dtype=Xh.dtype, device=Xh.device)
    # degenerate draws (repeated or collinear points) give non-finite maps and lose
    theta = torch.linalg.solve_ex(Xs + 1e-6 * eye, Ys).result  # [M, K, 3, 2]
    theta = torch.nan_to_num(theta, nan=1e6, posinf=1e6, neginf=-1e6)
    err = (Xh.unsqueeze(1) @ theta - Y.unsqueeze(1)).square().sum(-1)  # [M, K, N]
    inl = (err < thresh * thresh) & (m.unsqueeze(1) > 0)
    best = inl.sum(-1).argmax(-1)  # [M]
    w = inl[torch.arange(M, device=Xh.device), best].to(Xh.dtype)
    return torch.where(w.sum(-1, keepdim=True) >= 3, w, m)


def _cauchy_weights(r: Tensor, m: Tensor, floor: float) -> tuple[Tensor, Tensor]:
    """Cauchy weights for residuals ``r [M, N]`` (mask ``m``) and the robust scale ``[M]``:
    1.4826 x the median residual of the masked points, at least ``floor``."""
    count = m.sum(-1)
    rs = torch.where(m > 0, r, torch.full_like(r, float("inf")))  # unseen points sort last
    k = ((count - 1).clamp(min=0) // 2).long().unsqueeze(-1)
    med = rs.sort(dim=-1).values.gather(-1, k).squeeze(-1)
    scale = (1.4826 * med).clamp(min=floor)
    return m / (1.0 + (r / (2.0 * scale.unsqueeze(-1))) ** 2), scale


@torch.no_grad()
def camera_residual(
    pos: Tensor,
    visible: Tensor,
    iters: int = 5,
    floor: float = 1e-3,
    gap: int = 1,
    ransac: int = 0,
) -> tuple[Tensor, Tensor]:
    """Displacements with the camera's image motion removed.

    ``pos [B, N, T, 2]`` (any fixed units), ``visible [B, N, T]``. For every frame pair
    ``(t - gap, t)`` an affine map ``p_t = A p_(t-gap) + b`` is fitted to the points seen in
    both by iteratively reweighted least squares (Cauchy weights; moving objects get
    down-weighted as outliers). ``ransac > 0``: the fit starts from the inliers of that many
    affine RANSAC hypotheses (within 10 x ``floor``) instead of from all points, which keeps
    a large moving object from capturing the fit.

    Returns ``(residual [B, N, T, 2], ratio [B, N, T])``: ``p_t`` minus the camera's
    prediction from ``p_(t-gap)``, and ``log(1 + |residual| / s)`` with ``s`` the frame pair's
    robust residual scale (at least ``floor``). Both are zero for ``t < gap``, where either
    end is unseen, and in frame pairs with fewer than 6 such points. The fit runs in float32
    whatever the input's precision."""
    B, N, T, _ = pos.shape
    res = pos.new_zeros(B, N, T, 2)
    ratio = pos.new_zeros(B, N, T)
    if gap >= T:
        return res, ratio
    p = pos.float()
    a, b = p[:, :, :-gap], p[:, :, gap:]  # [B, N, T-gap, 2]
    both = (visible[:, :, :-gap] & visible[:, :, gap:]).float()
    M = B * (T - gap)
    X = a.transpose(1, 2).reshape(M, N, 2)
    Xh = torch.cat([X, torch.ones_like(X[..., :1])], dim=-1)  # [M, N, 3]
    Y = b.transpose(1, 2).reshape(M, N, 2)
    m = both.transpose(1, 2).reshape(M, N)
    with torch.autocast(device_type=pos.device.type, enabled=False):
        w0 = (
            _ransac_affine_weights(Xh, Y, m, ransac, 10.0 * floor, T - gap)
            if ransac > 0
            else m.clone()
        )
        pred, scale = _irls_affine(Xh, Y, m, w0, iters, floor)
    diff = Y - pred
    r = diff.norm(dim=-1)
    ok = (m.sum(-1, keepdim=True) >= 6).float() * m  # [M, N]
    diff = (diff * ok.unsqueeze(-1)).reshape(B, T - gap, N, 2).transpose(1, 2)
    lr = (torch.log1p(r / scale.unsqueeze(-1)) * ok).reshape(B, T - gap, N).transpose(1, 2)
    res[:, :, gap:] = diff.to(pos.dtype)
    ratio[:, :, gap:] = lr.to(pos.dtype)
    return res, ratio


def frequency_encode(v: Tensor, num_freqs: int) -> Tensor:
    """NeRF-style encoding ``[..., D] -> [..., D * (1 + 2 * num_freqs)]``: the raw value, then
    sin and cos of ``2^k * pi * v`` for k < num_freqs."""
    if num_freqs == 0:
        return v
    freqs = (2.0 ** torch.arange(num_freqs, device=v.device, dtype=v.dtype)) * math.pi
    a = v.unsqueeze(-1) * freqs  # [..., D, F]
    enc = torch.cat([a.sin(), a.cos()], dim=-1).flatten(-2)
    return torch.cat([v, enc], dim=-1)


class Attention(nn.Module):
    """Multi-head attention on ``scaled_dot_product_attention`` over the second-last axis.

    ``x [..., L, D]`` attends to ``kv [..., S, D]`` (itself when None); ``allowed`` is a bool
    mask broadcastable to ``[..., L, S]`` (True = may attend). Rows with no allowed key must be
    given at least one by the caller (see :func:`_guard`)."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(self, x: Tensor, kv: Tensor | None = None, allowed: Tensor | None = None) -> Tensor:
        kv = x if kv is None else kv
        *lead, L, D = x.shape
        S = kv.shape[-2]
        h = self.heads
        # SDPA's fused CPU/GPU kernels take 4-D inputs: fold every leading axis into one
        q = self.q(x).reshape(-1, L, h, D // h).transpose(1, 2)
        k, v = self.kv(kv).reshape(-1, S, 2, h, D // h).permute(2, 0, 3, 1, 4).unbind(0)
        if allowed is not None:
            Lm = allowed.shape[-2]  # 1 (one key mask for every query) or L
            allowed = allowed.expand(*lead, Lm, S).reshape(-1, 1, Lm, S).contiguous()
        o = F.scaled_dot_product_attention(
            q, k, v, attn_mask=allowed, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out(o.transpose(1, 2).reshape(*lead, L, D))


class FeedForward(nn.Module):
    def __init__(self, dim_in: int, hidden: int, dim_out: int, dropout: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim_in, hidden)
        self.fc2 = nn.Linear(hidden, dim_out)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.drop(F.gelu(self.fc1(x))))


def _guard(allowed: Tensor) -> Tensor:
    """Give rows with no allowed key every key, so attention stays finite; their outputs are
    never used (they belong to invisible points or padding)."""
    return allowed | ~allowed.any(dim=-1, keepdim=True)


class AxisBlock(nn.Module):
    """Pre-norm self-attention along one axis of ``[B, N, T, D]`` plus a feed-forward layer."""

    def __init__(self, cfg: ClassifierConfig, attention: Attention):
        super().__init__()
        d = cfg.motion_dim
        self.norm1 = nn.LayerNorm(d)
        self.attn = attention
        self.norm2 = nn.LayerNorm(d)
        self.ff = FeedForward(d, cfg.motion_ffn, d, cfg.dropout)

    def forward(self, x: Tensor, axis: str, ctx: _VisibleSets) -> Tensor:
        if axis == "time":
            x = x + self.attn(self.norm1(x), allowed=ctx.time_allowed)
        else:
            x = x + ctx.across_tracks(self.attn, self.norm1(x))
        return x + self.ff(self.norm2(x))


class _VisibleSets:
    """Attention across tracks within each frame, computed on the visible points only.

    Invisible points are never keys, and their outputs are never used downstream (they are
    masked from every later attention and from pooling), so each frame's visible points are
    gathered into a ``[B, T, V, D]`` tensor (V = most visible points in any frame). This does
    the same arithmetic as masking but skips the masked part of the N x N score matrix.
    """

    def __init__(self, visible: Tensor):  # [B, N, T]
        self.time_allowed = _guard(visible.unsqueeze(-2))  # [B, N, 1, T]
        vt = visible.transpose(1, 2)  # [B, T, N]
        counts = vt.sum(-1)  # [B, T]
        V = max(int(counts.max()), 1)
        self.full = vt.shape[-1] == V and bool((counts == V).all())
        if not self.full:
            # stable sort puts each frame's visible tracks first, in track order
            order = torch.sort((~vt).to(torch.uint8), dim=-1, stable=True).indices[..., :V]
            self.index = order.unsqueeze(-1)  # [B, T, V, 1]
            slot = torch.arange(V, device=visible.device)
            self.slot_valid = slot < counts.unsqueeze(-1)  # [B, T, V]
            self.allowed = _guard(self.slot_valid.unsqueeze(-2))  # [B, T, 1, V]

    def across_tracks(self, attn: Attention, x: Tensor) -> Tensor:
        """The attention update ``[B, N, T, D]`` (zero where the point is invisible)."""
        xt = x.transpose(1, 2)  # [B, T, N, D]
        if self.full:
            return attn(xt).transpose(1, 2)
        D = x.shape[-1]
        idx = self.index.expand(-1, -1, -1, D)
        xv = torch.gather(xt, 2, idx)  # [B, T, V, D]
        upd = attn(xv, allowed=self.allowed) * self.slot_valid.unsqueeze(-1).to(x.dtype)
        out = torch.zeros_like(xt).scatter_add(2, idx, upd)
        return out.transpose(1, 2)


class MotionEncoder(nn.Module):
    """Per-point inputs ``[B, N, T, P]`` -> one motion vector per track ``[B, N, D]``."""

    def __init__(self, cfg: ClassifierConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.motion_dim
        self.embed = nn.Sequential(
            nn.Linear(cfg.point_channels(), cfg.motion_hidden),
            nn.GELU(),
            nn.Linear(cfg.motion_hidden, d),
        )
        self.axes = [
            "time" if (i % 2 == 0 or not cfg.cross_track_attention) else "track"
            for i in range(cfg.motion_layers)
        ]
        attns: list[Attention] = []
        for i in range(cfg.motion_layers):
            if cfg.share_attention_weights and i % 2 == 1:
                attns.append(attns[-1])  # the time/track pair shares one set of weights
            else:
                attns.append(Attention(d, cfg.motion_heads, cfg.dropout))
        self.blocks = nn.ModuleList(AxisBlock(cfg, a) for a in attns)
        self.norm = nn.LayerNorm(d)
        self.out_dim = 2 * d if cfg.pool == "maxmean" else d

    def forward(self, points: Tensor, visible: Tensor) -> Tensor:
        x = self.embed(points)  # [B, N, T, D]
        ctx = _VisibleSets(visible)
        for axis, block in zip(self.axes, self.blocks, strict=True):
            x = block(x, axis, ctx)
        x = self.norm(x)
        w = visible.unsqueeze(-1).to(x.dtype)  # [B, N, T, 1]
        seen = w.sum(dim=2)  # [B, N, 1]
        pooled = []
        if self.cfg.pool in ("max", "maxmean"):
            neg = torch.finfo(x.dtype).min
            mx = x.masked_fill(~visible.unsqueeze(-1), neg).amax(dim=2)
            pooled.append(torch.where(seen > 0, mx, torch.zeros_like(mx)))
        if self.cfg.pool in ("mean", "maxmean"):
            pooled.append((x * w).sum(dim=2) / seen.clamp_min(1.0))
        return torch.cat(pooled, dim=-1)


class DecoupledEncoderBlock(nn.Module):
    """Self-attention over tracks on motion tokens; semantics join only the feed-forward input."""

    def __init__(self, cfg: ClassifierConfig, ffn_extra: int):
        super().__init__()
        d = cfg.dim
        self.norm1 = nn.LayerNorm(d)
        self.attn = Attention(d, cfg.heads, cfg.dropout)
        self.norm2 = nn.LayerNorm(d)
        self.ff = FeedForward(d + ffn_extra, cfg.ffn, d, cfg.dropout)

    def forward(self, x: Tensor, allowed: Tensor | None, sem: Tensor | None) -> Tensor:
        x = x + self.attn(self.norm1(x), allowed=allowed)
        h = self.norm2(x)
        if sem is not None:
            h = torch.cat([h, sem], dim=-1)
        return x + self.ff(h)


class DecoderBlock(nn.Module):
    def __init__(self, cfg: ClassifierConfig):
        super().__init__()
        d = cfg.dim
        self.norm1 = nn.LayerNorm(d)
        self.self_attn = Attention(d, cfg.heads, cfg.dropout)
        self.norm2 = nn.LayerNorm(d)
        self.norm_mem = nn.LayerNorm(d)
        self.cross_attn = Attention(d, cfg.heads, cfg.dropout)
        self.norm3 = nn.LayerNorm(d)
        self.ff = FeedForward(d, cfg.ffn, d, cfg.dropout)

    def forward(self, x: Tensor, memory: Tensor, allowed: Tensor | None) -> Tensor:
        x = x + self.self_attn(self.norm1(x), allowed=allowed)
        x = x + self.cross_attn(self.norm2(x), self.norm_mem(memory), allowed=allowed)
        return x + self.ff(self.norm3(x))


class TrackClassifier(nn.Module):
    """Moving/static logit for every track. See the module docstring for shapes."""

    def __init__(self, cfg: ClassifierConfig | None = None, **overrides: Any):
        super().__init__()
        if cfg is None:
            cfg = ClassifierConfig.from_dict(overrides)
        elif overrides:
            cfg = ClassifierConfig.from_dict({**cfg.to_dict(), **overrides})
        if cfg.semantic_mode not in ("ffn", "motion_input", "attention", "none"):
            raise ValueError(f"semantic_mode {cfg.semantic_mode!r} is not one of the known modes")
        if not cfg.use_tracks and cfg.semantics in ("none", "motion_input"):
            raise ValueError("use_tracks=False needs semantics outside the motion encoder")
        self.cfg = cfg
        sem = cfg.semantics
        self.motion = MotionEncoder(cfg) if cfg.use_tracks else None
        if self.motion is not None:
            self.to_tokens = nn.Linear(self.motion.out_dim, cfg.dim)
        else:
            self.token = nn.Parameter(torch.zeros(cfg.dim))
        self.sem_norm = nn.LayerNorm(cfg.semantic_dim) if sem != "none" else None
        self.sem_in = nn.Linear(cfg.semantic_dim, cfg.dim) if sem == "attention" else None
        ffn_extra = cfg.semantic_dim if sem == "ffn" else 0
        self.encoder = nn.ModuleList(
            DecoupledEncoderBlock(cfg, ffn_extra) for _ in range(cfg.encoder_layers)
        )
        self.decoder = nn.ModuleList(DecoderBlock(cfg) for _ in range(cfg.decoder_layers))
        self.norm = nn.LayerNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, 1)

    # ------------------------------------------------------------------------------------------
    def point_inputs(
        self,
        tracks: Tensor,
        visibility: Tensor,
        confidence: Tensor,
        image_size: Tensor,
        depth: Tensor | None = None,
        features: Tensor | None = None,
        query_frame: Tensor | None = None,
    ) -> Tensor:
        """Per-point inputs ``[B, N, T, P]``; P is :meth:`ClassifierConfig.point_channels`."""
        cfg = self.cfg
        hw = image_size.to(tracks.dtype)
        wh = hw.flip(-1)[:, None, None, :]  # [B, 1, 1, 2] (W, H)
        pos = (tracks + 0.5) * (2.0 / wh) - 1.0  # [-1, 1] over the frame
        # displacement from the previous frame, zero unless both ends are seen: an invisible
        # point's (guessed) position never reaches the model, not even through its neighbour
        both = (visibility[:, :, 1:] & visibility[:, :, :-1]).unsqueeze(-1)
        disp = torch.zeros_like(pos)
        disp[:, :, 1:] = (pos[:, :, 1:] - pos[:, :, :-1]) * both
        nf = cfg.num_freqs if cfg.use_posenc else 0
        chans = [frequency_encode(pos, nf), frequency_encode(disp, nf)]
        vis = visibility.to(tracks.dtype)
        chans.append(vis.unsqueeze(-1))
        chans.append(confidence.to(tracks.dtype).unsqueeze(-1))
        if cfg.use_query_frame:
            T = tracks.shape[2]
            if query_frame is None:
                isq = torch.zeros_like(vis)
            else:
                t = torch.arange(T, device=tracks.device)
                isq = (t == query_frame.unsqueeze(-1)).to(tracks.dtype)  # [B, N, T]
            chans.append(isq.unsqueeze(-1))
        if cfg.use_camera_residual:
            # scale floor: 0.3 px in the [-1, 1] units of ``pos`` (sub-pixel jitter of a still
            # camera is not motion)
            floor = float(0.6 / hw.max())
            res, ratio = camera_residual(pos, visibility, floor=floor, ransac=cfg.camera_ransac)
            chans += [frequency_encode(res, nf), ratio.unsqueeze(-1)]
            for g in cfg.residual_gaps:
                _, ratio_g = camera_residual(
                    pos, visibility, floor=floor, gap=g, ransac=cfg.camera_ransac
                )
                chans.append(ratio_g.unsqueeze(-1))
        if cfg.use_depth:
            d = torch.zeros_like(vis) if depth is None else depth.to(tracks.dtype)
            dd = torch.zeros_like(d)
            dd[:, :, 1:] = (d[:, :, 1:] - d[:, :, :-1]) * both.squeeze(-1)
            chans += [d.unsqueeze(-1), dd.unsqueeze(-1)]
        if cfg.semantics == "motion_input":
            chans.append(features.unsqueeze(2).expand(-1, -1, tracks.shape[2], -1))
        return torch.cat(chans, dim=-1)

    def forward(
        self,
        tracks: Tensor,
        visibility: Tensor,
        confidence: Tensor,
        image_size: Tensor,
        depth: Tensor | None = None,
        features: Tensor | None = None,
        track_mask: Tensor | None = None,
        query_frame: Tensor | None = None,
    ) -> Tensor:
        """Logits ``[B, N]`` (padding positions hold finite values that mean nothing).

        ``query_frame [B, N]``: the frame (index into T) where each track's label is defined;
        used only with ``use_query_frame``.

        ``depth`` None (or ``use_depth=False``) and ``features`` None are allowed: the model
        then sees zeros there, which is what modality dropout trains it for."""
        cfg = self.cfg
        B, N, T, _ = tracks.shape
        if track_mask is None:
            track_mask = torch.ones(B, N, dtype=torch.bool, device=tracks.device)
        visible = visibility & track_mask.unsqueeze(-1)
        sem = None
        if cfg.semantics != "none":
            if features is None:
                features = tracks.new_zeros(B, N, cfg.semantic_dim)
            elif features.shape[-1] != cfg.semantic_dim:
                raise ValueError(
                    f"features have {features.shape[-1]} channels, the model expects "
                    f"semantic_dim={cfg.semantic_dim}"
                )
            sem = self.sem_norm(features.to(tracks.dtype))  # type: ignore[misc]

        if self.motion is not None:
            if cfg.semantics == "motion_input":
                features = sem
            pts = self.point_inputs(
                tracks,
                visible,
                confidence,
                image_size,
                depth if cfg.use_depth else None,
                features,
                query_frame,
            )
            x = self.to_tokens(self.motion(pts, visible))  # [B, N, dim]
        else:
            x = self.token.expand(B, N, -1)
        if cfg.semantics == "attention":
            x = x + self.sem_in(sem)  # type: ignore[misc]
        query = x
        # no mask at all when nothing is padded: SDPA's fused kernels are faster without one
        allowed = None if bool(track_mask.all()) else _guard(track_mask.unsqueeze(-2))  # [B,1,N]
        ffn_sem = sem if cfg.semantics == "ffn" else None
        for blk in self.encoder:
            x = blk(x, allowed, ffn_sem)
        memory = x
        y = query
        for blk in self.decoder:
            y = blk(y, memory, allowed)
        if not self.decoder:
            y = memory
        return self.head(self.norm(y)).squeeze(-1)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
