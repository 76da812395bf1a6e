"""The mouth painter of the warp generator: shapes, compose, items, training, checkpoints, resume."""

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from coursekit.checkpoint import load_checkpoint
from coursekit.data.dataset import load_index
from coursekit.face import template
from coursekit.models.painter import Painter, PainterConfig, compose, paint_mask
from coursekit.train.common import read_csv_log
from coursekit.train.painter import (
    PainterFrames,
    PainterTrainConfig,
    painter_loss,
    painter_trainer,
    train_painter,
)

CFG64 = PainterConfig.tiny(image_size=64, window=32)


def _cfg(steps: int, **kw) -> PainterTrainConfig:
    return PainterTrainConfig.tiny(max_steps=steps, **kw)


def _open_mouth(size: int = 64) -> np.ndarray:
    face = template(size).copy()
    face[[65, 66, 67], 1] += 0.06 * size  # lower inner lip down: the lips part
    return face


def test_shapes_compose_and_mask():
    torch.manual_seed(0)
    model = Painter(CFG64).eval()
    for p in model.head.parameters():  # a head that paints something
        torch.nn.init.normal_(p, std=0.5)
    warped = torch.rand(3, 3, 64, 64) * 2 - 1
    mask = torch.from_numpy(np.stack([paint_mask(_open_mouth(), (64, 64), CFG64)] * 3))[:, None]
    mask[2] = 0  # closed lips: nothing to paint
    rgb, alpha = model(warped, mask, warped.flip(-1))
    assert rgb.shape == (3, 3, 64, 64) and alpha.shape == (3, 1, 64, 64)
    assert rgb.min() >= -1 and rgb.max() <= 1 and alpha.min() >= 0 and alpha.max() <= 1
    out = compose(warped, mask, rgb, alpha)
    outside = (mask == 0).expand_as(out)
    assert torch.equal(out[outside], warped[outside])
    assert (out - warped).abs().amax() > 0.01  # it paints inside
    assert torch.equal(out[2], warped[2])
    with pytest.raises(ValueError, match="Painter"):
        model(warped, mask[:, :, :32], warped)
    closed = template(64).copy()
    closed[[67, 66, 65]] = closed[[61, 62, 63]]
    assert paint_mask(closed, (64, 64), CFG64).max() == 0
    assert PainterConfig.tiny().image_size == PainterConfig.paper().image_size == 112
    with pytest.raises(ValueError, match="window"):
        PainterConfig(window=60)


def test_items_are_replayed_by_epoch(processed64):
    clips = load_index(processed64)[:3]
    data = PainterFrames(clips, _cfg(1), CFG64)
    item = data[5]
    assert {k: tuple(v.shape) for k, v in item.items()} == {
        "warped": (3, 64, 64), "identity": (3, 64, 64), "target": (3, 64, 64),
        "mask": (1, 64, 64), "region": (1, 64, 64)}
    assert item["mask"].max() > 0 and (item["region"] >= item["mask"] * 0.5).all()
    torch.testing.assert_close(data[5]["warped"], item["warped"])
    data.set_epoch(1)
    assert not torch.equal(data[5]["target"], item["target"])
    plain = PainterFrames(clips, _cfg(1), CFG64, augment=False)[5]
    c, t = (int(v) for v in data.items[5])
    frame = np.load(f"{clips[c]['path']}/frames.npy")[t]
    torch.testing.assert_close(plain["target"], torch.from_numpy(frame).permute(2, 0, 1).float()
                               / 127.5 - 1)


def test_training_reduces_the_loss_and_round_trips(processed64, tmp_path):
    clips = load_index(processed64)
    out = train_painter(clips, tmp_path / "painter.pt", CFG64, _cfg(60), progress=False,
                        meta={"note": "test"})
    rows = read_csv_log(tmp_path / "painter" / "log.csv")
    assert len(rows) == 60 and {"mouth", "face", "edge"} <= set(rows[0])
    first = np.mean([r["loss"] for r in rows[:10]])
    last = np.mean([r["loss"] for r in rows[-10:]])
    assert last < 0.9 * first, (first, last)
    loaded = load_checkpoint(out, kind="painter")
    data = PainterFrames(clips, _cfg(1), CFG64)
    batch = default_collate([data[i] for i in range(0, len(data), len(data) // 48)])
    with torch.no_grad():
        painted = compose(batch["warped"], batch["mask"],
                          *loaded.model(batch["warped"], batch["mask"], batch["identity"]))
    warp_only = painter_loss(batch["warped"], batch["target"], batch["region"])[1]["mouth"]
    assert painter_loss(painted, batch["target"], batch["region"])[1]["mouth"] < 0.9 * warp_only
    assert isinstance(loaded.model, Painter) and loaded.config == CFG64
    assert loaded.meta["note"] == "test" and loaded.meta["steps"] == 60
    last_pt = load_checkpoint(tmp_path / "painter" / "last.pt", kind="painter").model
    batch = PainterFrames(clips[:1], _cfg(1), CFG64)[0]
    args = [batch[k][None] for k in ("warped", "mask", "identity")]
    with torch.no_grad():
        for a, b in zip(loaded.model(*args), last_pt(*args)):
            torch.testing.assert_close(a, b)
        same = painter_loss(batch["target"][None], batch["target"][None], batch["region"][None])
    assert float(same[0]) == 0.0


def test_resume_is_exact(processed64, tmp_path):
    clips = load_index(processed64)[:4]

    def run(folder, steps, resume=False):
        torch.manual_seed(123)  # the model's initial weights come from the trainer's seed
        trainer = painter_trainer(clips, tmp_path / folder, CFG64, _cfg(steps, ckpt_every=3),
                                  progress=False)
        trainer.fit(resume=resume)
        return trainer.model.state_dict()

    whole = run("whole", 6)
    run("split", 3)
    resumed = run("split", 6, resume=True)
    for k in whole:
        torch.testing.assert_close(resumed[k], whole[k], atol=1e-6, rtol=0)
