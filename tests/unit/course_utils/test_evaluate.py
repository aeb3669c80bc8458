"""course_utils.evaluate: weighted kNN against a brute-force vote, linear probe, fractions."""
import numpy as np
import pytest
import torch

from course_utils.augment import eval_transform
from course_utils.data import make_shapes
from course_utils.evaluate import (evaluate_encoder, extract_features, knn_accuracy,
                                   knn_predict, label_fraction_table, linear_probe)
from course_utils.models import SmallConvNet

CPU = torch.device("cpu")


def clusters(n_per_class, num_classes=10, dim=32, spread=0.2, seed=0):
    """Gaussian clusters around random centres: (features, labels)."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_classes, dim, generator=gen)
    labels = torch.arange(num_classes).repeat(n_per_class)
    feats = centres[labels] + spread * torch.randn(len(labels), dim, generator=gen)
    return feats, labels


def brute_force_knn(train_feats, train_labels, test_feats, num_classes, k, temperature):
    """The InstDisc vote, one test sample at a time, written out plainly."""
    preds = []
    for q in test_feats:
        sims = [float(q @ t / (q.norm() * t.norm())) for t in train_feats]
        nearest = sorted(range(len(sims)), key=lambda i: -sims[i])[:k]
        votes = [0.0] * num_classes
        for i in nearest:
            votes[int(train_labels[i])] += torch.exp(torch.tensor(sims[i] / temperature)).item()
        preds.append(max(range(num_classes), key=lambda c: votes[c]))
    return torch.tensor(preds)


def test_knn_on_separated_clusters_is_perfect():
    train_feats, train_labels = clusters(50, seed=0)
    test_feats, test_labels = clusters(20, seed=0)  # the same centres
    test_feats = test_feats + 0.05 * torch.randn_like(test_feats)
    assert knn_accuracy(train_feats, train_labels, test_feats, test_labels) == 1.0


def test_knn_on_random_labels_is_at_chance():
    gen = torch.Generator().manual_seed(0)
    train_feats, test_feats = torch.randn(2000, 16, generator=gen), torch.randn(1000, 16, generator=gen)
    train_labels = torch.randint(0, 10, (2000,), generator=gen)
    test_labels = torch.randint(0, 10, (1000,), generator=gen)
    assert knn_accuracy(train_feats, train_labels, test_feats, test_labels) == pytest.approx(0.1, abs=0.04)


def test_knn_predict_matches_a_brute_force_weighted_vote():
    gen = torch.Generator().manual_seed(1)
    train_feats, test_feats = torch.randn(30, 5, generator=gen), torch.randn(12, 5, generator=gen)
    train_labels = torch.randint(0, 3, (30,), generator=gen)
    for k, temperature in [(5, 0.1), (1, 0.1), (7, 1.0)]:
        expected = brute_force_knn(train_feats, train_labels, test_feats, 3, k, temperature)
        got = knn_predict(train_feats, train_labels, test_feats, 3, k=k, temperature=temperature)
        assert torch.equal(got, expected), (k, temperature)
    chunked = knn_predict(train_feats, train_labels, test_feats, 3, k=5, chunk_size=5)
    assert torch.equal(chunked, brute_force_knn(train_feats, train_labels, test_feats, 3, 5, 0.1))


def test_knn_with_k_larger_than_the_bank_uses_every_sample():
    gen = torch.Generator().manual_seed(2)
    train_feats, test_feats = torch.randn(12, 5, generator=gen), torch.randn(6, 5, generator=gen)
    train_labels = torch.randint(0, 4, (12,), generator=gen)
    got = knn_predict(train_feats, train_labels, test_feats, 4, k=200)
    assert torch.equal(got, brute_force_knn(train_feats, train_labels, test_feats, 4, 12, 0.1))


def test_linear_probe_separates_separable_data():
    train_feats, train_labels = clusters(40, spread=0.5, seed=0)
    test_feats, test_labels = clusters(20, spread=0.5, seed=0)
    accuracy = linear_probe(train_feats, train_labels, test_feats + 0.1, test_labels, device=CPU)
    assert accuracy > 0.95


def test_linear_probe_on_random_labels_is_near_chance():
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(600, 16, generator=gen)
    labels = torch.randint(0, 10, (600,), generator=gen)
    accuracy = linear_probe(feats[:400], labels[:400], feats[400:], labels[400:], epochs=20,
                            device=CPU)
    assert accuracy < 0.25


def test_label_fraction_table_keys_and_more_labels_help():
    train_feats, train_labels = clusters(100, dim=16, spread=1.2, seed=3)
    test_feats, test_labels = clusters(30, dim=16, spread=1.2, seed=3)
    table = label_fraction_table(train_feats, train_labels, test_feats, test_labels,
                                 fractions=(0.01, 0.1, 1.0), epochs=30, device=CPU)
    assert list(table) == [0.01, 0.1, 1.0]
    assert all(0 <= acc <= 1 for acc in table.values())
    assert table[1.0] > 0.5 and table[1.0] >= table[0.01] - 0.02


def test_extract_features_shapes_labels_and_restores_the_mode():
    arrays = make_shapes(20, seed=0)
    encoder = SmallConvNet(width=8)
    running_mean = encoder.net[0][1].running_mean.clone()
    feats, labels = extract_features(encoder, arrays, batch_size=8, device=CPU)
    assert feats.shape == (20, encoder.feature_dim) and feats.dtype == torch.float32
    assert torch.equal(labels, torch.from_numpy(arrays.labels))
    assert encoder.training  # restored
    assert torch.equal(encoder.net[0][1].running_mean, running_mean)  # ran in eval mode
    encoder.eval()
    again, _ = extract_features(encoder, arrays, batch_size=20, device=CPU)
    assert not encoder.training
    assert torch.allclose(again, feats, atol=1e-5)  # batching does not change h


def test_extract_features_without_pil_equals_the_eval_transform():
    """The tensor path normalises as ToTensor + Normalize do to each PIL image."""
    arrays = make_shapes(12, seed=1)
    encoder = SmallConvNet(width=8)
    direct, labels = extract_features(encoder, arrays, batch_size=5, device=CPU)
    through_pil, pil_labels = extract_features(encoder, arrays, transform=eval_transform(),
                                               batch_size=5, device=CPU)
    assert torch.allclose(direct, through_pil, atol=1e-5)
    assert torch.equal(labels, pil_labels)


def test_evaluate_encoder_reports_knn_and_linear():
    train, test = make_shapes(40, seed=0), make_shapes(20, seed=1)
    result = evaluate_encoder(SmallConvNet(width=8), train, test, device=CPU, epochs=5)
    assert set(result) == {"knn", "linear"} and all(0 <= v <= 1 for v in result.values())
    assert set(evaluate_encoder(SmallConvNet(width=8), train, test, linear=False, device=CPU)) == {"knn"}


def test_fine_tune_learns_and_leaves_the_encoder_alone():
    from course_utils.data import make_shapes
    from course_utils.evaluate import fine_tune
    from course_utils.models import SmallConvNet

    torch.manual_seed(0)
    train, test = make_shapes(600, seed=0), make_shapes(200, seed=1)
    encoder = SmallConvNet(width=8)
    before = [p.detach().clone() for p in encoder.parameters()]
    acc = fine_tune(encoder, train, test, epochs=8, lr=3e-3, batch_size=64, progress=False,
                    device=torch.device("cpu"))
    assert acc > 0.2                      # chance is 0.1
    assert all(torch.equal(p, b) for p, b in zip(encoder.parameters(), before))


def test_linear_probe_depends_on_its_seed_not_on_the_global_rng():
    train_feats, train_labels = clusters(40, dim=8, spread=2.0, seed=5)
    test_feats, test_labels = clusters(20, dim=8, spread=2.0, seed=6)
    runs = []
    for global_seed in (0, 1):
        torch.manual_seed(global_seed)
        runs.append(linear_probe(train_feats, train_labels, test_feats, test_labels,
                                 epochs=3, device=CPU, seed=7))
        after = torch.rand(1)
        torch.manual_seed(global_seed)
        assert torch.equal(after, torch.rand(1)), "the probe moved the global RNG"
    assert runs[0] == runs[1]


def test_attention_on_mask_weighs_patches_by_their_pixels_inside():
    from course_utils.evaluate import attention_on_mask
    masks = np.zeros((3, 8, 8), dtype=bool)
    masks[:, :4, :4] = True                                   # the top-left patch of 2x2
    uniform = torch.ones(3, 2, 2, 2)
    assert torch.allclose(attention_on_mask(uniform, masks, 4), torch.full((3,), 0.25))
    on_object = torch.zeros(3, 2, 2, 2)
    on_object[:, :, 0, 0] = 1.0
    assert torch.allclose(attention_on_mask(on_object, masks, 4), torch.ones(3))
    half = masks.copy()
    half[:, :2, :4] = False                                   # half of that patch's pixels
    assert torch.allclose(attention_on_mask(on_object, half, 4), torch.full((3,), 0.5))
    heads = torch.zeros(3, 2, 2, 2)
    heads[:, 0, 0, 0], heads[:, 1, 1, 1] = 1.0, 1.0          # one head on it, one off
    assert torch.allclose(attention_on_mask(heads, masks, 4), torch.full((3,), 0.5))
    with pytest.raises(ValueError, match="grid"):
        attention_on_mask(torch.ones(3, 2, 4, 4), masks, 4)
