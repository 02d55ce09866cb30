import logging
import os
import shutil
from pathlib import Path

import pytest
import torch

from tests.helpers import FAST, TINY_SPACE, built_once


def pytest_configure(config) -> None:
    """Under pytest-xdist each worker, and every process it starts, takes one CPU thread: as many threads as cores.
    (Two workers of two threads each on two cores ran some tests many times slower.)"""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = "1"
        torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Each test gets its own cache dir and a fixed seed."""
    monkeypatch.setenv("HWNAS_CACHE_DIR", str(tmp_path / "cache"))
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _hwnas_logger_restored():
    """`hwnas.cli.main` shows the `hwnas` logger on stderr (hwnas.log.to_stderr): each test ends with the logger's
    handlers, level and propagation as it found them, so a test's logging does not depend on the tests before."""
    logger = logging.getLogger("hwnas")
    state = (list(logger.handlers), logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = state


@pytest.fixture
def space_file(tmp_path) -> Path:
    """helpers.TINY_SPACE written to this test's folder."""
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_SPACE)
    return path


@pytest.fixture(scope="session")
def tiny_supernet(tmp_path_factory) -> Path:
    """The run directory of a one-shot supernet of helpers.TINY_SPACE (SPOS uniform paths, 6 epochs at lr 0.2 on
    digits: its random paths score well above chance), trained once for the whole session. Read it, never write
    into it; a search on the tiny space of any test's folder takes it (the space is checked by content)."""
    from hwnas.strategies.config import SupernetConfig
    from hwnas.strategies.run import train_supernet

    def build(root: Path) -> None:
        (root / "tiny.yaml").write_text(TINY_SPACE)
        cfg = SupernetConfig(
            space=str(root / "tiny.yaml"), epochs=6, lr=0.2, batch_size=64, run_dir=str(root / "sup"), **FAST
        )
        train_supernet(cfg)

    return built_once(tmp_path_factory, "tiny_supernet", build) / "sup"


@pytest.fixture(scope="session")
def _tiny_latency_cache(tmp_path_factory) -> Path:
    """A cache directory holding the latency table of helpers.TINY_SPACE as `load_or_build` measures it by
    default (CPU, 1 thread, batch 1, float32), measured once for the whole session."""
    from hwnas.cost.build import load_or_build
    from hwnas.spaces import load_space

    def build(root: Path) -> None:
        (root / "tiny.yaml").write_text(TINY_SPACE)
        load_or_build(load_space(str(root / "tiny.yaml")), progress=False)

    return built_once(tmp_path_factory, "tiny_latency", build) / "cache"


@pytest.fixture
def tiny_latency_cached(_tiny_latency_cache, tmp_path) -> Path:
    """This test's cache directory, already holding the measured latency table of helpers.TINY_SPACE (a copy:
    the test may change or remove it); returns the table file."""
    cache = tmp_path / "cache"
    shutil.copytree(_tiny_latency_cache, cache, dirs_exist_ok=True)
    (table,) = (cache / "cost-tables").glob("*.json")
    return table
