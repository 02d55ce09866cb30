import numpy as np
import pytest
import torch

from hwnas.data import EpochLoader, Preprocess, open_dataset, search_split, split, train_val
from hwnas.errors import HwnasError
from tests.fake_data import write_cifar, write_folder, write_tiny_imagenet


def read_all(pool):
    batch = pool.__getitems__(list(range(len(pool))))
    return batch.images, batch.labels


def test_digits():
    pools = open_dataset("digits", (3, 32, 32))
    assert len(pools.train) == 1437 and len(pools.test) == 360 and pools.classes == [str(i) for i in range(10)]
    images, labels = read_all(pools.train)
    assert images.shape == (1437, 1, 8, 8) and images.dtype == torch.uint8 and images.max() == 255
    _, test_labels = read_all(pools.test)
    assert (labels.bincount() + test_labels.bincount()).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    assert set(pools.train.index.tolist()).isdisjoint(pools.test.index.tolist())


def test_digits_are_scikit_learns_load_digits():
    from hwnas.data.sources import digits_arrays

    pixels, labels = digits_arrays()
    from sklearn.datasets import load_digits

    digits = load_digits()
    assert np.array_equal(pixels, digits.images) and np.array_equal(labels, digits.target)


def test_fonts_hold_out_whole_typefaces_and_render_the_same_every_time():
    from hwnas.data import fonts

    pools = open_dataset("fonts", (1, 16, 16))
    assert pools.classes == list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabdefghnqrt")  # EMNIST Balanced's 47
    assert not set(fonts.TRAIN_FACES) & set(fonts.TEST_FACES) and len(pools.test) >= 5000
    images, labels = read_all(pools.train)
    test_images, test_labels = read_all(pools.test)
    assert images.shape == (17 * 62 * 12, 1, 16, 16) and images.dtype == torch.uint8
    per_class = [2 if c.lower() in fonts.MERGED else 1 for c in pools.classes]  # O holds o, C holds c, ...
    assert labels.bincount().tolist() == [17 * 12 * n for n in per_class]
    assert test_labels.bincount().tolist() == [5 * 20 * n for n in per_class]
    ink = images.flatten(1).float().mean(1)
    assert ink.min() > 2 and (images.flatten(1).amax(1) == 255).all()  # a visible character, at full contrast
    again, _ = fonts.render(fonts.TEST_FACES[:1], fonts.TEST_VARIANTS, fonts.TEST_SEED)
    assert torch.equal(again, test_images[: len(again)])


def test_digits_test_pool_is_the_same_for_every_seed():
    first, other = open_dataset("digits", (1, 8, 8), seed=0), open_dataset("digits", (1, 8, 8), seed=5)
    assert torch.equal(first.test.index, other.test.index) and torch.equal(first.train.index, other.train.index)
    train, val = train_val(first.train, first.test, 0.1, seed=0)
    assert (len(train), len(val)) == (1437, 360) and torch.equal(val.index, first.test.index)


def test_digits_upsampled_on_device():
    pools = open_dataset("digits", (3, 32, 32))
    x = Preprocess((3, 32, 32), pools.mean, pools.std)(pools.train.__getitems__([0, 1]), torch.device("cpu"))
    assert x.shape == (2, 3, 32, 32) and torch.equal(x[:, 0], x[:, 2])


@pytest.mark.parametrize("hundred", [False, True])
def test_cifar_pickles(tmp_path, hundred):
    write_cifar(tmp_path, hundred=hundred)
    pools = open_dataset(f"cifar{100 if hundred else 10}:{tmp_path}", (3, 32, 32))
    assert len(pools.train) == (6 if hundred else 30) and len(pools.test) == 6
    images, labels = read_all(pools.train)
    assert images.shape[1:] == (3, 32, 32) and labels.max() < 10
    assert pools.classes[1] == ("c01" if hundred else "class1")


def test_cifar_pixels_keep_their_layout(tmp_path):
    root = write_cifar(tmp_path)
    import pickle

    with open(root / "data_batch_1", "rb") as f:
        raw = pickle.load(f)[b"data"][0]
    images, _ = read_all(open_dataset(f"cifar10:{tmp_path}", (3, 32, 32)).train)
    assert images[0, 1, 2, 3] == raw[1024 + 2 * 32 + 3]  # channel-major rows of 32


def test_cifar_missing_files(tmp_path):
    (tmp_path / "data_batch_1").write_bytes(b"x")
    with pytest.raises(HwnasError, match=r"not a CIFAR-10 python directory; expected files data_batch_1.*missing"):
        open_dataset(f"cifar10:{tmp_path}", (3, 32, 32))


def test_cifar_garbage_file(tmp_path):
    write_cifar(tmp_path)
    (tmp_path / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(HwnasError, match="data_batch_3: not a CIFAR python-pickle batch"):
        open_dataset(f"cifar10:{tmp_path}", (3, 32, 32))


def test_image_folder(tmp_path):
    write_folder(tmp_path, ["b_cat", "a_dog", "c_eel"])
    pools = open_dataset(f"folder:{tmp_path}", (3, 8, 8))
    assert pools.classes == ["a_dog", "b_cat", "c_eel"] and pools.test is None
    images, labels = read_all(pools.train)
    assert images.shape == (9, 3, 8, 8) and labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert images[3, 0, 4, 4] == 0 and images[4, 0, 4, 4] == 1  # b_cat holds the values 0, 1, 2


def test_image_folder_with_train_and_val(tmp_path):
    write_folder(tmp_path / "train", ["x", "y"])
    write_folder(tmp_path / "val", ["x", "y"], per_class=1)
    pools = open_dataset(f"folder:{tmp_path}", (1, 6, 6))
    assert len(pools.train) == 6 and len(pools.test) == 2
    assert read_all(pools.test)[0].shape == (2, 1, 6, 6)


def test_class_subset_by_count_and_file(tmp_path):
    write_folder(tmp_path, ["n03", "n01", "n02", "n04"])
    pools = open_dataset(f"folder:{tmp_path}", (3, 8, 8), classes="2")
    assert pools.classes == ["n01", "n02"] and read_all(pools.train)[1].tolist() == [0, 0, 0, 1, 1, 1]
    listing = tmp_path / "keep.txt"
    listing.write_text("n04\nn02\n")
    pools = open_dataset(f"folder:{tmp_path}", (3, 8, 8), classes=str(listing))
    _, labels = read_all(pools.train)
    assert pools.classes == ["n04", "n02"] and labels.tolist() == [1, 1, 1, 0, 0, 0]
    listing.write_text("n09\n")
    with pytest.raises(HwnasError, match="class 'n09' is not in the dataset"):
        open_dataset(f"folder:{tmp_path}", (3, 8, 8), classes=str(listing))
    with pytest.raises(HwnasError, match=r"expected a number in 1..4"):
        open_dataset(f"folder:{tmp_path}", (3, 8, 8), classes="9")


def test_tiny_imagenet(tmp_path):
    write_tiny_imagenet(tmp_path, ["n02", "n01"])
    pools = open_dataset(f"tiny-imagenet:{tmp_path}", (3, 64, 64))
    assert pools.classes == ["n01", "n02"] and len(pools.train) == len(pools.test) == 4
    images, labels = read_all(pools.test)
    assert labels.tolist() == [1, 1, 0, 0]  # val_0_* belong to n02, the second class in sorted order
    assert abs(int(images[0, 2, 5, 5]) - 0) < 8 and abs(int(images[2, 2, 5, 5]) - 50) < 8  # JPEG is lossy


def test_tiny_imagenet_bad_annotations(tmp_path):
    root = write_tiny_imagenet(tmp_path, ["n01"])
    (root / "val" / "val_annotations.txt").write_text("val_0_0.JPEG\tn99\n")
    with pytest.raises(HwnasError, match=r"val_annotations.txt:1: expected 'FILE<TAB>WNID...'"):
        open_dataset(f"tiny-imagenet:{tmp_path}", (3, 64, 64))


def test_synthetic():
    pools = open_dataset("synthetic", (3, 16, 16), classes="7")
    assert len(pools.classes) == 7 and read_all(pools.train)[0].shape == (1024, 3, 16, 16)


@pytest.mark.parametrize(
    "spec,match",
    [
        ("imagenet", "unknown dataset; expected one of digits"),
        ("cifar10", "unknown dataset"),
        ("cifar10:/no/such/dir", "/no/such/dir is not a directory"),
        ("tiny-imagenet:{tmp}", "not a tiny-imagenet-200 directory; expected train/<wnid>/images"),
        ("folder:{tmp}", "no class folders found; expected one sub-folder of images per class"),
    ],
)
def test_bad_data_specs(tmp_path, spec, match):
    with pytest.raises(HwnasError, match=match) as info:
        open_dataset(spec.format(tmp=tmp_path), (3, 8, 8))
    assert "\n" not in str(info.value)


def test_splits_are_deterministic_and_disjoint():
    pool = open_dataset("digits", (1, 8, 8)).train
    a, b = split(pool, 0.8, seed=3)
    a2, _ = split(pool, 0.8, seed=3)
    assert torch.equal(a.index, a2.index) and len(a) == round(1437 * 0.8)
    assert set(a.index.tolist()).isdisjoint(b.index.tolist()) and len(a) + len(b) == 1437
    w, arch = search_split(a, 0.5, seed=3)
    assert len(w) == len(arch) == len(a) // 2 and set(w.index.tolist()) | set(arch.index.tolist()) == set(
        a.index.tolist()
    )
    _, val = train_val(pool, None, 0.1, seed=0)
    assert len(val) == 1437 - round(1437 * 0.9)


def test_loader_shards_cover_each_epoch_once():
    pool = open_dataset("digits", (1, 8, 8)).train
    full = [b.positions for b in EpochLoader(pool, 64, train=True, seed=1).epoch(2)]
    shards = [
        [b.positions for b in EpochLoader(pool, 32, train=True, seed=1, rank=r, world=2).epoch(2)] for r in range(2)
    ]
    assert len(full) == len(shards[0]) == len(shards[1]) == 1437 // 64
    for k, batch in enumerate(full):
        assert sorted(batch.tolist()) == sorted(torch.cat([shards[0][k], shards[1][k]]).tolist())
    other_epoch = next(EpochLoader(pool, 64, train=True, seed=1).epoch(3)).positions
    assert not torch.equal(other_epoch, full[0])


def test_loader_resumes_inside_an_epoch():
    pool = open_dataset("digits", (1, 8, 8)).train
    loader = EpochLoader(pool, 50, train=True, seed=0)
    all_batches = [b.positions for b in loader.epoch(1)]
    rest = [b.positions for b in loader.epoch(1, start=10)]
    assert len(rest) == len(all_batches) - 10 and all(
        torch.equal(x, y) for x, y in zip(rest, all_batches[10:], strict=True)
    )


def test_eval_loader_reads_each_sample_once_over_ranks():
    pool = open_dataset("digits", (1, 8, 8)).train
    seen = [
        p
        for r in range(3)
        for b in EpochLoader(pool, 64, train=False, rank=r, world=3).epoch(0)
        for p in b.positions.tolist()
    ]
    assert sorted(seen) == list(range(1437))


def test_augmentation_is_per_sample_and_deterministic():
    pool = open_dataset("digits", (1, 8, 8)).train
    pre = Preprocess((1, 16, 16), (0.0,), (1.0,), crop_padding=2, flip=True, cutout_length=4)
    plan = pre.plan(len(pool), seed=5, epoch=0)
    together = pre(pool.__getitems__([3, 9]), torch.device("cpu"), plan)
    alone = pre(pool.__getitems__([9]), torch.device("cpu"), plan)
    assert torch.equal(together[1], alone[0])  # same sample, same crop/flip/cutout, whatever the batch
    again = pre(pool.__getitems__([3, 9]), torch.device("cpu"), pre.plan(len(pool), seed=5, epoch=0))
    assert torch.equal(together, again)
    assert not torch.equal(together, pre(pool.__getitems__([3, 9]), torch.device("cpu"), pre.plan(len(pool), 5, 1)))


def test_cutout_zeroes_a_square():
    pool = open_dataset("digits", (1, 8, 8)).train
    pre = Preprocess((1, 16, 16), (-1.0,), (1.0,), cutout_length=4)  # mean -1: no pixel is 0 except the hole
    x = pre(pool.__getitems__([0]), torch.device("cpu"), pre.plan(len(pool), seed=0, epoch=0))
    zeros = (x == 0).sum().item()
    assert 4 <= zeros <= 16  # 4x4, clipped at the border


def test_a_loader_with_steps_cycles_its_split_and_resumes_inside_an_epoch():
    """DNAS's θ split keeps pace with the weights' split: exactly `steps` batches an epoch, reshuffled
    passes, the same batches when an epoch is started in the middle."""
    pool = open_dataset("digits", (1, 8, 8)).train.subset(torch.arange(100))
    loader = EpochLoader(pool, 32, train=True, seed=3, steps=10)
    assert len(loader) == 10
    batches = [b.positions.tolist() for b in loader.epoch(2)]
    assert len(batches) == 10 and batches[:3] != batches[3:6]  # 3 batches a pass, each pass reshuffled
    assert [b.positions.tolist() for b in loader.epoch(2, start=4)] == batches[4:]
    assert [b.positions.tolist() for b in loader.epoch(2)] == batches
    assert len(list(EpochLoader(pool.subset(torch.arange(20)), 32, train=True, steps=10).epoch(0))) == 0


@pytest.mark.parametrize(
    ("spec", "flip", "expected"),
    [("digits", None, False), ("fonts", None, False), ("synthetic", None, True), ("digits", True, True)],
)
def test_random_flips_are_off_by_default_where_a_mirror_image_is_another_class(spec, flip, expected):
    from hwnas.engine.config import TrainConfig
    from hwnas.pipeline import open_run_data

    cfg = TrainConfig(data=spec, input="1x8x8", flip=flip)
    assert open_run_data(cfg, (1, 8, 8), main=False).preprocess.flip is expected
