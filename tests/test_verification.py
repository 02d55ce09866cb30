"""LFW-style verification: pairs files, cosine scores, the 10-fold protocol, and the synthetic face set."""

import numpy as np
import pytest
import torch
from PIL import Image

from hwnas.data.faces import write_identities, write_pairs
from hwnas.errors import HwnasError
from hwnas.verification import cosine_scores, read_pairs, verification_report
from tests.fake_data import write_image


def lfw_order(genuine: np.ndarray, impostor: np.ndarray, folds: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores and labels laid out as LFW folds: each fold's matched block, then its mismatched block."""
    scores, same = [], []
    for g, i in zip(np.array_split(genuine, folds), np.array_split(impostor, folds), strict=True):
        scores += [g, i]
        same += [np.ones(len(g), bool), np.zeros(len(i), bool)]
    return np.concatenate(scores), np.concatenate(same)


def test_separable_scores_are_perfect():
    rng = np.random.default_rng(0)
    scores, same = lfw_order(rng.uniform(0.6, 1.0, 60), rng.uniform(-1.0, 0.4, 60), folds=10)
    report = verification_report(scores, same, folds=10)
    assert report["accuracy"] == 100.0 and report["accuracy_std"] == 0.0
    assert report["tar_at_far_1e-3"] == 1.0 and report["far_threshold"] == scores[~same].max()
    assert report["threshold_on"] == "other folds" and report["pairs"] == 120 and report["folds"] == 10
    assert scores[~same].max() < report["threshold"] < scores[same].min()


def test_two_folds_by_hand():
    # fold 0: 0.8 same, 0.3 same, 0.5 diff, 0.1 diff;   fold 1: 0.9 same, 0.7 same, 0.6 diff, 0.25 diff.
    # Fold 0 is judged with a threshold chosen on fold 1: candidates 0.142 (accept all, 2/4), 0.425 (3/4),
    #   0.65 (4/4), 0.8 (3/4), 1.008 (reject all, 2/4) -> 0.65. On fold 0: 0.8 in, 0.3 out (wrong),
    #   0.5 out, 0.1 out -> 3/4 = 75 %.
    # Fold 1 is judged with a threshold chosen on fold 0: candidates -0.017 (2/4), 0.2 (3/4), 0.4 (2/4),
    #   0.65 (3/4), 0.917 (2/4) -> 0.2 and 0.65 tie, the lowest wins: 0.2. On fold 1 every score > 0.2,
    #   so both different pairs are accepted -> 2/4 = 50 %.
    # accuracy = (75 + 50) / 2 = 62.5, std = 12.5, threshold = (0.65 + 0.2) / 2 = 0.425.
    # TAR@FAR: 4 impostors < 1000, so the threshold is the top impostor 0.6; genuine above it: 0.8, 0.9, 0.7 -> 3/4.
    scores = np.array([0.8, 0.3, 0.5, 0.1, 0.9, 0.7, 0.6, 0.25])
    same = np.array([True, True, False, False] * 2)
    report = verification_report(scores, same, folds=2)
    assert report["fold_accuracy"] == [75.0, 50.0]
    assert report["accuracy"] == 62.5 and report["accuracy_std"] == 12.5
    assert report["threshold"] == pytest.approx(0.425)
    assert report["far_threshold"] == 0.6 and report["tar_at_far_1e-3"] == 0.75

    # one fold: the threshold is chosen on the very pairs it judges, and the report says so
    single = verification_report(scores[:4], same[:4], folds=1)
    assert single["threshold_on"] == "same fold" and single["accuracy"] == 75.0
    assert single["threshold"] == pytest.approx(0.2)


def test_tar_at_far_1e3():
    # 2000 impostors: 1998 in [-1, 0.1] and two above every genuine score. FAR <= 1e-3 lets 2 impostors
    # score above the threshold, so it is the third highest impostor, 0.1 (a genuine 0.1 is not accepted).
    impostor = np.concatenate([np.linspace(-1.0, 0.1, 1998), [0.8, 0.9]])
    genuine = np.concatenate([np.linspace(0.2, 0.7, 60), np.linspace(-0.5, 0.1, 40)])
    scores, same = lfw_order(genuine, impostor, folds=10)
    report = verification_report(scores, same, folds=10)
    assert report["far_threshold"] == pytest.approx(0.1) and report["tar_at_far_1e-3"] == 0.6

    # 1999 impostors allow only 1 above the threshold: now 0.8, above every genuine score
    scores, same = lfw_order(genuine, impostor[1:], folds=10)
    report = verification_report(scores, same, folds=10)
    assert report["far_threshold"] == 0.8 and report["tar_at_far_1e-3"] == 0.0


def test_report_rejects_bad_input():
    with pytest.raises(HwnasError, match="3 scores for 2 same/different labels"):
        verification_report(np.zeros(3), np.array([True, False]), folds=1)
    with pytest.raises(HwnasError, match="all same; expected both kinds"):
        verification_report(np.zeros(4), np.ones(4, bool), folds=2)
    with pytest.raises(HwnasError, match="folds=5 for 4 pairs"):
        verification_report(np.zeros(4), np.array([True, False] * 2), folds=5)


def test_cosine_scores():
    a = np.random.default_rng(0).normal(size=(5, 16))
    assert np.allclose(cosine_scores(a, a), 1.0) and np.allclose(cosine_scores(a, -a), -1.0)
    t = torch.from_numpy(a).float()
    assert np.allclose(cosine_scores(t, 3 * t), 1.0, atol=1e-6)
    assert cosine_scores(np.array([[1.0, 0.0]]), np.array([[0.0, 2.0]]))[0] == 0.0
    assert cosine_scores(np.zeros((1, 3)), np.ones((1, 3)))[0] == 0.0
    with pytest.raises(HwnasError, match="shapes"):
        cosine_scores(a, a[:, :8])


def mean_abs_diff(a, b) -> float:
    return float(np.abs(np.asarray(Image.open(a), np.int16) - np.asarray(Image.open(b), np.int16)).mean())


def test_faces_pairs_round_trip(tmp_path):
    root = write_identities(tmp_path / "faces", identities=8, per_identity=4, seed=0)
    assert sorted(p.name for p in root.iterdir()) == [f"person_{i:03d}" for i in range(8)]
    assert sorted(p.name for p in (root / "person_003").iterdir()) == [f"person_003_{i:04d}.png" for i in range(1, 5)]
    path = write_pairs(root, tmp_path / "pairs.txt", folds=2, per_fold=5)
    lines = path.read_text().splitlines()
    assert lines[0] == "2\t5" and len(lines) == 1 + 2 * 2 * 5
    assert [len(line.split("\t")) for line in lines[1:11]] == [3] * 5 + [4] * 5

    pairs, same, folds = read_pairs(path, root)
    assert folds == 2 and len(pairs) == 20 and same.tolist() == ([True] * 5 + [False] * 5) * 2
    assert all(a.is_file() and b.is_file() for a, b in pairs)
    assert all(a.parent == b.parent and a != b for (a, b), s in zip(pairs, same, strict=True) if s)
    fold_people = [{p.parent.name for pair in pairs[k * 10 : (k + 1) * 10] for p in pair} for k in range(2)]
    assert not fold_people[0] & fold_people[1]  # as in LFW, the folds are disjoint in people

    image = Image.open(pairs[0][0])
    assert image.size == (108, 108) and image.mode == "RGB"
    within = np.mean([mean_abs_diff(a, b) for (a, b), s in zip(pairs, same, strict=True) if s])
    across = np.mean([mean_abs_diff(a, b) for (a, b), s in zip(pairs, same, strict=True) if not s])
    assert 0 < within < across


def test_faces_are_deterministic_per_person(tmp_path):
    small = write_identities(tmp_path / "a", identities=2, per_identity=1, size=32, seed=3)
    large = write_identities(tmp_path / "b", identities=3, per_identity=1, size=32, seed=3)
    other = write_identities(tmp_path / "c", identities=2, per_identity=1, size=32, seed=4)
    name = "person_001/person_001_0001.png"
    assert np.array_equal(np.asarray(Image.open(small / name)), np.asarray(Image.open(large / name)))
    assert not np.array_equal(np.asarray(Image.open(small / name)), np.asarray(Image.open(other / name)))
    with pytest.raises(HwnasError, match="already exists; expected a new or empty directory"):
        write_identities(small, identities=1, per_identity=1, size=32)
    with pytest.raises(HwnasError, match=r"2 people .* expected at least 4 for 2 folds"):
        write_pairs(small, tmp_path / "pairs.txt", folds=2)
    with pytest.raises(HwnasError, match="fold 1 of 1: only 0 distinct same-person pairs"):
        write_pairs(small, tmp_path / "pairs.txt", folds=1, per_fold=1)


@pytest.fixture
def tiny_people(tmp_path):
    """Three people with two 4x4 PNGs each, LFW-named."""
    root = tmp_path / "people"
    for p in range(3):
        for i in (1, 2):
            write_image(root / f"p{p}" / f"p{p}_{i:04d}.png", (4, 4), 40 * p + i)
    return root


def write_lines(tmp_path, *lines: str):
    path = tmp_path / "pairs.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_read_pairs_headers(tmp_path, tiny_people):
    body = ["p0\t1\t2", "p1 1 2", "p0\t1\tp1\t2", "p1\t2\tp2\t1"]
    pairs, same, folds = read_pairs(write_lines(tmp_path, "2\t1", *body), tiny_people)
    assert folds == 2 and same.tolist() == [True, True, False, False]
    assert pairs[2] == (tiny_people / "p0" / "p0_0001.png", tiny_people / "p1" / "p1_0002.png")
    _, _, folds = read_pairs(write_lines(tmp_path, "2", *body, ""), tiny_people)  # pairsDevTrain.txt style
    assert folds == 1
    _, same, folds = read_pairs(write_lines(tmp_path, *body[1:]), tiny_people)  # no header: one fold
    assert folds == 1 and same.tolist() == [True, False, False]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["1\t1", "p0\t1\t2", "p0\t1\tp1\t2\t3"], r"pairs.txt:3: 5 fields .*; expected 3 \(NAME I J\) or 4"),
        (["1\t1", "p0\t1\t2", "p0\t1"], r"pairs.txt:3: 2 fields \['p0', '1'\]; expected 3 .* or 4"),
        (["1\t1", "p0\t1\t3", "p0\t1\tp1\t2"], r"pairs.txt:2: image 3 of 'p0' not found: tried .*p0_0003.png"),
        (["1\t1", "p0\t1\t2", "p0\t1\tp9\t2"], r"pairs.txt:3: image 2 of 'p9' not found: tried .*p9_0002.png"),
        (["1\t1", "p0\t1\tx", "p0\t1\tp1\t2"], r"pairs.txt:2: image index 'x' of 'p0' is not an integer"),
        (["1\t1", "p0\t0\t2", "p0\t1\tp1\t2"], r"pairs.txt:2: image index '0' of 'p0' is not a 1-based"),
        (
            ["2\t1", "p0\t1\t2", "p0\t1\tp1\t2"],
            r"pairs.txt:1: header '2 1' means 2 folds × 2 × 1 = 4 pair lines.* has 2",
        ),
        (["", ""], r"pairs.txt: no pair lines"),
    ],
)
def test_read_pairs_errors(tmp_path, tiny_people, lines, message):
    with pytest.raises(HwnasError, match=message):
        read_pairs(write_lines(tmp_path, *lines), tiny_people)
