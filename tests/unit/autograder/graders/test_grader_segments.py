"""The trusted grader of notebook 05 (autograder/graders/05_paradigms_and_segments.py).

Submissions are built from the master (it holds the solutions) and scored against the
student release in notebooks/, each in one score_notebook call, two at a time: the master,
the demo's answers written differently, the blank release, and notebooks carrying one known
mistake per exercise (the seven exercises are independent: no answer calls another's). A
partial mistake loses exactly the properties it breaks and keeps the others; a faked answer
loses them all. The grader's reference computations are checked against torch at the end,
without a sandbox (those tests run before the master exists; the scored ones need it).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autograder import demo, scoring
from helpers import (GraderContract, assert_mistake_costs, lost,
                     contract_submissions, score_all, unearned, with_answers)

ASSIGNMENT = "05_paradigms_and_segments"
FULL = {"test_rotate_batch": 2.0, "test_decoder": 2.0, "test_segmentation_head": 2.0,
        "test_upsample_logits": 1.0, "test_segmentation_loss": 1.0,
        "test_encode_points": 2.0, "test_best_of_three_loss": 3.0}
CELL = {grade_id.removeprefix("test_"): grade_id for grade_id in FULL}   # answer -> test

GRADER = scoring.load_grader(ASSIGNMENT)
CHECK = {p.name: p.check.__name__ for props in GRADER.PROPERTIES.values() for p in props}
ALL = {grade_id: {p.check.__name__ for p in props}
       for grade_id, props in GRADER.PROPERTIES.items()}

# ============================================================================ known mistakes
# Each: the whole answer cell, the properties it must fail and those it may fail (by the
# names of their check functions). A cell that must fail every property is a fake.

ROTATE_TEMPLATE = '''
def rotate_batch(images):
    copies = [{turn} for k in range(4)]
    labels = {labels}
    return torch.cat(copies), labels
'''
ROTATE_RIGHT = dict(turn="torch.rot90(images, k, dims=(2, 3))",
                    labels="torch.arange(4).repeat_interleave(len(images))")


def _rotate(**changes) -> str:
    return ROTATE_TEMPLATE.format(**dict(ROTATE_RIGHT, **changes))


ROTATE = {
    "other_way": (_rotate(turn="torch.rot90(images, -k, dims=(2, 3))"), {"rotate_turns"},
                  set()),
    "transpose": (_rotate(turn="images.transpose(2, 3) if k % 2 else images"),
                  {"rotate_turns"}, set()),
    "interleaved": ('''
def rotate_batch(images):
    copies = torch.stack([torch.rot90(images, k, dims=(2, 3)) for k in range(4)], dim=1)
    return copies.flatten(0, 1), torch.arange(4).repeat(len(images))
''', {"rotate_blocks"}, set()),
    "float_labels": (_rotate(labels="torch.arange(4.0).repeat_interleave(len(images))"),
                     {"rotate_types"}, set()),
    "through_numpy": (_rotate(
        turn="torch.from_numpy(np.rot90(images.numpy(), k, axes=(2, 3)).copy())"),
        {"rotate_gradient"}, set()),
    "zeros": ('''
def rotate_batch(images):
    labels = torch.arange(4).repeat_interleave(len(images))
    return torch.zeros(4 * len(images), *images.shape[1:]), labels
''', ALL["test_rotate_batch"], set()),
}

DECODER_TEMPLATE = '''
class Decoder(nn.Module):
    def __init__(self, feature_dim, width=32, image_size=32):
        super().__init__()
        self.width, self.side = width, image_size // 8
        self.fc = nn.Linear(feature_dim, 4 * width * self.side ** 2)
        self.up = nn.Sequential(
            {first},
            {second},
            {last})

    def forward(self, h):
        x = self.fc(h{detach}).view(len(h), 4 * self.width, self.side, self.side)
        return self.up(x)
'''
DECODER_RIGHT = dict(
    first="nn.ConvTranspose2d(4 * width, 2 * width, 4, stride=2, padding=1), "
          "nn.BatchNorm2d(2 * width), nn.ReLU()",
    second="nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1), "
           "nn.BatchNorm2d(width), nn.ReLU()",
    last="nn.ConvTranspose2d(width, 3, 4, stride=2, padding=1)", detach="")


def _decoder(**changes) -> str:
    return DECODER_TEMPLATE.format(**dict(DECODER_RIGHT, **changes))


DECODER = {
    "final_tanh": (_decoder(last=DECODER_RIGHT["last"] + ", nn.Tanh()"),
                   {"decoder_forward", "decoder_output_signs"}, set()),
    "final_relu": (_decoder(last=DECODER_RIGHT["last"] + ", nn.ReLU()"),
                   {"decoder_forward", "decoder_output_signs"}, set()),
    "relu_before_bn": (_decoder(
        first="nn.ConvTranspose2d(4 * width, 2 * width, 4, stride=2, padding=1), nn.ReLU(), "
              "nn.BatchNorm2d(2 * width)",
        second="nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1), nn.ReLU(), "
               "nn.BatchNorm2d(width)"), {"decoder_forward"}, set()),
    "no_batchnorm": (_decoder(
        first="nn.ConvTranspose2d(4 * width, 2 * width, 4, stride=2, padding=1), nn.ReLU()",
        second="nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1), nn.ReLU()"),
        {"decoder_structure", "decoder_forward"}, set()),
    "kernel_2": (_decoder(
        first="nn.ConvTranspose2d(4 * width, 2 * width, 2, stride=2), "
              "nn.BatchNorm2d(2 * width), nn.ReLU()",
        second="nn.ConvTranspose2d(2 * width, width, 2, stride=2), nn.BatchNorm2d(width), "
               "nn.ReLU()",
        last="nn.ConvTranspose2d(width, 3, 2, stride=2)"), {"decoder_structure"}, set()),
    "interpolate": ('''
class Decoder(nn.Module):
    def __init__(self, feature_dim, width=32, image_size=32):
        super().__init__()
        self.width, self.side = width, image_size // 8
        self.fc = nn.Linear(feature_dim, 4 * width * self.side ** 2)
        self.c1, self.b1 = nn.Conv2d(4 * width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width)
        self.c2, self.b2 = nn.Conv2d(2 * width, width, 3, padding=1), nn.BatchNorm2d(width)
        self.c3 = nn.Conv2d(width, 3, 3, padding=1)

    def forward(self, h):
        x = self.fc(h).view(len(h), 4 * self.width, self.side, self.side)
        x = F.relu(self.b1(self.c1(F.interpolate(x, scale_factor=2))))
        x = F.relu(self.b2(self.c2(F.interpolate(x, scale_factor=2))))
        return self.c3(F.interpolate(x, scale_factor=2))
''', {"decoder_structure", "decoder_forward"}, set()),
    "detached": (_decoder(detach=".detach()"), {"decoder_gradients"}, set()),
    "zeros": ('''
class Decoder(nn.Module):
    def __init__(self, feature_dim, width=32, image_size=32):
        super().__init__()
        self.size = image_size

    def forward(self, h):
        return torch.zeros(len(h), 3, self.size, self.size)
''', ALL["test_decoder"], set()),
}

HEAD_TEMPLATE = '''
class SegmentationHead(nn.Module):
    def __init__(self, embed_dim, num_classes):
        super().__init__()
        self.linear = {layer}

    def forward(self, patch_tokens):
        B, L, _ = patch_tokens.shape
        g = math.isqrt(L)
        logits = self.linear(patch_tokens{detach})
        return {grid}
'''
HEAD_RIGHT = dict(layer="nn.Linear(embed_dim, num_classes)", detach="",
                  grid="logits.transpose(1, 2).reshape(B, -1, g, g)")


def _head(**changes) -> str:
    return HEAD_TEMPLATE.format(**dict(HEAD_RIGHT, **changes))


HEAD = {
    "column_major": (_head(grid="logits.transpose(1, 2).reshape(B, -1, g, g).transpose(2, 3)"),
                     {"head_row_major"}, set()),
    "plain_reshape": (_head(grid="logits.reshape(B, -1, g, g)"),
                      {"head_per_token", "head_row_major"}, set()),
    "mlp": (_head(layer="nn.Sequential(nn.Linear(embed_dim, embed_dim), nn.ReLU(), "
                        "nn.Linear(embed_dim, num_classes))"),
            {"head_structure", "head_per_token", "head_row_major"}, set()),
    "detached": (_head(detach=".detach()"), {"head_gradient"}, set()),
    "zeros": ('''
class SegmentationHead(nn.Module):
    def __init__(self, embed_dim, num_classes):
        super().__init__()
        self.k = num_classes

    def forward(self, patch_tokens):
        g = math.isqrt(patch_tokens.shape[1])
        return torch.zeros(len(patch_tokens), self.k, g, g)
''', ALL["test_segmentation_head"], set()),
}

UPSAMPLE_TEMPLATE = '''
def upsample_logits(logits, size):
    return F.interpolate({source}, size=(size, size), mode="{mode}"{corners})
'''
UPSAMPLE_RIGHT = dict(source="logits", mode="bilinear", corners=", align_corners=False")


def _upsample(**changes) -> str:
    return UPSAMPLE_TEMPLATE.format(**dict(UPSAMPLE_RIGHT, **changes))


UPSAMPLE = {
    "nearest": (_upsample(mode="nearest", corners=""), {"upsample_values"}, set()),
    "align_corners": (_upsample(corners=", align_corners=True"), {"upsample_values"}, set()),
    "softmax_first": (_upsample(source="logits.softmax(dim=1)"),
                      {"upsample_values", "upsample_linear"}, set()),
    "float32": (_upsample(source="logits.float()"), {"upsample_shape_dtype"}, set()),
    "scale_factor": ('''
def upsample_logits(logits, size):
    return F.interpolate(logits, scale_factor=size // logits.shape[-1], mode="bilinear")
''', {"upsample_values"}, set()),
    "zeros": ('''
def upsample_logits(logits, size):
    return torch.zeros(*logits.shape[:2], size, size)
''', ALL["test_upsample_logits"], set()),
}


def _loss(body: str) -> str:
    return f"\ndef segmentation_loss(logits, target):\n    return {body}\n"


LOSS = {
    "ignored_in_mean": (_loss("F.cross_entropy(logits, target, ignore_index=IGNORE, "
                              "reduction='none').mean()"), {"segmentation_values"}, set()),
    "summed": (_loss("F.cross_entropy(logits, target, ignore_index=IGNORE, reduction='sum')"),
               {"segmentation_values"}, set()),
    "per_image": (_loss("torch.stack([F.cross_entropy(logits[b:b + 1], target[b:b + 1], "
                        "ignore_index=IGNORE) for b in range(len(logits))]).mean()"),
                  {"segmentation_values"}, set()),
    "log_of_softmax": (_loss("F.nll_loss(torch.log(torch.softmax(logits, dim=1)), target, "
                             "ignore_index=IGNORE)"), {"segmentation_scalar"}, set()),
    "item": (_loss("F.cross_entropy(logits, target, ignore_index=IGNORE).item()"),
             {"segmentation_ignored", "segmentation_scalar"}, set()),
    "no_ignore_index": (_loss("F.cross_entropy(logits, target)"),
                        ALL["test_segmentation_loss"], set()),
    "constant": (_loss("torch.tensor(0.5)"), ALL["test_segmentation_loss"], set()),
}

POINTS_TEMPLATE = '''
def encode_points(points, labels, image_size, gaussian_matrix, label_embedding):
    c = (points{order} + {half}) / image_size
    c = {centre}
    proj = {two_pi}(c @ gaussian_matrix)
    return torch.cat([{first}, {second}], dim=-1){label}
'''
POINTS_RIGHT = dict(order="", half="0.5", centre="2 * c - 1", two_pi="2 * math.pi * ",
                    first="proj.sin()", second="proj.cos()",
                    label=" + label_embedding[labels]")


def _points(**changes) -> str:
    return POINTS_TEMPLATE.format(**dict(POINTS_RIGHT, **changes))


POSITIONAL = {"points_positional"}
POINTS = {
    "no_half": (_points(half="0"), POSITIONAL, set()),
    "not_centred": (_points(centre="c"), POSITIONAL, set()),
    "no_two_pi": (_points(two_pi=""), POSITIONAL, set()),
    "cos_first": (_points(first="proj.cos()", second="proj.sin()"), POSITIONAL, set()),
    "y_x": (_points(order=".flip(-1)"), POSITIONAL, set()),
    "no_label": (_points(label=""), {"points_labels", "points_gradient"}, set()),
    "rows_swapped": (_points(label=" + label_embedding[1 - labels]"),
                     {"points_labels", "points_gradient"}, set()),
    "in_place": ('''
def encode_points(points, labels, image_size, gaussian_matrix, label_embedding):
    points += 0.5
    c = 2 * points / image_size - 1
    proj = 2 * math.pi * (c @ gaussian_matrix)
    return torch.cat([proj.sin(), proj.cos()], dim=-1) + label_embedding[labels]
''', {"points_inputs_unchanged"}, set()),
    "zeros": ('''
def encode_points(points, labels, image_size, gaussian_matrix, label_embedding):
    return torch.zeros(*labels.shape, label_embedding.shape[1])
''', ALL["test_encode_points"], set()),
}

BEST_TEMPLATE = '''
def best_of_three_loss(mask_logits, iou_pred, target):
    truth = target.unsqueeze(1).expand_as(mask_logits).float()
    prob = torch.sigmoid(mask_logits)
    bce = F.binary_cross_entropy_with_logits(mask_logits, truth, reduction="none").mean((2, 3))
    dice = 1 - (2 * (prob * truth).sum((2, 3)) + 1) / (prob.sum((2, 3)) + truth.sum((2, 3)) + 1)
    mask_term = {reduce}
    {context}:
        m = {mask}
        t = (truth > 0.5).float()
        inter = (m * t).sum((2, 3))
        union = (m + t - m * t).sum((2, 3))
        iou = {iou}
    return mask_term + {mse}
'''
BEST_RIGHT = dict(reduce="(bce + dice).min(dim=1).values.mean()",
                  context="with torch.no_grad()", mask="(mask_logits > 0).float()",
                  iou="torch.where(union > 0, inter / union.clamp(min=1e-9), 0 * union)",
                  mse="F.mse_loss(iou_pred, iou)")


def _best(**changes) -> str:
    return BEST_TEMPLATE.format(**dict(BEST_RIGHT, **changes))


MASK = {"best_mask_term", "best_mask_gradient"}
BEST = {
    "mean_over_candidates": (_best(reduce="(bce + dice).mean()"), MASK, set()),
    "min_over_batch": (_best(reduce="(bce + dice).min()"), MASK, set()),
    "no_dice": (_best(reduce="bce.min(dim=1).values.mean()"), {"best_mask_term"}, set()),
    "soft_iou": (_best(mask="torch.sigmoid(mask_logits)"), {"best_iou_term"}, set()),
    "soft_iou_with_gradient": (_best(mask="torch.sigmoid(mask_logits)", context="if True"),
                               {"best_iou_term", "best_mask_gradient"}, set()),
    "empty_union_nan": (_best(iou="inter / union"), {"best_iou_term"}, set()),
    "iou_pred_detached": (_best(mse="F.mse_loss(iou_pred.detach(), iou)"),
                          {"best_iou_pred_gradient"}, set()),
    "summed_errors": (_best(mse="((iou_pred - iou) ** 2).sum()"),
                      {"best_iou_term", "best_iou_pred_gradient"}, set()),
    "constant": ('''
def best_of_three_loss(mask_logits, iou_pred, target):
    return torch.tensor(0.5)
''', ALL["test_best_of_three_loss"], set()),
}

VARIANTS = {"rotate_batch": ROTATE, "decoder": DECODER, "segmentation_head": HEAD,
            "upsample_logits": UPSAMPLE, "segmentation_loss": LOSS, "encode_points": POINTS,
            "best_of_three_loss": BEST}


def _combined() -> list[dict]:
    """One submission per row: a mistake in each exercise at once (the exercises are scored
    apart, so each loses only its own properties)."""
    columns = {cell: list(table) for cell, table in VARIANTS.items()}
    rows = max(len(names) for names in columns.values())
    return [{cell: names[i] for cell, names in columns.items() if i < len(names)}
            for i in range(rows)]


def test_the_tables_name_real_properties_and_cells():
    assert set(VARIANTS) == set(CELL) and set(CELL.values()) == set(GRADER.PROPERTIES)
    assert len(CHECK) == sum(len(props) for props in GRADER.PROPERTIES.values())
    for cell, table in VARIANTS.items():
        for name, (_, must, may) in table.items():
            assert must and must | may <= ALL[CELL[cell]], (cell, name)
    assert {g: sum(p.points for p in props) for g, props in GRADER.PROPERTIES.items()} == FULL
    wrong, correct = demo.wrong_variants(ASSIGNMENT), demo.written_differently(ASSIGNMENT)
    assert set(wrong) <= set(CELL) and set(correct) >= set(CELL)


# ============================================================================ scoring


@pytest.mark.notebook
class TestContract(GraderContract):
    ASSIGNMENT, GRADER, FULL = ASSIGNMENT, GRADER, FULL


@pytest.fixture(scope="module")
def scored():
    """label -> PropertyResults, every submission scored once (two workers at a time)."""
    master, release, submissions = contract_submissions(ASSIGNMENT)
    submissions["demo_wrong"] = with_answers(master, demo.wrong_variants(ASSIGNMENT))
    for i, row in enumerate(_combined()):
        submissions[f"mistakes_{i}"] = with_answers(
            master, {cell: VARIANTS[cell][name][0] for cell, name in row.items()})
    return score_all(submissions, release, GRADER)


@pytest.mark.notebook
def test_the_demo_wrong_variants_lose_points_in_their_own_cells_only(scored):
    """All of the demo's wrong variants in one notebook (as the e2e demo grades them): each
    loses some of its cell's points, not all; the other cells keep theirs."""
    wrong = demo.wrong_variants(ASSIGNMENT)
    points = scoring.cell_points(scored["demo_wrong"])
    for cell in wrong:
        assert 0 < points[CELL[cell]] < FULL[CELL[cell]], (cell, unearned(scored["demo_wrong"]))
    assert {g: v for g, v in points.items() if g not in {CELL[c] for c in wrong}} == \
        {g: v for g, v in FULL.items() if g not in {CELL[c] for c in wrong}}


@pytest.mark.notebook
@pytest.mark.parametrize("cell, name", [(cell, name) for cell, table in VARIANTS.items()
                                        for name in table])
def test_a_known_mistake_loses_its_properties(scored, cell, name):
    [index] = [i for i, row in enumerate(_combined()) if row.get(cell) == name]
    _, must, may = VARIANTS[cell][name]
    assert_mistake_costs(scored[f"mistakes_{index}"], CELL[cell], must, may, FULL[CELL[cell]],
                         CHECK)


@pytest.mark.notebook
def test_feedback_names_the_mistake(scored):
    def said(cell, name):
        [index] = [i for i, row in enumerate(_combined()) if row.get(cell) == name]
        return " ".join(lost(scored[f"mistakes_{index}"], CELL[cell]).values()).lower()
    assert "other way round" in said("rotate_batch", "other_way")
    assert "transposed" in said("rotate_batch", "transpose")
    assert "interleaved" in said("rotate_batch", "interleaved")
    assert "int64" in said("rotate_batch", "float_labels")
    assert "tanh" in said("decoder", "final_tanh")
    assert "both signs" in said("decoder", "final_relu")
    assert "before the batchnorm2d" in said("decoder", "relu_before_bn")
    assert "f.interpolate" in said("decoder", "interpolate")
    assert "kernel_size=4" in said("decoder", "kernel_2")
    assert "column by column" in said("segmentation_head", "column_major")
    assert "class axis" in said("segmentation_head", "plain_reshape")
    assert "nearest" in said("upsample_logits", "nearest")
    assert "align_corners=false" in said("upsample_logits", "align_corners")
    assert "probabilities" in said("upsample_logits", "softmax_first")
    assert "ignored pixels are counted" in said("segmentation_loss", "ignored_in_mean")
    assert "sum" in said("segmentation_loss", "summed")
    assert "each image's mean" in said("segmentation_loss", "per_image")
    assert "finite" in said("segmentation_loss", "log_of_softmax")
    assert "0.5" in said("encode_points", "no_half")
    assert "[-1, 1]" in said("encode_points", "not_centred")
    assert "2 * pi" in said("encode_points", "no_two_pi")
    assert "cosines come before" in said("encode_points", "cos_first")
    assert "(y, x)" in said("encode_points", "y_x")
    assert "not added" in said("encode_points", "no_label")
    assert "swapped" in said("encode_points", "rows_swapped")
    assert "in place" in said("encode_points", "in_place")
    assert "averages the three candidates" in said("best_of_three_loss", "mean_over_candidates")
    assert "whole batch" in said("best_of_three_loss", "min_over_batch")
    assert "dice loss is missing" in said("best_of_three_loss", "no_dice")
    assert "probabilities" in said("best_of_three_loss", "soft_iou")
    assert "union is empty" in said("best_of_three_loss", "empty_union_nan")
    assert "iou_pred" in said("best_of_three_loss", "iou_pred_detached")


# ============================================================================ the references
# Short torch versions of the exercises, as the text states them, against the grader's
# NumPy computations.


def test_reference_rotation_is_torch_rot90():
    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 6):
        x = rng.standard_normal((2, 3, n, n))
        for k in range(-1, 6):
            assert np.array_equal(GRADER.ref_rot90(x, k),
                                  torch.rot90(torch.from_numpy(x), k, dims=(2, 3)).numpy())
    rotated, labels = GRADER.ref_rotate_batch(x)
    expected = torch.cat([torch.rot90(torch.from_numpy(x), k, dims=(2, 3)) for k in range(4)])
    assert np.array_equal(rotated, expected.numpy())
    assert labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]


def test_reference_decoder_matches_torch_modules():
    """The grader's forward pass (conv_transpose, batch_norm) on a torch decoder, in both
    modes, with the module's own structure read as the grader reads it."""
    torch.manual_seed(0)
    width, fd, size = 5, 7, 16
    side = size // 8

    class Reference(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(fd, 4 * width * side * side)
            self.a = nn.ConvTranspose2d(4 * width, 2 * width, 4, 2, 1)
            self.na = nn.BatchNorm2d(2 * width)
            self.b = nn.ConvTranspose2d(2 * width, width, 4, 2, 1)
            self.nb = nn.BatchNorm2d(width)
            self.c = nn.ConvTranspose2d(width, 3, 4, 2, 1)

        def forward(self, h):
            x = self.fc(h).view(len(h), 4 * width, side, side)
            x = F.relu(self.na(self.a(x)))
            return self.c(F.relu(self.nb(self.b(x))))

    module = Reference().double()
    with torch.no_grad():
        for norm in (module.na, module.nb):
            norm.weight.uniform_(0.5, 2)
            norm.bias.uniform_(-0.5, 0.5)
            norm.running_mean.uniform_(-0.3, 0.3)
            norm.running_var.uniform_(0.5, 2)
    settings = {c: {"stride": (2, 2), "padding": (1, 1)} for c in "abc"}
    parts = ("fc", ["a", "b", "c"], ["na", "nb"], settings, [1e-5, 1e-5])
    h = torch.randn(3, fd, dtype=torch.float64)
    for train in (False, True):
        module.train(train)
        state = {"parameters": {k: v.detach().numpy().copy() for k, v in module.named_parameters()},
                 "buffers": {k: v.detach().numpy().copy() for k, v in module.named_buffers()}}
        with torch.no_grad():
            expected = module(h).numpy()
        got = GRADER.ref_decoder(state, parts, h.numpy(), train)
        assert np.allclose(got, expected, rtol=1e-10, atol=1e-10), train
    conv = nn.ConvTranspose2d(3, 2, 3, stride=2, padding=0).double()
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    got = GRADER.conv_transpose(x.numpy(), conv.weight.detach().numpy(),
                                conv.bias.detach().numpy(), (2, 2), (0, 0))
    assert np.allclose(got, conv(x).detach().numpy(), rtol=1e-10, atol=1e-10)


def test_reference_head_layout_is_row_major():
    rng = np.random.default_rng(1)
    tokens = rng.standard_normal((2, 9, 4))
    linear = nn.Linear(4, 3).double()
    logits = linear(torch.from_numpy(tokens))
    expected = logits.transpose(1, 2).reshape(2, 3, 3, 3).detach().numpy()
    state = {"parameters": {"weight": linear.weight.detach().numpy(),
                            "bias": linear.bias.detach().numpy()}}
    got = GRADER.ref_head_grid(GRADER.ref_token_logits(state, "weight", "bias", tokens))
    assert np.allclose(got, expected, rtol=1e-12, atol=1e-12)
    assert got[1, :, 1, 2].tolist() == pytest.approx(logits[1, 5].tolist())   # l = 1 * 3 + 2


@pytest.mark.parametrize("g, size", [(2, 8), (3, 16), (4, 14), (7, 32), (5, 11), (1, 4),
                                     (6, 6), (4, 3)])
def test_reference_upsampling_is_f_interpolate(g, size):
    x = torch.from_numpy(np.random.default_rng(g * size).standard_normal((2, 3, g, g)))
    for kind, kwargs in [("bilinear", dict(mode="bilinear", align_corners=False)),
                         ("corners", dict(mode="bilinear", align_corners=True)),
                         ("nearest", dict(mode="nearest"))]:
        expected = F.interpolate(x, size=(size, size), **kwargs).numpy()
        assert np.allclose(GRADER.ref_upsample(x.numpy(), size, kind), expected,
                           rtol=1e-12, atol=1e-12), kind


def test_reference_segmentation_loss_is_cross_entropy():
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((3, 5, 4, 6)) * 3
    target = rng.integers(0, 5, size=(3, 4, 6))
    target[rng.random(target.shape) < 0.4] = GRADER.IGNORE
    x = torch.tensor(logits, requires_grad=True)
    loss = F.cross_entropy(x, torch.from_numpy(target), ignore_index=255)
    loss.backward()
    assert GRADER.ref_segmentation_loss(logits, target) == pytest.approx(loss.item(), rel=1e-12)
    assert np.allclose(GRADER.ref_segmentation_grad(logits, target), x.grad.numpy(),
                       rtol=1e-10, atol=1e-12)


def test_reference_point_encoding():
    rng = np.random.default_rng(3)
    points = rng.random((2, 4, 2)) * 64
    gaussian = rng.standard_normal((2, 8))
    c = (torch.from_numpy(points) + 0.5) / 64 * 2 - 1
    proj = 2 * math.pi * c @ torch.from_numpy(gaussian)
    expected = torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1).numpy()
    assert np.allclose(GRADER.ref_positional(points, 64, gaussian), expected, rtol=1e-12,
                       atol=1e-12)
    x_only = points.copy()
    x_only[..., 1] = 0                  # x is the first coordinate: it meets row 0 of G
    c = 2 * (x_only + 0.5) / 64 - 1
    assert np.allclose(GRADER.ref_positional(x_only, 64, gaussian)[..., :8],
                       np.sin(2 * np.pi * (c[..., :1] * gaussian[0] + c[..., 1:] * gaussian[1])))


def test_reference_best_of_three_matches_torch():
    rng = np.random.default_rng(4)
    B, H, W = 3, 5, 6
    logits = rng.standard_normal((B, 3, H, W)) * 2
    target = (rng.random((B, H, W)) < 0.4).astype(np.float64)
    target[0] = 0
    logits[0, 1] = -1.0                                   # an empty union: IoU 0
    iou_pred = rng.random((B, 3))
    x, t = torch.from_numpy(logits), torch.from_numpy(target)
    per_candidate = []
    ious = torch.zeros(B, 3, dtype=torch.float64)
    for b in range(B):
        row = []
        for c in range(3):
            p = torch.sigmoid(x[b, c])
            bce = F.binary_cross_entropy_with_logits(x[b, c], t[b])
            dice = 1 - (2 * (p * t[b]).sum() + 1) / (p.sum() + t[b].sum() + 1)
            row.append(bce + dice)
            m, truth = x[b, c] > 0, t[b] > 0.5
            union = (m | truth).sum().item()
            ious[b, c] = (m & truth).sum().item() / union if union else 0.0
        per_candidate.append(torch.stack(row))
    losses = torch.stack(per_candidate)
    expected = losses.min(dim=1).values.mean() + F.mse_loss(torch.from_numpy(iou_pred), ious)
    bce, dice = GRADER.ref_mask_losses(logits, target)
    assert np.allclose(bce + dice, losses.numpy(), rtol=1e-12)
    assert np.allclose(GRADER.ref_iou(logits, target), ious.numpy(), rtol=1e-15, atol=0)
    assert GRADER.ref_iou(logits, target)[0, 1] == 0
    assert GRADER.ref_best_of_three(logits, iou_pred, target) == \
        pytest.approx(expected.item(), rel=1e-12)


class _Loss:
    """A stand-in worker whose best_of_three_loss is A + mean((iou_pred - u) ** 2)."""

    def __init__(self, A, u, scale=1.0):
        self.A, self.u, self.scale = A, u, scale

    def call(self, name, *args, **kwargs):
        if name != "best_of_three_loss":
            return None                                        # put()'s tensors
        q = np.asarray(args[1], dtype=np.float64)
        return np.asarray(self.A + self.scale * ((q - self.u) ** 2).mean(), dtype=np.float32)

    @staticmethod
    def ref(name):
        return {"$handle": name}


def test_the_loss_is_split_into_its_two_terms():
    """The mask term and the IoU targets come back from the loss's values alone; a loss of
    another form (summed errors) is told apart."""
    rng = np.random.default_rng(5)
    for B in (1, 2, 4):
        A, u = float(rng.uniform(0.5, 2)), rng.random((B, 3))
        logits, target = np.zeros((B, 3, 2, 2), np.float32), np.zeros((B, 2, 2), np.float32)
        got = GRADER._b3_terms(_Loss(A, u), rng, logits, target)
        assert got is not None
        assert got[0] == pytest.approx(A, abs=2e-5) and np.allclose(got[1], u, atol=1e-4)
        assert GRADER._b3_terms(_Loss(A, u, scale=3 * B), rng, logits, target) is None
