import pytest
import torch


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Each test gets its own cache dir and a fixed seed."""
    monkeypatch.setenv("HWNAS_CACHE_DIR", str(tmp_path / "cache"))
    torch.manual_seed(0)
