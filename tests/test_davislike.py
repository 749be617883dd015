"""DAVIS-like extras of the synthetic videos (moseg/datasets/davislike.py): a followed subject
stays put in the image while the background flows, limbs are moving parts of their body, water
and spray churn but are never masked, real textures come from a DAVIS-layout folder, and clips stay
deterministic and resumable."""

import cv2
import numpy as np
import pytest

from moseg.datasets.davislike import Extras, TexturePool, add_extras, follow
from moseg.datasets.synthetic import SynthConfig, build_scene, render
from moseg.datasets.synthetic_video import generate, make_clip, moving_masks
from tests.test_synthetic_video import SMALL as VIDEO_SMALL

# the small scenes of test_synthetic_video, a little larger, and always with a panning camera
SMALL = {
    **VIDEO_SMALL,
    "height": 96,
    "width": 160,
    "num_frames": 10,
    "object_px": [24.0, 40.0],
    "object_speed_px": [2.0, 4.0],
    "camera_static_prob": 0.0,
    "max_pan_deg": 20.0,
}
CFG = SynthConfig.from_dict({**SMALL, "num_tracks": 1, "feature_dim": 0})


def _scene(seed):
    return build_scene(np.random.default_rng(seed), CFG)


def _image_centre(scene, idx):
    """Image position [T, 2] of layer ``idx``'s texture centre."""
    layer = scene.layers[idx]
    h, w = layer.texture.shape[-3:-1]
    H = layer.homographies(scene.cam)
    p = H @ np.array([(w - 1) / 2, (h - 1) / 2, 1.0])
    return p[:, :2] / p[:, 2:]


def test_extras_validate_their_settings():
    with pytest.raises(ValueError, match="unknown synthetic_video extras"):
        Extras.from_dict({"folow_prob": 0.5})
    with pytest.raises(ValueError, match=r"water_prob must lie in \[0, 1\]"):
        Extras.from_dict({"water_prob": 1.5})
    with pytest.raises(ValueError, match="limbs: low 3 is above high 1"):
        Extras.from_dict({"limbs": [3, 1]})
    with pytest.raises(ValueError, match="needs extras.texture_root"):
        Extras.from_dict({"real_background_prob": 0.5})
    ex = Extras.from_dict({"limbs": [1, 2], "follow_prob": 1})
    assert ex.limbs == (1, 2) and ex.to_dict()["limbs"] == [1, 2]


def test_followed_object_stays_put_while_the_background_flows():
    scene = _scene(4)
    moving = [i for i, m in enumerate(scene.object_moving) if m]
    before = np.abs(np.diff(_image_centre(scene, moving[0]), axis=0)).sum(1).mean()
    ex = Extras(follow_speed_px=(0.0, 0.0), follow_size_px=(40.0, 40.0), follow_wobble_px=(0, 0))
    follow(scene, np.random.default_rng(0), moving[0], ex, (CFG.height, CFG.width))
    xy = _image_centre(scene, moving[0])
    step = np.abs(np.diff(xy, axis=0)).sum(1)
    # no drift and no sway asked: it stands still in the image, though it moved before
    assert step.max() < 0.2 and before > 1.0
    # the background does move in the image (the camera pans): the object moves in the world
    bg = _image_centre(scene, 0)
    assert np.abs(np.diff(bg, axis=0)).sum(1).mean() > 1.0
    r = render(scene, CFG.height, CFG.width)
    assert (r.ids == moving[0]).any(axis=(1, 2)).all()  # seen in every frame


def test_limbs_move_against_their_body_and_are_masked_with_it():
    scene = _scene(5)
    n = len(scene.layers)
    ex = Extras(limb_prob=1.0, limbs=(2, 2), limb_swing_deg=(40.0, 40.0), limb_cycles=(2.0, 2.0))
    info = add_extras(scene, np.random.default_rng(1), ex, (CFG.height, CFG.width))
    body = next(i for i in range(1, n) if scene.object_moving[i])
    limbs = list(range(n, len(scene.layers)))
    assert info["limbs"] == len(limbs) >= 2
    assert all(scene.layers[i].moving and scene.layers[i].cls for i in limbs)
    # a limb's far end moves relative to the body: its path differs from the body's
    rel = _image_centre(scene, limbs[0]) - _image_centre(scene, body)
    assert np.ptp(rel, axis=0).max() > 2.0
    r = render(scene, CFG.height, CFG.width)
    masks = moving_masks(r.ids, scene.object_moving)
    seen = set(np.unique(r.ids).tolist())
    assert {i for i in limbs if i in seen} <= set(np.unique(masks).tolist())


def test_water_and_spray_churn_but_are_never_masked():
    scene = _scene(6)
    n = len(scene.layers)
    ex = Extras(water_prob=1.0, spray_prob=1.0, spray_puffs=(2, 2), water_px=(80.0, 80.0))
    info = add_extras(scene, np.random.default_rng(2), ex, (CFG.height, CFG.width))
    assert info["water"] == 1 and info["spray"] >= 1
    extra = scene.layers[n:]
    assert extra and not any(layer.moving for layer in extra)
    for layer in extra:
        tex = layer.texture
        assert tex.ndim == 4 and tex.shape[0] == CFG.num_frames
        # the texture changes from frame to frame (what makes it hard to track)
        assert np.abs(tex[1, ..., :3].astype(int) - tex[0, ..., :3].astype(int)).mean() > 5
        # the layer itself stays put in the world
        assert np.allclose(layer.M, layer.M[:1])
    r = render(scene, CFG.height, CFG.width)
    ids_extra = set(range(n, len(scene.layers)))
    assert ids_extra & set(np.unique(r.ids).tolist())  # some of it is seen
    masks = moving_masks(r.ids, scene.object_moving)
    assert not (set(np.unique(masks).tolist()) & ids_extra)


def _davis_folder(root, frames=3):
    rng = np.random.default_rng(0)
    for t in range(frames):
        img_dir = root / "JPEGImages" / "480p" / "seq"
        ann_dir = root / "Annotations" / "480p" / "seq"
        img_dir.mkdir(parents=True, exist_ok=True)
        ann_dir.mkdir(parents=True, exist_ok=True)
        img = rng.integers(0, 255, (120, 200, 3), dtype=np.uint8)
        cv2.imwrite(str(img_dir / f"{t:05d}.jpg"), img)
        m = np.zeros((120, 200), np.uint8)
        m[30:90, 50:150] = 255
        cv2.imwrite(str(ann_dir / f"{t:05d}.png"), m)
    return root


def test_texture_pool_crops_and_cuts_out_real_objects(tmp_path):
    with pytest.raises(FileNotFoundError, match="JPEGImages"):
        TexturePool(tmp_path / "nothing")
    pool = TexturePool(_davis_folder(tmp_path / "davis"))
    rng = np.random.default_rng(0)
    crop = pool.crop(rng, 300, 500)
    assert crop.shape == (300, 500, 3) and crop.dtype == np.uint8
    cut = pool.cutout(rng, max_side=50)
    assert cut.shape == (30, 50, 4)  # the 60 x 100 masked box, scaled to a side of 50
    assert set(np.unique(cut[..., 3]).tolist()) == {255}


@pytest.mark.slow
def test_clips_with_extras_are_deterministic_and_stamped(tmp_path):
    root = _davis_folder(tmp_path / "davis")
    extras = dict(
        follow_prob=1.0,
        limb_prob=1.0,
        water_prob=1.0,
        spray_prob=1.0,
        texture_root=str(root),
        real_background_prob=1.0,
        real_object_prob=1.0,
    )
    ex = Extras.from_dict(extras)
    pool = TexturePool(root)
    a = make_clip(CFG, 3, 0, ex, pool)
    b = make_clip(CFG, 3, 0, ex, pool)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[2]["followed"] == 1 and a[2]["real_textures"] >= 2
    plain = make_clip(CFG, 3, 0)
    assert "followed" not in plain[2] and not np.array_equal(plain[0], a[0])
    raw = tmp_path / "raw"
    assert generate(raw, 1, SMALL, seed=3, progress=False, extras=extras)["written"] == 1
    with pytest.raises(ValueError, match="other settings"):
        generate(raw, 1, SMALL, seed=3, progress=False)  # a folder made with extras
