"""Any torch Dataset or DataLoader as a run's data (`hwnas.data.pools_from_datasets`)."""

import logging
import pickle

import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, IterableDataset, Subset, TensorDataset

from hwnas.data import EpochLoader, Preprocess, open_dataset, pools_from_datasets, search_split, train_val
from hwnas.data.torch_datasets import BadDatasetItem
from hwnas.errors import HwnasError

CPU = torch.device("cpu")


class FloatImages(Dataset):
    """Float images in [0, 1] (as torchvision's ToTensor gives), labels only from the items; counts reads."""

    def __init__(self, n=40, shape=(3, 6, 6), classes=4, odd=None):
        g = torch.Generator().manual_seed(1)
        self.images = torch.rand((n, *shape), generator=g)
        self.labels_of = [i % classes for i in range(n)]
        self.odd = odd or {}  # index -> item that replaces the regular one
        self.reads = 0

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        self.reads += 1
        return self.odd.get(i, (self.images[i], torch.tensor(self.labels_of[i])))


class ListedTargets(FloatImages):
    """As FloatImages, with a `targets` attribute as torchvision's datasets have."""

    @property
    def targets(self):
        return self.labels_of


class Stream(IterableDataset):
    def __iter__(self):
        yield torch.zeros(1, 4, 4), 0


class NoLength(Dataset):
    def __getitem__(self, i):
        return torch.zeros(1, 4, 4), 0


def uint8_set(n=48, shape=(1, 8, 8), classes=5):
    g = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8), torch.arange(n) % classes)


def one_line(info) -> str:
    text = str(info.value)
    assert "\n" not in text
    return text


def test_a_tensor_dataset_of_uint8_images():
    data = uint8_set()
    pools = pools_from_datasets(data)
    assert len(pools.train) == 48 and pools.test is None and pools.classes == ["0", "1", "2", "3", "4"]
    batch = pools.train.__getitems__([3, 7])
    assert batch.images.dtype == torch.uint8 and torch.equal(batch.images, data.tensors[0][[3, 7]])
    assert batch.labels.tolist() == [3, 2]
    scaled = data.tensors[0].double() / 255
    assert pools.mean == pytest.approx((float(scaled.mean()),)) and pools.std == pytest.approx(
        (float(scaled.std(unbiased=False)),)
    )


def test_a_custom_dataset_of_float_images_keeps_them_float(caplog, monkeypatch):
    monkeypatch.setattr(logging.getLogger("hwnas"), "propagate", True)  # the CLI's `to_stderr` turns it off
    data = FloatImages()
    with caplog.at_level(logging.INFO, logger="hwnas"):
        pools = pools_from_datasets(data, classes=["a", "b", "c", "d"])
    assert "reading its 40 items once for their labels" in caplog.text
    batch = pools.train.__getitems__([5, 0])
    assert batch.images.dtype == torch.float32 and torch.equal(batch.images, data.images[[5, 0]])
    assert batch.labels.tolist() == [1, 0] and pools.classes == ["a", "b", "c", "d"]
    assert pools.mean == pytest.approx(data.images.double().mean((0, 2, 3)).tolist())


def test_listed_labels_are_not_read_from_the_items():
    data = ListedTargets()
    pools = pools_from_datasets(data, mean=(0.5,), std=(0.25, 0.25, 0.25))
    assert data.reads == 1  # item 0, for the image shape; labels came from `targets`
    assert pools.train.labels.tolist() == data.labels_of and pools.mean == (0.5,)
    parent = ListedTargets()
    part = pools_from_datasets(Subset(parent, [4, 9, 2]), mean=(0.5,), std=(0.25,))
    assert part.train.labels.tolist() == [0, 1, 2] and parent.reads == 1


def test_mean_is_estimated_from_the_first_512_training_images():
    images = torch.zeros(600, 1, 2, 2, dtype=torch.uint8)
    images[512:] = 255  # beyond the first 512: not in the estimate
    pools = pools_from_datasets(TensorDataset(images, torch.zeros(600, dtype=torch.long)))
    assert pools.mean == (0.0,) and pools.std == (1.0,)  # a constant channel is not scaled


def test_a_dataloader_stands_for_its_dataset():
    data = uint8_set()
    pools = pools_from_datasets(DataLoader(data, batch_size=7, shuffle=True), DataLoader(uint8_set(n=10)))
    assert len(pools.train) == 48 and len(pools.test) == 10
    assert torch.equal(pools.train.__getitems__([1]).images, data.tensors[0][[1]])


def test_pil_images_read_as_to_tensor_would():
    gray = Image.frombytes("L", (3, 2), bytes(range(6)))
    rgb = Image.merge("RGB", [gray, gray.point(lambda v: v + 10), gray.point(lambda v: 255 - v)])
    pools = pools_from_datasets([(rgb, 0), (rgb, 1)], mean=(0.5,), std=(0.5,))
    image = pools.train.__getitems__([0]).images[0]
    assert image.shape == (3, 2, 3) and image[:, 1, 2].tolist() == [5, 15, 250]
    binary = pools_from_datasets([(gray.convert("1"), 0)], mean=(0.5,), std=(0.5,))
    assert set(binary.train.__getitems__([0]).images.unique().tolist()) <= {0, 255}
    with pytest.raises(HwnasError, match=r"item 0: a PIL image of mode 'I;16'; expected 8 bits a band") as info:
        pools_from_datasets([(Image.new("I;16", (2, 2)), 0)])
    one_line(info)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"classes": 3}, r"train dataset item 3: label 3 is outside 0..2; expected a class index of the 3 classes"),
        ({"classes": ["x", "y"]}, r"train dataset item 2: label 2 is outside 0..1"),
        ({"classes": 0}, r"classes=0: expected a positive number of classes"),
    ],
)
def test_labels_outside_the_classes_are_refused(kwargs, match):
    with pytest.raises(HwnasError, match=match) as info:
        pools_from_datasets(uint8_set(), **kwargs)
    one_line(info)


def test_negative_and_non_integer_labels_are_refused():
    data = uint8_set(n=6)
    images = data.tensors[0]
    with pytest.raises(HwnasError, match=r"train dataset item 4: label -1 is outside 0..3") as info:
        pools_from_datasets(TensorDataset(images, torch.tensor([0, 1, 2, 3, -1, 0])))
    one_line(info)
    with pytest.raises(HwnasError, match=r"item 0: the label is 0.5; expected an integer") as info:
        pools_from_datasets([(images[0], 0.5)])
    one_line(info)
    test = TensorDataset(images, torch.tensor([0, 1, 2, 9, 0, 0]))
    with pytest.raises(HwnasError, match=r"test dataset item 3: label 9 is outside 0..4"):
        pools_from_datasets(uint8_set(), test, classes=5)
    assert len(pools_from_datasets(uint8_set(), test).classes) == 10  # by default, the labels of both


def test_a_label_list_that_disagrees_with_the_items_is_found_when_read():
    data = ListedTargets(odd={7: (torch.rand(3, 6, 6), 2)})  # targets says 7 % 4 = 3
    pools = pools_from_datasets(data, mean=(0.5,), std=(0.5,))
    with pytest.raises(BadDatasetItem, match=r"train dataset item 7: label 2, but the dataset's label list says 3"):
        pools.train.__getitems__([6, 7])


def test_image_shapes():
    with pytest.raises(HwnasError, match=r"image_shape 3x8x8: the train dataset's images are 1x8x8") as info:
        pools_from_datasets(uint8_set(), image_shape=(3, 8, 8))
    one_line(info)
    assert len(pools_from_datasets(uint8_set(), image_shape=[1, 8, 8]).train) == 48
    with pytest.raises(HwnasError, match=r"test dataset item 0: a 1x4x4 uint8 image; expected 1x8x8 uint8"):
        pools_from_datasets(uint8_set(), uint8_set(n=4, shape=(1, 4, 4)))
    odd = FloatImages(odd={9: (torch.rand(3, 5, 6), 1)})
    pools = pools_from_datasets(odd, mean=(0.5,), std=(0.5,))  # images are read (and checked) batch by batch
    loader = EpochLoader(pools.train, 10, train=False)
    with pytest.raises(BadDatasetItem, match=r"train dataset item 9: a 3x5x6 float image; expected 3x6x6 float") as e:
        list(loader.epoch(0))
    one_line(e)


@pytest.mark.parametrize(
    "data,match",
    [
        (Stream(), r"train dataset: an IterableDataset has no random access; expected a map-style Dataset"),
        (DataLoader(Stream()), r"an IterableDataset has no random access"),
        (iter([]), r"a list_iterator has no __len__ or __getitem__; expected a map-style Dataset"),
        (NoLength(), r"train dataset: a NoLength has no __len__; expected a map-style Dataset"),
        ([], r"train dataset: it is empty"),
        ([torch.zeros(1, 4, 4)], r"item 0: the item is a Tensor; expected \(image, label\)"),
        ([(torch.zeros(1, 4, 4), 0, "x")], r"item 0: the item is a 3-element tuple; expected \(image, label\)"),
        ([([[0.0]], 0)], r"item 0: the image is a list; expected \(image, label\) with image a tensor"),
        ([(torch.zeros(2, 1, 4, 4), 0)], r"item 0: the image tensor has shape 2x1x4x4; expected \[C, H, W\]"),
        ([(torch.zeros(1, 4, 4, dtype=torch.int64), 0)], r"item 0: the image tensor is torch.int64; expected uint8"),
        ([(torch.full((1, 4, 4), 2.0), 0)], r"float image values span \[2, 2\]; expected values in \[0, 1\]"),
    ],
)
def test_what_is_not_a_dataset_of_images_is_refused(data, match):
    with pytest.raises(HwnasError, match=match) as info:
        pools_from_datasets(data)
    one_line(info)


def test_preprocess_of_uint8_images_is_unchanged():
    digits = open_dataset("digits", (1, 8, 8))
    ids = digits.train.index
    images = digits.train.source.images[ids]
    labels = digits.train.labels[ids]
    adapted = pools_from_datasets(TensorDataset(images, labels), mean=digits.mean, std=digits.std)
    floats = pools_from_datasets(TensorDataset(images.float() / 255, labels), mean=digits.mean, std=digits.std)
    positions = [0, 5, 17, 300]
    pre = Preprocess((1, 12, 12), digits.mean, digits.std, crop_padding=2, flip=True, cutout_length=4)
    plan = pre.plan(len(digits.train), seed=3, epoch=1)
    reference = pre(digits.train.__getitems__(positions), CPU, plan)
    assert torch.equal(pre(adapted.train.__getitems__(positions), CPU, plan), reference)
    assert torch.equal(pre(floats.train.__getitems__(positions), CPU, plan), reference)
    plain = Preprocess((1, 8, 8), digits.mean, digits.std)(digits.train.__getitems__(positions), CPU)
    by_hand = (images[positions].float() / 255 - torch.tensor(digits.mean)) / torch.tensor(digits.std)
    assert torch.equal(plain, by_hand)


def test_loader_batches_are_the_items_normalised():
    data = FloatImages(n=30)
    pools = pools_from_datasets(data)
    train, val = train_val(pools.train, pools.test, 0.2, seed=0)
    assert len(train) == 24 and len(val) == 6
    weights, arch = search_split(train, 0.5, seed=0)
    assert len(weights) == len(arch) == 12
    pre = Preprocess((3, 6, 6), pools.mean, pools.std)
    mean, std = torch.tensor(pools.mean).view(1, 3, 1, 1), torch.tensor(pools.std).view(1, 3, 1, 1)
    batches = list(EpochLoader(weights, 4, train=True, seed=2).epoch(0))
    assert len(batches) == 3
    for batch in batches:
        ids = weights.index[batch.positions]
        items = [data[int(i)] for i in ids]
        expected = (torch.stack([image for image, _ in items]) - mean) / std
        assert torch.allclose(pre(batch, CPU), expected, atol=1e-6)
        assert batch.labels.tolist() == [int(label) for _, label in items]


def test_loader_workers_read_the_users_dataset():
    pools = pools_from_datasets(FloatImages(n=20))
    assert pickle.loads(pickle.dumps(pools.train.source)).shape == (3, 6, 6)
    in_process = [b.images for b in EpochLoader(pools.train, 5, train=True, seed=1).epoch(0)]
    in_worker = [b.images for b in EpochLoader(pools.train, 5, train=True, seed=1, workers=1).epoch(0)]
    assert len(in_worker) == 4 and all(torch.equal(a, b) for a, b in zip(in_process, in_worker, strict=True))


def test_a_bad_item_read_in_a_worker_is_one_line():
    """As a DataLoader worker sends an error back (its traceback in the message), without a worker's start
    and slow shutdown after an error (tests/test_hostile_files.py runs a real worker)."""
    from torch._utils import ExceptionWrapper

    bad = pools_from_datasets(FloatImages(n=20, odd={11: (torch.rand(3, 6, 6) + 1, 3)}), mean=(0.5,), std=(0.5,))
    try:
        bad.train.__getitems__([10, 11])
    except BadDatasetItem:
        sent = ExceptionWrapper(where="in DataLoader worker process 0")
    with pytest.raises(BadDatasetItem) as info:
        sent.reraise()
    assert one_line(info).startswith("train dataset item 11: float image values span [1")


def test_a_tiny_network_trains_an_epoch_on_a_users_dataset(tmp_path):
    from hwnas.arch import Architecture
    from hwnas.engine.config import TrainConfig
    from hwnas.engine.trainer import Trainer
    from hwnas.model import build_model
    from tests.helpers import tiny_arch

    digits = open_dataset("digits", (1, 8, 8))
    ids = digits.train.index[:160]
    images = digits.train.source.images[ids].float() / 255
    pools = pools_from_datasets(DataLoader(TensorDataset(images, digits.train.labels[ids]), batch_size=99))
    cfg = TrainConfig(input="1x8x8", epochs=1, batch_size=32, lr=0.1, crop_padding=1, progress=False, workers=0)
    train, val = train_val(pools.train, pools.test, cfg.val_split, cfg.seed)
    preprocess = Preprocess((1, 8, 8), pools.mean, pools.std, cfg.crop_padding, cfg.flip)
    arch = Architecture.load(tiny_arch(tmp_path)).with_space_args(input_size=[1, 8, 8], num_classes=len(pools.classes))
    trainer = Trainer(build_model(arch), cfg, train_set=train, val_set=val, preprocess=preprocess, device=CPU)
    trainer.fit()
    assert trainer.step == len(train) // 32 and [r["epoch"] for r in trainer.history] == [1]
    assert 0 <= trainer.history[0]["val_top1"] <= 100 and trainer.history[0]["val_loss"] < 10
