"""course_utils.handoff: an encoder saved by one notebook is the same encoder in the next."""
import pytest
import torch

from course_utils import handoff, models


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv(handoff.ENV, str(tmp_path / "enc"))
    return tmp_path / "enc"


@pytest.mark.parametrize("name, options", [
    ("small", {}), ("vit_nano", {"pool": "mean"}), ("vit_nano", {"patch_size": 8})])
def test_a_saved_encoder_loads_with_its_weights_and_architecture(folder, name, options):
    torch.manual_seed(0)
    encoder = models.build_encoder(name, **options).eval()
    path = handoff.save_encoder("SimCLR", encoder, name, dataset="shapes", mode="fast")
    assert path == folder / "simclr.pt"
    loaded, info = handoff.load_encoder("SimCLR")
    assert info["dataset"] == "shapes" and info["mode"] == "fast"
    assert not loaded.training
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(loaded(x), encoder(x))
    if name.startswith("vit"):
        assert (loaded.patch_size, loaded.pool) == (encoder.patch_size, encoder.pool)


def test_load_all_says_what_is_missing_and_what_was_trained_on_other_data(folder):
    handoff.save_encoder("MoCo", models.build_encoder("small"), "small", dataset="shapes", mode="fast")
    handoff.save_encoder("MAE", models.build_encoder("vit_nano"), "vit_nano", dataset="cifar10",
                  mode="full")
    found, notes = handoff.load_encoders("shapes")
    assert list(found) == ["MoCo"]
    assert len(notes) == 3
    assert any(n.startswith("SimCLR: not in") and "01_simclr_ntxent" in n for n in notes)
    assert any(n.startswith("MAE: trained on 'cifar10'") and "03_mae_masking" in n for n in notes)


def test_nothing_saved_is_code(folder):
    """The file holds tensors and plain values only: it loads with weights_only=True."""
    path = handoff.save_encoder("DINO", models.build_encoder("vit_nano"), "vit_nano",
                         dataset="shapes", mode="fast")
    saved = torch.load(path, weights_only=True)
    assert set(saved) == {"spec", "state_dict", "dataset", "mode"}


def test_the_default_folder_is_beside_the_data_cache(monkeypatch, tmp_path):
    monkeypatch.delenv(handoff.ENV, raising=False)
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "data"))
    assert handoff.encoder_dir() == tmp_path / "encoders"


def test_build_encoder_refuses_vit_options_for_a_convnet():
    with pytest.raises(ValueError, match="not a ViT"):
        models.build_encoder("small", pool="mean")
