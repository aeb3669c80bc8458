"""The trusted grader of notebook 03 (autograder/graders/03_mae_masking.py).

Submissions are built from the master (it holds the solutions) and scored against the
student release in notebooks/, each in one score_notebook call, two at a time: the master,
the demo's answers written differently and its wrong variants, the blank release, and known
mistakes of each exercise (those the visible checks name, the old hidden tests' cases, and
faked answers). The reference computations of the grader are checked against torch.
"""
from __future__ import annotations


import numpy as np
import pytest
import torch
import torch.nn.functional as F

from autograder import demo, grader_tools, scoring
from helpers import (GraderContract, assert_mistake_costs, contract_submissions,
                     score_all, with_answers)

pytestmark = pytest.mark.notebook

ASSIGNMENT = "03_mae_masking"
FULL = {"test_patchify": 3.0, "test_random_masking": 4.0, "test_unshuffle": 3.0,
        "test_mae_loss": 3.0}
CELL = {"patchify": "test_patchify", "random_masking": "test_random_masking",
        "unshuffle": "test_unshuffle", "mae_loss": "test_mae_loss"}


GRADER = scoring.load_grader(ASSIGNMENT)
CHECK = {p.name: p.check.__name__ for props in GRADER.PROPERTIES.values() for p in props}
ALL = {grade_id: {p.check.__name__ for p in props}
       for grade_id, props in GRADER.PROPERTIES.items()}

# ============================================================================ known mistakes
# Each: the whole answer cell, and the properties it must fail (and may fail: statistics of
# an answer with few possible masks).

UNPATCHIFY_RIGHT = '''

def unpatchify(patches, patch_size):
    p = patch_size
    N, L, _ = patches.shape
    h = math.isqrt(L)
    return patches.reshape(N, h, h, p, p, 3).permute(0, 5, 1, 3, 2, 4).reshape(N, 3, h * p, h * p)
'''


def _with_unpatchify(patchify_body: str) -> str:
    return "def patchify(imgs, patch_size):\n" + patchify_body + UNPATCHIFY_RIGHT


PATCHIFY = {
    # patches numbered column by column, in both directions (a consistent round trip)
    "column_major": ('''
def patchify(imgs, patch_size):
    p = patch_size
    N, C, H, W = imgs.shape
    x = imgs.reshape(N, C, H // p, p, W // p, p).permute(0, 4, 2, 3, 5, 1)
    return x.reshape(N, (H // p) * (W // p), p * p * C)


def unpatchify(patches, patch_size):
    p = patch_size
    N, L, _ = patches.shape
    h = math.isqrt(L)
    x = patches.reshape(N, h, h, p, p, 3).permute(0, 5, 2, 3, 1, 4)
    return x.reshape(N, 3, h * p, h * p)
''', {"patchify_layout", "unpatchify_inverse", "patchify_edge_sizes"}, set()),
    # a plain reshape both ways: numbers in memory order, not patches
    "plain_reshape": ('''
def patchify(imgs, patch_size):
    N, C, H, W = imgs.shape
    return imgs.reshape(N, (H // patch_size) * (W // patch_size), -1)


def unpatchify(patches, patch_size):
    N, L, _ = patches.shape
    side = math.isqrt(L) * patch_size
    return patches.reshape(N, 3, side, side)
''', {"patchify_layout", "unpatchify_inverse", "patchify_edge_sizes"}, set()),
    # flattens with view first: an error on a channels-last image
    "view_flatten": (_with_unpatchify('''    p = patch_size
    N, C, H, W = imgs.shape
    x = imgs.view(N, -1).view(N, C, H // p, p, W // p, p)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(N, (H // p) * (W // p), p * p * C)
'''), {"patchify_non_contiguous"}, set()),
    "float32": (_with_unpatchify('''    p = patch_size
    N, C, H, W = imgs.shape
    x = imgs.float().reshape(N, C, H // p, p, W // p, p).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(N, (H // p) * (W // p), p * p * C)
'''), {"patchify_dtypes"}, set()),
    "detached": (_with_unpatchify('''    p = patch_size
    N, C, H, W = imgs.shape
    x = imgs.detach().reshape(N, C, H // p, p, W // p, p).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(N, (H // p) * (W // p), p * p * C)
'''), {"patchify_gradient"}, set()),
    # the patch size 2 hard-coded (its mae_loss cell is a fake below: a patchify of the
    # wrong shape breaks any mae_loss that calls it)
    "p2_only": (_with_unpatchify('''    N, C, H, W = imgs.shape
    x = imgs.reshape(N, C, H // 2, 2, W // 2, 2).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(N, (H // 2) * (W // 2), 4 * C)
'''), {"patchify_layout", "patchify_edge_sizes"}, set()),
    # faked: the right shapes, zeros
    "zeros": ('''
def patchify(imgs, patch_size):
    N, C, H, W = imgs.shape
    return torch.zeros(N, (H // patch_size) * (W // patch_size), patch_size * patch_size * C)


def unpatchify(patches, patch_size):
    N, L, _ = patches.shape
    side = math.isqrt(L) * patch_size
    return torch.zeros(N, 3, side, side)
''', ALL["test_patchify"], set()),
}

MASKING_TEMPLATE = '''
def random_masking(x, mask_ratio, generator=None):
    N, L, D = x.shape
    len_keep = {len_keep}
    noise = {noise}
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = {ids_keep}
    x_kept = torch.gather({source}, 1, ids_keep.unsqueeze(-1).expand(-1, -1, D))
    mask = torch.ones(N, L, device=x.device)
    mask[:, :len_keep] = 0
    mask = torch.gather(mask, 1, ids_restore)
    return x_kept, {mask}, {ids}
'''
MASKING_RIGHT = dict(len_keep="int(L * (1 - mask_ratio))",
                     noise="torch.rand(N, L, generator=generator, device=x.device)",
                     ids_keep="ids_shuffle[:, :len_keep]", source="x", mask="mask",
                     ids="ids_restore")


def _masking(**changes) -> str:
    return MASKING_TEMPLATE.format(**dict(MASKING_RIGHT, **changes))


MASKING = {
    "round_len_keep": (_masking(len_keep="round(L * (1 - mask_ratio))"),
                       {"masking_len_keep"}, set()),
    "one_for_kept": (_masking(mask="1 - mask"), {"masking_mask"}, set()),
    "kept_sorted": (_masking(ids_keep="ids_shuffle[:, :len_keep].sort(dim=1).values"),
                    {"masking_x_kept"}, set()),
    "returns_ids_shuffle": (_masking(ids="ids_shuffle"), {"masking_x_kept"}, set()),
    "shared_noise": (_masking(noise="torch.rand(1, L, generator=generator).expand(N, L)"),
                     {"masking_per_sample_and_call", "masking_uniform"}, set()),
    "ignores_generator": (_masking(noise="torch.rand(N, L, device=x.device)"),
                          {"masking_generator"}, set()),
    "fixed_seed_without_generator": (_masking(
        noise="torch.rand(N, L, generator=generator or torch.Generator().manual_seed(0))"),
        {"masking_per_sample_and_call"}, set()),
    "detached": (_masking(source="x.detach()"), {"masking_gradient"}, set()),
    "mask_bool": (_masking(mask="mask.bool()"), {"masking_types"}, set()),
    # a random block of neighbouring patches: each patch equally likely, pairs are not (only
    # L masks are possible, so two samples of a batch may share one)
    "window": (_masking(
        noise="(torch.arange(L) - torch.randint(0, L, (N, 1), generator=generator)) % L + 0.5"),
        {"masking_uniform"}, {"masking_per_sample_and_call"}),
    # no randomness: the first len_keep patches, mask and ids_restore consistent
    "keep_first": (_masking(noise="torch.arange(L, dtype=torch.float32).expand(N, L)"),
                   {"masking_generator", "masking_per_sample_and_call", "masking_uniform"},
                   set()),
    # faked: the right shapes, zeros
    "zeros": ('''
def random_masking(x, mask_ratio, generator=None):
    N, L, D = x.shape
    K = int(L * (1 - mask_ratio))
    return torch.zeros(N, K, D), torch.zeros(N, L), torch.zeros(N, L, dtype=torch.long)
''', ALL["test_random_masking"], set()),
}

UNSHUFFLE_TEMPLATE = '''
def unshuffle(x_kept, mask_token, ids_restore):
    N, len_keep, D = x_kept.shape
    L = ids_restore.shape[1]
    mask_tokens = {tokens}
    x = torch.cat({order}, dim=1)
    return {result}
'''
UNSHUFFLE_RIGHT = dict(tokens="mask_token.expand(N, L - len_keep, D)",
                       order="[x_kept, mask_tokens]",
                       result="torch.gather(x, 1, ids_restore.unsqueeze(-1).expand(-1, -1, D))")


def _unshuffle(**changes) -> str:
    return UNSHUFFLE_TEMPLATE.format(**dict(UNSHUFFLE_RIGHT, **changes))


PLACEMENT = {"unshuffle_kept_tokens", "unshuffle_mask_token", "unshuffle_edges"}
UNSHUFFLE = {
    "inverse": (_unshuffle(
        result="torch.gather(x, 1, ids_restore.argsort(1).unsqueeze(-1).expand(-1, -1, D))"),
        PLACEMENT, set()),
    "not_reordered": (_unshuffle(result="x"), PLACEMENT, set()),
    "token_copy": (_unshuffle(tokens="mask_token.detach().clone().expand(N, L - len_keep, D)"),
                   {"unshuffle_gradient"}, set()),
    "float32": (_unshuffle(tokens="mask_token.float().expand(N, L - len_keep, D)",
                           order="[x_kept.float(), mask_tokens]"),
                {"unshuffle_dtype_and_inputs"}, set()),
    "zeros": ('''
def unshuffle(x_kept, mask_token, ids_restore):
    return torch.zeros(x_kept.shape[0], ids_restore.shape[1], x_kept.shape[2])
''', ALL["test_unshuffle"], set()),
    "all_mask_tokens": ('''
def unshuffle(x_kept, mask_token, ids_restore):
    return mask_token.expand(x_kept.shape[0], ids_restore.shape[1], x_kept.shape[2]) + 0
''', ALL["test_unshuffle"], set()),
}

LOSS_TEMPLATE = '''
def mae_loss(imgs, pred, mask, patch_size, norm_pix_loss=False):
    target = patchify(imgs, patch_size)
    if norm_pix_loss:
        mean = target.mean(dim={dim}, keepdim=True)
        var = target.var(dim={dim}, keepdim=True{unbiased})
        target = {normalised}
    loss = ((pred{detach} - target) ** 2).{per_patch}(dim=-1)
    return {reduce}
'''
LOSS_RIGHT = dict(dim="-1", unbiased="", normalised="(target - mean) / (var + 1e-6) ** 0.5",
                  detach="", per_patch="mean", reduce="(loss * mask).sum() / mask.sum()")


def _loss(**changes) -> str:
    return LOSS_TEMPLATE.format(**dict(LOSS_RIGHT, **changes))


NORM = {"loss_norm_pix", "loss_norm_eps"}
LOSS = {
    "visible": (_loss(reduce="(loss * (1 - mask)).sum() / (1 - mask).sum()"),
                ALL["test_mae_loss"] - {"loss_scalar_and_dtype"}, set()),
    "mean_with_mask": (_loss(reduce="(loss * mask).mean()"),
                       {"loss_values", "loss_norm_pix", "loss_gradient"}, set()),
    "pixel_sum": (_loss(per_patch="sum"),
                  {"loss_values", "loss_norm_pix", "loss_norm_eps", "loss_gradient"}, set()),
    "norm_ignored": (_loss(normalised="target"), NORM, set()),
    "biased": (_loss(unbiased=", unbiased=False"), {"loss_norm_pix"}, set()),
    "no_sqrt": (_loss(normalised="(target - mean) / (var + 1e-6)"), NORM, set()),
    "eps_outside": (_loss(normalised="(target - mean) / (var ** 0.5 + 1e-6)"),
                    {"loss_norm_eps"}, set()),
    "no_eps": (_loss(normalised="(target - mean) / var ** 0.5"), {"loss_norm_eps"}, set()),
    "whole_image": (_loss(dim="(1, 2)"), NORM, set()),
    "detached": (_loss(detach=".detach()"), {"loss_scalar_and_dtype", "loss_gradient"}, set()),
    "item": (_loss(reduce="((loss * mask).sum() / mask.sum()).item()"),
             {"loss_scalar_and_dtype", "loss_gradient"}, set()),
    "float64": (_loss(reduce="(loss.double() * mask).sum() / mask.sum()"),
                {"loss_scalar_and_dtype"}, set()),
    # faked: a constant
    "constant": ('''
def mae_loss(imgs, pred, mask, patch_size, norm_pix_loss=False):
    return torch.tensor(0.5)
''', ALL["test_mae_loss"], set()),
}
VARIANTS = {"patchify": PATCHIFY, "random_masking": MASKING, "unshuffle": UNSHUFFLE,
            "mae_loss": LOSS}


def _combined() -> list[dict]:
    """One submission per row: a mistake in each exercise at once (the exercises are scored
    apart, so each loses only its own properties). The hard-coded patch size shares its
    submission with the constant loss, which calls no patchify."""
    columns = {cell: list(table) for cell, table in VARIANTS.items()}
    columns["mae_loss"].remove("constant")
    columns["mae_loss"].insert(columns["patchify"].index("p2_only"), "constant")
    rows = max(len(names) for names in columns.values())
    return [{cell: names[i] for cell, names in columns.items() if i < len(names)}
            for i in range(rows)]


# ============================================================================ scoring


class TestContract(GraderContract):
    ASSIGNMENT, GRADER, FULL = ASSIGNMENT, GRADER, FULL


@pytest.fixture(scope="module")
def scored():
    """label -> PropertyResults, every submission scored once (two workers at a time)."""
    master, release, submissions = contract_submissions(ASSIGNMENT)
    submissions.update({f"demo_wrong_{cell}": with_answers(master, {cell: source})
                        for cell, source in demo.wrong_variants(ASSIGNMENT).items()})
    for i, row in enumerate(_combined()):
        submissions[f"mistakes_{i}"] = with_answers(
            master, {cell: VARIANTS[cell][name][0] for cell, name in row.items()})
    return score_all(submissions, release, GRADER)


def _failed(results, grade_id: str) -> set:
    return {CHECK[r.name] for r in results if r.grade_id == grade_id and not r.earned}


def test_every_property_has_a_check_of_its_own():
    """(The points adding up is GraderContract's.)"""
    assert len(CHECK) == sum(len(props) for props in GRADER.PROPERTIES.values())


def test_each_demo_wrong_variant_loses_points_in_its_own_cell_only(scored):
    wrong = demo.wrong_variants(ASSIGNMENT)
    assert wrong
    for cell in wrong:
        points = scoring.cell_points(scored[f"demo_wrong_{cell}"])
        assert points[CELL[cell]] < FULL[CELL[cell]], cell
        assert {g: v for g, v in points.items() if g != CELL[cell]} == \
            {g: v for g, v in FULL.items() if g != CELL[cell]}, (cell, points)


def test_the_blank_release_is_told_what_is_missing(scored):
    assert all("NotImplementedError" in r.message for r in scored["blank"])


@pytest.mark.parametrize("cell, name", [(cell, name) for cell, table in VARIANTS.items()
                                        for name in table])
def test_a_known_mistake_loses_its_properties(scored, cell, name):
    [index] = [i for i, row in enumerate(_combined()) if row.get(cell) == name]
    _, must, may = VARIANTS[cell][name]
    assert_mistake_costs(scored[f"mistakes_{index}"], CELL[cell], must, may, FULL[CELL[cell]],
                         CHECK)


def test_a_wrong_patchify_costs_nothing_in_the_loss(scored):
    """mae_loss calls the student's patchify: a layout mistake there (column-major, a plain
    reshape, the demo's channels-first) is exercise 1's alone."""
    for name in ("column_major", "plain_reshape", "view_flatten", "zeros"):
        [index] = [i for i, row in enumerate(_combined()) if row.get("patchify") == name]
        row = _combined()[index]
        if row["mae_loss"] in LOSS:
            _, must, may = LOSS[row["mae_loss"]]
            assert _failed(scored[f"mistakes_{index}"], "test_mae_loss") <= must | may, name
    assert scoring.cell_points(scored["demo_wrong_patchify"])["test_mae_loss"] == 3.0


def test_feedback_names_the_mistake(scored):
    def message(cell, name, check):
        [index] = [i for i, row in enumerate(_combined()) if row.get(cell) == name]
        return next(r.message for r in scored[f"mistakes_{index}"]
                    if r.grade_id == CELL[cell] and CHECK[r.name] == check)
    assert "column by column" in message("patchify", "column_major", "patchify_layout")
    assert "int(L * (1 - mask_ratio))" in message("random_masking", "round_len_keep",
                                                  "masking_len_keep")
    assert "1 = removed" in message("random_masking", "one_for_kept", "masking_mask")
    assert "shuffled order" in message("random_masking", "kept_sorted", "masking_x_kept")
    assert "inverse permutation" in message("unshuffle", "inverse", "unshuffle_kept_tokens")
    assert "biased" in message("mae_loss", "biased", "loss_norm_pix")
    assert "inside the square root" in message("mae_loss", "eps_outside", "loss_norm_eps")
    assert "visible" in message("mae_loss", "visible", "loss_values")


# ============================================================================ the references


def test_reference_patchify_is_the_texts_layout():
    """patch l = r * (W/p) + c; entry (i * p + j) * 3 + channel (the exercise text), and
    facebookresearch/mae's einsum."""
    rng = np.random.default_rng(0)
    for N, h, p in [(2, 3, 2), (1, 4, 3), (2, 2, 4), (1, 5, 1)]:
        imgs = rng.standard_normal((N, 3, h * p, h * p))
        got = GRADER.ref_patchify(imgs, p)
        for n, r, c, i, j, ch in zip(*(rng.integers(0, k, 50) for k in (N, h, h, p, p, 3))):
            assert got[n, r * h + c, (i * p + j) * 3 + ch] == imgs[n, ch, r * p + i, c * p + j]
        x = torch.from_numpy(imgs).reshape(N, 3, h, p, h, p)
        mae = torch.einsum("nchpwq->nhwpqc", x).reshape(N, h * h, p * p * 3)
        assert np.array_equal(got, mae.numpy())
        assert np.array_equal(GRADER.ref_unpatchify(got, p), imgs)


def test_reference_loss_against_torch():
    rng = np.random.default_rng(1)
    imgs = rng.standard_normal((3, 3, 8, 8))
    pred = rng.standard_normal((3, 16, 12))
    mask = (rng.random((3, 16)) < 0.5).astype(np.float64)
    mask[0, 0] = 1
    for norm in (False, True):
        target = torch.from_numpy(GRADER.ref_patchify(imgs, 2))
        if norm:
            target = (target - target.mean(-1, keepdim=True)) / torch.sqrt(
                torch.var(target, dim=-1, keepdim=True) + 1e-6)
        removed = torch.from_numpy(mask).bool()
        expected = F.mse_loss(torch.from_numpy(pred)[removed], target[removed]).item()
        got = GRADER.ref_loss(GRADER.ref_target(imgs, 2, norm), pred, mask)
        assert got == pytest.approx(expected, rel=1e-12)


def test_reference_len_keep_and_bfloat16_rounding():
    assert [GRADER.len_keep(L, r) for L, r in [(20, 0.9), (10, 0.9), (16, 0.0), (64, 0.75)]] \
        == [1, 0, 16, 16]                                     # the text's floating-point cases
    x = np.random.default_rng(2).standard_normal(1000).astype(np.float32) * 100
    assert np.array_equal(grader_tools.bf16(x), torch.from_numpy(x).bfloat16().float().numpy())


def test_uniform_bounds_hold_for_sampling_without_replacement():
    """The statistics property's bounds are at least 5 standard deviations of a right
    answer's frequencies (a false failure well under once in 10^5 gradings), and exact
    uniform draws stay inside them."""
    rng = np.random.default_rng(3)
    for N, L, ratio, tol, pair_tol in GRADER.UNIFORM_CASES:
        K = GRADER.len_keep(L, ratio)
        single, both = K / L, K * (K - 1) / (L * (L - 1))
        assert tol >= 5 * np.sqrt(single * (1 - single) / N)
        assert pair_tol >= 5 * np.sqrt(both * (1 - both) / N)
        for _ in range(20):
            kept = np.argsort(rng.random((N, L)), axis=1)[:, :K]
            hits = np.zeros((N, L))
            np.put_along_axis(hits, kept, 1.0, axis=1)
            assert np.abs(hits.mean(0) - single).max() < tol
            assert np.abs((hits.T @ hits / N)[~np.eye(L, dtype=bool)] - both).max() < pair_tol
