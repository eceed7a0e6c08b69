from __future__ import annotations

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from autodata.data import DeviceLoader, crop_flip, from_tensors, load_digits, make_dataloader, sample_crop_flip

N, C, H, W = 64, 3, 8, 8


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randint(1, 256, (N, C, H, W), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def _raw(loader: DeviceLoader) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x, y) for x, y in loader]


def test_shapes_dtypes_and_len(images: torch.Tensor) -> None:
    loader = DeviceLoader(images, torch.arange(N), 10, mean=(0.5,) * 3, std=(0.2,) * 3)
    batches = _raw(loader)
    assert len(loader) == len(batches) == 7
    assert [x.shape[0] for x, _ in batches] == [10] * 6 + [4]
    x, y = batches[0]
    assert x.dtype == torch.float32 and x.shape == (10, C, H, W) and y.dtype == torch.int64
    dropped = DeviceLoader(images, torch.arange(N), 10, drop_last=True)
    assert len(dropped) == len(_raw(dropped)) == 6
    cl = next(iter(DeviceLoader(images, torch.arange(N), 8, channels_last=True)))[0]
    assert cl.is_contiguous(memory_format=torch.channels_last)


def test_normalisation_without_augmentation(images: torch.Tensor) -> None:
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 0.2)
    loader = DeviceLoader(images, torch.arange(N), N, mean=mean, std=std, crop_padding=0, flip=False, shuffle=False)
    x, y = next(iter(loader))
    expected = (images.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    torch.testing.assert_close(x, expected, atol=1e-5, rtol=1e-5)
    assert y.tolist() == list(range(N))


def test_crops_are_shifted_windows_of_the_padded_image(images: torch.Tensor) -> None:
    p = 2
    loader = DeviceLoader(images, torch.arange(N), 16, crop_padding=p, seed=1)
    padded = torch.nn.functional.pad(images, (p, p, p, p))  # (N, C, H+2p, W+2p)
    shifts = set()
    for x, y in loader:
        out = (x * 255).round().to(torch.uint8)
        for img, i in zip(out, y.tolist()):
            matches = [
                (t, l, f)
                for t in range(2 * p + 1)
                for l in range(2 * p + 1)
                for f in (False, True)
                if torch.equal(img, (lambda w: w.flip(-1) if f else w)(padded[i, :, t : t + H, l : l + W]))
            ]
            assert matches, f"sample {i} is not a window of its padded image"
            shifts.add(matches[0][:2])
    assert len(shifts) > 10  # offsets actually vary


def test_crop_flip_matches_torchvision(images: torch.Tensor) -> None:
    top, left, flips = sample_crop_flip(N, 4, True, torch.Generator().manual_seed(0))
    ours = crop_flip(images, top, left, flips, padding=4)
    for b in range(N):
        ref = TF.crop(TF.pad(images[b], [4]), int(top[b]), int(left[b]), H, W)
        ref = TF.horizontal_flip(ref) if flips[b] else ref
        assert torch.equal(ours[b], ref)


def test_flips_happen_about_half_the_time() -> None:
    ramp = torch.arange(W, dtype=torch.uint8).expand(2000, 1, H, W).contiguous()  # asymmetric
    loader = DeviceLoader(ramp, torch.arange(2000), 500, crop_padding=0, flip=True, seed=0)
    flipped = torch.cat([x[:, 0, 0, 0] > x[:, 0, 0, -1] for x, _ in loader])
    assert 0.45 < flipped.float().mean().item() < 0.55
    none = DeviceLoader(ramp, torch.arange(2000), 500, crop_padding=0, flip=False)
    assert not torch.cat([x[:, 0, 0, 0] > x[:, 0, 0, -1] for x, _ in none]).any()


def test_determinism_given_seed(images: torch.Tensor) -> None:
    a = _raw(DeviceLoader(images, torch.arange(N), 16, seed=5))
    b = _raw(DeviceLoader(images, torch.arange(N), 16, seed=5))
    c = _raw(DeviceLoader(images, torch.arange(N), 16, seed=6))
    assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))
    assert not all(torch.equal(ya, yc) for (_, ya), (_, yc) in zip(a, c))


def test_epoch_covers_every_index_once(images: torch.Tensor) -> None:
    loader = DeviceLoader(images, torch.arange(N), 10, seed=0)
    first = torch.cat([y for _, y in loader])
    second = torch.cat([y for _, y in loader])
    assert sorted(first.tolist()) == list(range(N)) == sorted(second.tolist())
    assert not torch.equal(first, second)  # reshuffled each epoch
    ordered = torch.cat([y for _, y in DeviceLoader(images, torch.arange(N), 10, shuffle=False)])
    assert ordered.tolist() == list(range(N))


def test_from_dataset_uses_dataset_stats() -> None:
    ds = load_digits()
    loader = DeviceLoader.from_dataset(ds, 2000, crop_padding=0, flip=False, shuffle=False)
    x, _ = next(iter(loader))
    assert abs(x.mean().item()) < 0.01 and abs(x.std().item() - 1) < 0.01


def test_bad_arguments(images: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="uint8"):
        DeviceLoader(images.float(), torch.arange(N), 8)
    with pytest.raises(ValueError, match="labels must have shape"):
        DeviceLoader(images, torch.arange(N - 1), 8)
    with pytest.raises(ValueError, match="3 entries"):
        DeviceLoader(images, torch.arange(N), 8, mean=(0.5,), std=(0.5,))
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        DeviceLoader(images, torch.arange(N), 0)


def test_make_dataloader_pipeline(images: torch.Tensor) -> None:
    ds = from_tensors(images, torch.arange(N) % 10, name="cifar10")
    loader = make_dataloader(ds, 16, num_workers=0, seed=0)
    x, y = next(iter(loader))
    assert x.shape == (16, C, H, W) and x.dtype == torch.float32 and y.dtype == torch.int64
    plain = make_dataloader(ds, N, crop_padding=0, flip=False, shuffle=False, num_workers=0, mean=(0,) * 3, std=(1,) * 3)
    x, _ = next(iter(plain))
    torch.testing.assert_close(x, images.float() / 255)
