"""The reference release's track classifier, reproduced exactly (``model=release``).

The SegAnyMo release (github nnanhuang/SegAnyMo, MIT) publishes its trained classifier as
``moseg.pth`` (``{'model_state_dict': ..., 'epoch': ...}``). :class:`ReleaseClassifier` computes
the same function as that release's ``traj_oa_depth`` network, so its weights load and give the
same outputs (``benchmarks/release/parity.py`` measures it against golden outputs of the
release's own code). It is written from the release's behaviour, not copied from it, and it
keeps every quirk that changes the numbers; :data:`DIFFERENCES` lists how our own
:class:`~moseg.models.TrackClassifier` differs and why.

Inputs, as the release's ``forward(batch)`` receives them (one clip, ``B = 1``; larger ``B`` is
run clip by clip):

    traj         [B, 2, N, T]   (x, y); the release trains and infers with x / W * 2 - 1
                                clamped to [-1, 1] (``normalize_point_traj_torch``)
    mask         [B, 1, N, T]   1 where the point is invisible
    depth        [B, 1, H, W, T] per-frame min-max normalised disparity maps
    visib_value  [B, 1, N, T]   TAPIR's visibility probability, 1 - sigmoid(occlusion logit)
    confi_value  [B, 1, N, T]   TAPIR's confidence, zeroed where the point is not confident
    dino         [B, 768, N, 1] DINOv2 key feature of each track at its query frame
    depth_traj   [B, 2, N, T]   optional, ours: coordinates for the depth lookup alone
    track_depth  [B, 1, N, T]   optional, ours: depth already read at each point (no lookup)

What the forward does, in the release's order:

1. Per point: the frame-to-frame displacement ``traj[t+1] - traj[t]`` (kept at ``t``, zeroed
   when ``t+1`` is invisible; 0 at the last frame); depth read at the nearest pixel
   ``int(y*H)*W + int(x*W)`` (truncation toward zero, index clamped to the map; with [-1, 1]
   coordinates this reads the wrong pixels, and the released weights were trained so) and its
   change; position and displacement through a sin/cos encoding (raw value, then sin and cos of
   ``2^k * v`` for k < 10, no pi); visibility probability and confidence.
2. Two pointwise 1x1 convolutions with ReLU to 16 channels.
3. A post-norm transformer of 2 encoder and 2 decoder layers (d 16, 4 heads, FFN 64, ReLU) on
   ``[T, N, 16]``. Each layer attends along time within a track (invisible steps are masked
   keys), then - with the release's ``time_att`` flag - across tracks within a frame, with the
   same attention weights. A track invisible at every frame gets its first step unmasked.
   Decoder layers then cross-attend to the encoder memory with no mask at all.
4. The max over all T steps (invisible ones included) gives the 16-d motion feature.
5. The tracks decoder (d 128, 8 heads, FFN 512, 4 encoder and 4 decoder post-norm blocks):
   attention sees motion only; the 768-d DINO feature joins the input of each encoder block's
   feed-forward layer. A linear layer gives one logit per track; the probability is its sigmoid.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# what our own TrackClassifier does differently, and why (docs/release-checkpoint.md lists them)
DIFFERENCES: tuple[tuple[str, str, str], ...] = (
    (
        "depth lookup",
        "nearest pixel at int(y*H)*W + int(x*W) with x, y in [-1, 1]: half the points read "
        "pixel (0, 0), the rest a stretched copy of the map's top half",
        "bilinear sampling at the track's true position",
    ),
    (
        "depth values",
        "16-bit PNGs decoded as 8 bits (saturating), then min-max per frame",
        "float depth converted to per-frame normalised disparity whatever the source stored",
    ),
    (
        "attention weights",
        "the time and the cross-track attention of a layer share one set of weights; the flag "
        "named time_att switches the cross-track one",
        "separate weights, and the switches say what they do",
    ),
    (
        "pooling over time",
        "max over every frame, invisible ones included",
        "max over visible frames only",
    ),
    (
        "invisible points",
        "their guessed positions enter as values; cross-attention to the memory is unmasked",
        "never keys, never values: only seen points and their displacements reach the model",
    ),
    (
        "batching",
        "one clip per step; tracks of a clip are never padded",
        "padded batches of clips with a track mask",
    ),
    (
        "positional encoding",
        "sin/cos of 2^k * v (no pi)",
        "sin/cos of 2^k * pi * v, the NeRF encoding",
    ),
    (
        "normalisation",
        "post-norm layers, ReLU",
        "pre-norm layers, GELU: trains stably without warm-up tricks",
    ),
)


@dataclass
class ReleaseConfig:
    """The release's constructor flags (its ``configs/example_train.yaml`` values by default).

    Only the transformer tracks decoder is supported (``oanet`` false, as released)."""

    tracks: bool = True  # positions and displacements
    depth: bool = True  # depth and depth change
    extra_info: bool = True  # visibility probability and confidence
    pos_embed: bool = True  # sin/cos encoding of positions and displacements
    dino: bool = True  # DINO features
    dino_later: bool = True  # False: DINO at the motion encoder's input
    dino_woatt: bool = True  # True: DINO only in the decoder's feed-forward input
    time_att: bool = True  # the release's name: switches the CROSS-TRACK attention
    oanet: bool = False
    dino_dim: int = 768
    num_freqs: int = 10
    motion_dim: int = 16
    motion_heads: int = 4
    motion_ffn: int = 64
    motion_layers: int = 2  # encoder layers; as many decoder layers
    dim: int = 128
    heads: int = 8
    ffn: int = 512
    blocks: int = 4  # encoder blocks of the tracks decoder; as many decoder blocks

    def __post_init__(self) -> None:
        if self.oanet:
            raise ValueError(
                "the release's OANet decoder (oanet=true) is not supported: the published "
                "checkpoint uses the transformer decoder (oanet=false)"
            )
        if not self.tracks:  # as in the release: no tracks means no extras and no encoding
            self.extra_info = False
            self.pos_embed = False

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ReleaseConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(
                f"unknown release-model options {sorted(unknown)}; known: {sorted(known)}"
            )
        return cls(**dict(d))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def encoding_width(self) -> int:
        return 2 * (1 + 2 * self.num_freqs) if self.pos_embed else 2

    @property
    def dino_in_decoder_ffn(self) -> bool:
        return self.dino and self.dino_later and self.dino_woatt

    def point_channels(self) -> int:
        n = 2 * self.encoding_width if self.tracks else 0
        n += 2 if self.depth else 0
        n += 2 if self.extra_info else 0
        if self.dino and not self.dino_later:
            n += self.dino_dim
        return n

    def decoder_in(self) -> int:
        late_attended = self.dino and self.dino_later and not self.dino_woatt
        return self.motion_dim + (self.dino_dim if late_attended else 0)


def release_encoding(v: Tensor, num_freqs: int) -> Tensor:
    """``[..., D] -> [..., D * (1 + 2 * num_freqs)]``: v, then for each octave k the sines of
    ``2^k * v`` and their cosines (no factor pi), the release's ``FreqEmbedder`` order."""
    parts = [v]
    for k in range(num_freqs):
        a = v * (2.0**k)
        parts += [torch.sin(a), torch.cos(a)]
    return torch.cat(parts, dim=-1)


def nearest_lookup(maps: Tensor, traj: Tensor) -> Tensor:
    """``maps [H, W, T]`` read at ``traj [2, N, T]`` the release's way: flat index
    ``int(y*H)*W + int(x*W)`` (truncation toward zero), clamped to the map. Returns ``[N, T]``."""
    H, W, T = maps.shape
    flat = maps.permute(2, 0, 1).reshape(T, H * W)  # [T, HW]
    row = (traj[1] * H).to(torch.int32)
    col = (traj[0] * W).to(torch.int32)
    idx = (row * W + col).to(torch.int64).clamp(0, H * W - 1)  # [N, T]
    return flat.gather(1, idx.t()).t()


def _ffn(x: Tensor, fc1: nn.Linear, fc2: nn.Linear) -> Tensor:
    return fc2(F.relu(fc1(x)))


def _attend(attn: nn.MultiheadAttention, q: Tensor, kv: Tensor, pad: Tensor | None) -> Tensor:
    """Sequence-first attention ``[S, B, D]``; ``pad [B, S]`` True = not a key."""
    return attn(q, kv, kv, key_padding_mask=pad, need_weights=False)[0]


class MotionLayer(nn.Module):
    """One post-norm layer of the release's motion transformer on ``[T, N, D]``: attention along
    time, the same attention across tracks (``cross_tracks``), cross-attention to ``memory``
    (decoder layers only, unmasked), feed-forward."""

    def __init__(self, d: int, heads: int, ffn: int, cross_tracks: bool, decoder: bool):
        super().__init__()
        self.attn = nn.MultiheadAttention(d, heads, dropout=0.0)
        self.norm_time = nn.LayerNorm(d)
        self.norm_tracks = nn.LayerNorm(d)
        self.cross = nn.MultiheadAttention(d, heads, dropout=0.0) if decoder else None
        self.norm_cross = nn.LayerNorm(d) if decoder else None
        self.fc1 = nn.Linear(d, ffn)
        self.fc2 = nn.Linear(ffn, d)
        self.norm_ff = nn.LayerNorm(d)
        self.cross_tracks = cross_tracks

    def forward(self, x: Tensor, pad: Tensor, memory: Tensor | None = None) -> Tensor:
        x = self.norm_time(x + _attend(self.attn, x, x, pad))  # pad [N, T]
        if self.cross_tracks:
            xt = x.transpose(0, 1)  # [N, T, D]: tracks are the sequence, frames the batch
            x = self.norm_tracks(xt + _attend(self.attn, xt, xt, pad.t())).transpose(0, 1)
        if self.cross is not None:
            x = self.norm_cross(x + _attend(self.cross, x, memory, None))
        return self.norm_ff(x + _ffn(x, self.fc1, self.fc2))


class ReleaseMotionEncoder(nn.Module):
    """Per-point inputs ``[1, P, N, T]`` and invisibility ``[N, T]`` -> ``[N, motion_dim]``."""

    def __init__(self, cfg: ReleaseConfig):
        super().__init__()
        d = cfg.motion_dim
        self.conv1 = nn.Conv2d(cfg.point_channels(), 16, 1)
        self.conv2 = nn.Conv2d(16, d, 1)
        args = (d, cfg.motion_heads, cfg.motion_ffn, cfg.time_att)
        self.encoder = nn.ModuleList(MotionLayer(*args, False) for _ in range(cfg.motion_layers))
        self.encoder_norm = nn.LayerNorm(d)
        self.decoder = nn.ModuleList(MotionLayer(*args, True) for _ in range(cfg.motion_layers))
        self.decoder_norm = nn.LayerNorm(d)

    def forward(self, points: Tensor, invisible: Tensor) -> Tensor:
        x = F.relu(self.conv2(F.relu(self.conv1(points))))  # [1, D, N, T]
        x = x[0].permute(2, 1, 0)  # [T, N, D]
        pad = invisible.clone()
        pad[pad.all(dim=1), 0] = False  # a track never seen keeps its first step as a key
        memory = x
        for layer in self.encoder:
            memory = layer(memory, pad)
        memory = self.encoder_norm(memory)
        y = x
        for layer in self.decoder:
            y = layer(y, pad, memory)
        y = self.decoder_norm(y)
        return y.amax(dim=0)  # over every step, invisible ones included


class TracksDecoderBlock(nn.Module):
    """Post-norm block over tracks ``[N, 1, D]``: self-attention, cross-attention to memory
    (decoder blocks), feed-forward whose input may carry ``extra`` channels (DINO)."""

    def __init__(self, d: int, heads: int, ffn: int, extra: int, decoder: bool):
        super().__init__()
        self.attn = nn.MultiheadAttention(d, heads, dropout=0.0)
        self.norm_attn = nn.LayerNorm(d)
        self.cross = nn.MultiheadAttention(d, heads, dropout=0.0) if decoder else None
        self.norm_cross = nn.LayerNorm(d) if decoder else None
        self.fc1 = nn.Linear(d + extra, ffn)
        self.fc2 = nn.Linear(ffn, d)
        self.norm_ff = nn.LayerNorm(d)

    def forward(self, x: Tensor, memory: Tensor | None = None, extra: Tensor | None = None):
        x = self.norm_attn(x + _attend(self.attn, x, x, None))
        if self.cross is not None:
            x = self.norm_cross(x + _attend(self.cross, x, memory, None))
        h = x if extra is None else torch.cat([x, extra], dim=-1)
        return self.norm_ff(x + _ffn(h, self.fc1, self.fc2))


class ReleaseTracksDecoder(nn.Module):
    """``motion [N, decoder_in]`` (+ ``dino [N, C]`` for the feed-forward inputs) -> logits [N]."""

    def __init__(self, cfg: ReleaseConfig):
        super().__init__()
        d = cfg.dim
        extra = cfg.dino_dim if cfg.dino_in_decoder_ffn else 0
        self.embed = nn.Linear(cfg.decoder_in(), d)
        self.encoder = nn.ModuleList(
            TracksDecoderBlock(d, cfg.heads, cfg.ffn, extra, False) for _ in range(cfg.blocks)
        )
        self.decoder = nn.ModuleList(
            TracksDecoderBlock(d, cfg.heads, cfg.ffn, 0, True) for _ in range(cfg.blocks)
        )
        self.out = nn.Linear(d, 1)

    def forward(self, motion: Tensor, dino: Tensor | None) -> Tensor:
        x = self.embed(motion).unsqueeze(1)  # [N, 1, d]
        extra = None if dino is None else dino.unsqueeze(1)
        memory = x
        for blk in self.encoder:
            memory = blk(memory, extra=extra)
        y = x
        for blk in self.decoder:
            y = blk(y, memory)
        return self.out(y[:, 0]).squeeze(-1)


class ReleaseClassifier(nn.Module):
    """The release's classifier (see the module docstring). :meth:`forward` takes the
    release's batch and returns ``{'logit' [B, N], 'prob' [B, N], 'motion_feat' [B, D, N]}``."""

    def __init__(self, cfg: ReleaseConfig | None = None, **overrides: Any):
        super().__init__()
        if cfg is None:
            cfg = ReleaseConfig.from_dict(overrides)
        elif overrides:
            cfg = ReleaseConfig.from_dict({**cfg.to_dict(), **overrides})
        self.cfg = cfg
        self.motion = ReleaseMotionEncoder(cfg)
        self.head = ReleaseTracksDecoder(cfg)

    def point_inputs(self, clip: Mapping[str, Tensor]) -> Tensor:
        """The release's per-point inputs ``[1, P, N, T]`` of one clip (its ``augment_traj``)."""
        cfg = self.cfg
        traj, inv = clip["traj"][0], clip["mask"][0, 0]  # [2, N, T], [N, T]
        seen_next = 1.0 - inv[:, 1:]
        parts = []
        if cfg.tracks:
            disp = torch.zeros_like(traj)
            disp[:, :, :-1] = (traj[:, :, 1:] - traj[:, :, :-1]) * seen_next
            for v in (traj, disp):
                if cfg.pos_embed:
                    v = release_encoding(v.permute(1, 2, 0), cfg.num_freqs).permute(2, 0, 1)
                parts.append(v)
        if cfg.depth:
            if clip.get("track_depth") is not None:  # ours: depth already read per point
                d = clip["track_depth"][0, 0]
            else:
                # ``depth_traj`` (optional, [B, 2, N, T]): other coordinates for the lookup only
                at = clip["depth_traj"][0] if clip.get("depth_traj") is not None else traj
                d = nearest_lookup(clip["depth"][0, 0], at)  # [N, T]
            dd = torch.zeros_like(d)
            dd[:, :-1] = (d[:, 1:] - d[:, :-1]) * seen_next
            parts += [d[None], dd[None]]
        if cfg.extra_info:
            parts += [clip["visib_value"][0], clip["confi_value"][0]]
        if cfg.dino and not cfg.dino_later:
            dino = clip["dino"][0]  # [C, N, 1 or T]
            parts.append(dino.expand(-1, -1, traj.shape[-1]))
        return torch.cat(parts, dim=0)[None].to(traj.dtype)

    def forward_clip(self, clip: Mapping[str, Tensor]) -> dict[str, Tensor]:
        cfg = self.cfg
        inv = clip["mask"][0, 0] > 0.5  # [N, T]
        motion = self.motion(self.point_inputs(clip), inv)  # [N, D]
        dino = None
        if cfg.dino and cfg.dino_later:
            dino = clip["dino"][0, :, :, 0].t()  # [N, C]
        head_in = motion
        if dino is not None and not cfg.dino_woatt:
            head_in, dino = torch.cat([motion, dino], dim=-1), None
        logit = self.head(head_in, dino)
        prob = torch.sigmoid(logit)
        return {"logit": logit[None], "prob": prob[None], "motion_feat": motion.t()[None]}

    def forward(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        self._check(batch)
        B = batch["traj"].shape[0]
        outs = [
            self.forward_clip({k: v[b : b + 1] for k, v in batch.items() if torch.is_tensor(v)})
            for b in range(B)
        ]
        return {k: torch.cat([o[k] for o in outs]) for k in outs[0]}

    def forward_tracks(
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
        """Logits ``[B, N]`` from our padded batch (the shapes of
        :class:`~moseg.models.TrackClassifier`), so that ``train.py model=release`` trains
        this architecture: each clip's real tracks run alone, as in the release (padding gets
        logit 0); positions go in as ``x / W * 2 - 1``; ``depth [B, N, T]`` is the depth
        already sampled at each point; visibility enters as its 0/1 value; in a frame where no
        track is seen the most confident point is made visible (the release's rule)."""
        B, N, T, _ = tracks.shape
        if track_mask is None:
            track_mask = torch.ones(B, N, dtype=torch.bool, device=tracks.device)
        logits = tracks.new_zeros(B, N)
        for b in range(B):
            keep = track_mask[b].nonzero().squeeze(-1)
            if keep.numel() == 0:
                continue
            vis = visibility[b, keep].clone()  # [n, T]
            conf = confidence[b, keep].to(tracks.dtype)
            empty = ~vis.any(dim=0)
            if bool(empty.any()):
                best = conf.argmax(dim=0)
                cols = empty.nonzero().squeeze(-1)
                vis[best[cols], cols] = True
            wh = image_size[b].flip(-1).to(tracks.dtype)  # (W, H)
            traj = (tracks[b, keep] / wh * 2 - 1).clamp(-1, 1).permute(2, 0, 1)[None]
            clip = {"traj": traj, "mask": (~vis).to(tracks.dtype)[None, None]}
            d = depth[b, keep] if depth is not None else torch.zeros_like(conf)
            clip["track_depth"] = d.to(tracks.dtype)[None, None]
            clip["visib_value"] = vis.to(tracks.dtype)[None, None]
            clip["confi_value"] = conf[None, None]
            if self.cfg.dino:
                if features is None or features.shape[-1] != self.cfg.dino_dim:
                    got = None if features is None else features.shape[-1]
                    raise ValueError(
                        f"the release architecture needs {self.cfg.dino_dim}-d features, got "
                        f"{got} (data with features=dinov2, or model.net.dino=false)"
                    )
                clip["dino"] = features[b, keep].to(tracks.dtype).t()[None, :, :, None]
            logits[b, keep] = self.forward_clip(clip)["logit"][0]
        return logits

    def _check(self, batch: Mapping[str, Tensor]) -> None:
        cfg = self.cfg
        need = ["traj", "mask"]
        need += ["depth"] if cfg.depth and batch.get("track_depth") is None else []
        need += ["visib_value", "confi_value"] if cfg.extra_info else []
        need += ["dino"] if cfg.dino else []
        missing = [k for k in need if batch.get(k) is None]
        if missing:
            raise ValueError(f"the release classifier needs batch entries {missing}")
        traj = batch["traj"]
        if traj.ndim != 4 or traj.shape[1] != 2:
            raise ValueError(f"traj must be [B, 2, N, T], got {tuple(traj.shape)}")
        if cfg.dino and batch["dino"].shape[1] != cfg.dino_dim:
            raise ValueError(
                f"dino has {batch['dino'].shape[1]} channels, the release classifier expects "
                f"{cfg.dino_dim} (DINOv2 ViT-B/14 keys: preprocess with features=dinov2)"
            )


# ----------------------------------------------------------------------------------------------
# The release's state-dict names <-> ours
# ----------------------------------------------------------------------------------------------
_TF = "joint_encoder.transformer_model"
# release module name -> ours, per layer kind (the one table both directions are made from)
_MOTION_ENC = {"self_attn": "attn", "linear1": "fc1", "linear2": "fc2"}
_MOTION_ENC |= {"norm1": "norm_time", "norm3": "norm_tracks", "norm2": "norm_ff"}
_MOTION_DEC = {**_MOTION_ENC, "multihead_attn": "cross", "norm4": "norm_tracks"}
_MOTION_DEC |= {"norm2": "norm_cross", "norm3": "norm_ff"}
_HEAD_ENC = {"attention": "attn", "ffn.0": "fc1", "ffn.2": "fc2", "norm1": "norm_attn"}
_HEAD_ENC |= {"norm2": "norm_ff"}
_HEAD_DEC = {"self_attention": "attn", "cross_attention": "cross", "ffn.0": "fc1", "ffn.2": "fc2"}
_HEAD_DEC |= {"norm1": "norm_attn", "norm2": "norm_cross", "norm3": "norm_ff"}


def module_names(cfg: ReleaseConfig | None = None) -> dict[str, str]:
    """Release module name -> ours, for every module holding parameters."""
    cfg = cfg or ReleaseConfig()
    names = {
        "joint_encoder.input_fc1": "motion.conv1",
        "joint_encoder.fc2": "motion.conv2",
        f"{_TF}.encoder.norm": "motion.encoder_norm",
        f"{_TF}.decoder.norm": "motion.decoder_norm",
        "decoder.embedding.embedding": "head.embed",
        "decoder.output_layer": "head.out",
    }
    groups = (
        (f"{_TF}.encoder.layers", "motion.encoder", _MOTION_ENC, cfg.motion_layers),
        (f"{_TF}.decoder.layers", "motion.decoder", _MOTION_DEC, cfg.motion_layers),
        ("decoder.encoders", "head.encoder", _HEAD_ENC, cfg.blocks),
        ("decoder.decoders", "head.decoder", _HEAD_DEC, cfg.blocks),
    )
    for theirs, ours, table, count in groups:
        for i in range(count):
            names |= {f"{theirs}.{i}.{a}": f"{ours}.{i}.{b}" for a, b in table.items()}
    return names


def _rename(key: str, names: dict[str, str]) -> str | None:
    parts = key.split(".")
    for cut in range(len(parts) - 1, 0, -1):  # the longest module prefix that is known
        head = ".".join(parts[:cut])
        if head in names:
            return ".".join([names[head], *parts[cut:]])
    return None


def rename_release_key(key: str, cfg: ReleaseConfig | None = None) -> str | None:
    """Our parameter name for a release state-dict key (None: a key we do not know)."""
    return _rename(key, module_names(cfg))


def release_key(key: str, cfg: ReleaseConfig | None = None) -> str:
    """The release's state-dict name of one of our parameter names."""
    inverse = {b: a for a, b in module_names(cfg).items()}
    new = _rename(key, inverse)
    if new is None:
        raise KeyError(f"{key} has no release name")
    return new


def release_state_dict(net: ReleaseClassifier) -> dict[str, Tensor]:
    """``net``'s weights under the release's names (what its ``load_state_dict`` takes)."""
    return {release_key(k, net.cfg): v.detach().clone() for k, v in net.state_dict().items()}


def is_release_state_dict(state: Mapping[str, Any]) -> bool:
    """True when ``state`` looks like the release network's state dict."""
    keys = [k for k in state if isinstance(k, str)]
    return any(k.startswith("joint_encoder.") for k in keys) and any(
        k.startswith("decoder.") for k in keys
    )


def config_from_release_state(state: Mapping[str, Tensor], **flags: Any) -> ReleaseConfig:
    """The :class:`ReleaseConfig` of a release state dict: the released flags unless ``flags``
    say otherwise, checked against the weights' shapes (the input width, where DINO enters)."""
    cfg = ReleaseConfig.from_dict(flags)
    w = state.get("joint_encoder.input_fc1.weight")
    if w is not None and w.shape[1] != cfg.point_channels():
        raise ValueError(
            f"the checkpoint's motion encoder takes {w.shape[1]} input channels, the release "
            f"model with flags {_flag_text(cfg)} takes {cfg.point_channels()}: pass the flags it "
            "was trained with (model.release.* / --flag)"
        )
    e = state.get("decoder.embedding.embedding.weight")
    if e is not None and e.shape[1] != cfg.decoder_in():
        raise ValueError(
            f"the checkpoint's tracks decoder takes {e.shape[1]} channels, flags "
            f"{_flag_text(cfg)} give {cfg.decoder_in()} (dino_woatt?)"
        )
    f = state.get("decoder.encoders.0.ffn.0.weight")
    extra = cfg.dino_dim if cfg.dino_in_decoder_ffn else 0
    if f is not None and f.shape[1] != cfg.dim + extra:
        raise ValueError(
            f"the checkpoint's decoder feed-forward takes {f.shape[1]} channels, flags "
            f"{_flag_text(cfg)} give {cfg.dim + extra} (dino / dino_later / dino_woatt?)"
        )
    return cfg


def _flag_text(cfg: ReleaseConfig) -> str:
    names = ("tracks", "depth", "extra_info", "pos_embed", "dino", "dino_later", "dino_woatt")
    return ", ".join(f"{n}={getattr(cfg, n)}" for n in names)


def load_release_state(
    net: ReleaseClassifier, state: Mapping[str, Tensor], where: str = "checkpoint"
) -> ReleaseClassifier:
    """Load a release state dict into ``net``: every key must map to one of ours and every one
    of ours must be given, else a ValueError lists the missing and unexpected keys."""
    ours = net.state_dict()
    renamed: dict[str, Tensor] = {}
    unexpected = []
    for k, v in state.items():
        new = rename_release_key(k, net.cfg)
        if new is None or new not in ours:
            unexpected.append(k)
        else:
            renamed[new] = v
    missing = sorted(release_key(k, net.cfg) for k in ours if k not in renamed)
    if missing or unexpected:
        raise ValueError(
            f"{where}: the release state dict does not fit the release model: "
            f"missing {missing[:20]}"
            f"{' ...' if len(missing) > 20 else ''} ({len(missing)}), "
            f"unexpected {unexpected[:20]}{' ...' if len(unexpected) > 20 else ''} "
            f"({len(unexpected)})"
        )
    bad = [k for k, v in renamed.items() if tuple(v.shape) != tuple(ours[k].shape)]
    if bad:
        raise ValueError(
            f"{where}: shapes differ from the release model for "
            + ", ".join(f"{k} {tuple(renamed[k].shape)} vs {tuple(ours[k].shape)}" for k in bad)
        )
    net.load_state_dict({k: v.float() for k, v in renamed.items()})
    return net
