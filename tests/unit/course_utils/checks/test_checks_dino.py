"""The visible checks of notebook 04 accept right answers and name the known mistakes."""
from __future__ import annotations

import random
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision import transforms as T
from torchvision.transforms import v2

from check_data.dino import (cosine_schedule, dino_loss, make_center, make_loss, make_schedule,
                             update_center)
from course_utils import augment
from course_utils.checks import dino as checks
from helpers import fails_with


# ----------------------------------------------------------------------------- multi-crop


class MultiCropTransform:
    """The notebook's solution."""

    def __init__(self, global_size=32, local_size=16, n_local=6, global_scale=(0.4, 1.0),
                 local_scale=(0.05, 0.4)):
        def crop(size, scale, solarize=False):
            steps = [T.RandomResizedCrop(size, scale=scale), T.RandomHorizontalFlip(),
                     T.RandomApply([T.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8),
                     T.RandomGrayscale(p=0.2)]
            if solarize:
                steps.append(T.RandomSolarize(threshold=128, p=0.2))
            return T.Compose(steps + [T.ToTensor(), augment.normalize()])

        self.global_1 = crop(global_size, global_scale)
        self.global_2 = crop(global_size, global_scale, solarize=True)
        self.local = crop(local_size, local_scale)
        self.n_local = n_local

    def __call__(self, image):
        crops = [self.global_1(image), self.global_2(image)]
        crops += [self.local(image) for _ in range(self.n_local)]
        return crops


class MultiCropList:
    """Written differently: one pipeline per crop, tuple sizes, a tuple returned."""

    def __init__(self, global_size=32, local_size=16, n_local=6, global_scale=(0.4, 1.0),
                 local_scale=(0.05, 0.4)):
        colour = [T.RandomHorizontalFlip(),
                  T.RandomApply([T.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8),
                  T.RandomGrayscale(p=0.2)]
        finish = [T.ToTensor(), augment.normalize()]
        sizes = [(global_size, global_scale)] * 2 + [(local_size, local_scale)] * n_local
        self.pipelines = [T.Compose([T.RandomResizedCrop((s, s), scale=sc)] + colour
                                    + [T.RandomSolarize(128, p=0.2)] * (k == 1) + finish)
                          for k, (s, sc) in enumerate(sizes)]

    def __call__(self, image):
        return tuple(p(image) for p in self.pipelines)


def make_multicrop(order="right", normalise="right", repeat=None, scales="right",
                   sizes="right", n_fixed=None, crop_class=T.RandomResizedCrop,
                   to_tensor=True, flip=True, jitter=(0.4, 0.4, 0.2, 0.1), jitter_p=0.8,
                   wrap_jitter=True, gray_p=0.2, solarize="second",
                   solarize_settings=(128, 0.2)):
    """MultiCropTransform with one mistake switched on."""
    class Transform:
        def __init__(self, global_size=32, local_size=16, n_local=6,
                     global_scale=(0.4, 1.0), local_scale=(0.05, 0.4)):
            gs, ls = {"right": (global_scale, local_scale),
                      "swapped": (local_scale, global_scale),
                      "defaults": ((0.4, 1.0), (0.05, 0.4)),
                      "global_default": ((0.4, 1.0), local_scale)}.get(scales, (None, None))
            g, l = (32, 16) if sizes == "fixed" else (global_size, local_size)
            finish = [T.ToTensor()] if to_tensor else []
            if to_tensor and normalise == "right":
                finish.append(augment.normalize())
            elif to_tensor and normalise == "imagenet":
                finish.append(T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)))

            def crop(size, scale, solarized):
                first = crop_class(size) if scale is None else crop_class(size, scale=scale)
                jittering = T.ColorJitter(*jitter)
                steps = [first] + [T.RandomHorizontalFlip()] * flip
                steps += [T.RandomApply([jittering], p=jitter_p) if wrap_jitter else jittering]
                steps += [T.RandomGrayscale(p=gray_p)] if gray_p is not None else []
                if solarized:
                    steps.append(T.RandomSolarize(*solarize_settings[:1],
                                                  p=solarize_settings[1]))
                return T.Compose(steps + finish)
            sol = {"second": (False, True, False), "none": (False, False, False),
                   "both": (True, True, False), "first": (True, False, False),
                   "local": (False, True, True)}[solarize]
            self.global_crop, self.second_crop = crop(g, gs, sol[0]), crop(g, gs, sol[1])
            self.local_crop = crop(l, ls, sol[2])
            self.n_local = n_local if n_fixed is None else n_fixed

        def __call__(self, image):
            if repeat == "global":
                globals_ = [self.global_crop(image)] * 2
            else:
                globals_ = [self.global_crop(image), self.second_crop(image)]
            if repeat == "local":
                locals_ = [self.local_crop(image)] * self.n_local
            else:
                locals_ = [self.local_crop(image) for _ in range(self.n_local)]
            return locals_ + globals_ if order == "locals_first" else globals_ + locals_
    return Transform


def test_multicrop_accepts_right_answers(capsys):
    checks.check_multicrop_transform(MultiCropTransform)
    checks.check_multicrop_transform(MultiCropList)
    checks.check_multicrop_transform(make_multicrop())
    out = capsys.readouterr()
    assert out.out.count("[ok] MultiCropTransform") == 3 and out.err == ""


@pytest.mark.parametrize("kwargs, words", [
    (dict(order="locals_first"), ["local crops come first"]),
    (dict(normalise="none"), ["[0, 1]", "augment.normalize()"]),
    (dict(normalise="imagenet"), ["imagenet"]),
    (dict(repeat="global"), ["same crop repeated", "separately"]),
    (dict(repeat="local"), ["same crop repeated", "separately"]),
    (dict(scales="swapped"), ["scales are swapped"]),
    (dict(scales="defaults"), ["hard-coded", "global_scale"]),
    (dict(scales="global_default"), ["hard-coded", "global_scale"]),
    (dict(scales="none"), ["(0.08, 1.0)", "scale=global_scale"]),
    (dict(sizes="fixed"), ["hard-coded", "global_size"]),
    (dict(n_fixed=6), ["crops, expected 2 + n_local"]),
    (dict(crop_class=v2.RandomResizedCrop), ["no torchvision.transforms.randomresizedcrop"]),
    (dict(to_tensor=False), ["pil image", "totensor"]),
])
def test_multicrop_names_mistakes(kwargs, words):
    fails_with(checks.check_multicrop_transform, make_multicrop(**kwargs), *words)


@pytest.mark.parametrize("kwargs, words", [
    (dict(flip=False), ["no t.randomhorizontalflip()"]),
    (dict(jitter=(0.4, 0.4, 0.4, 0.1)), ["colorjitter(0.4, 0.4, 0.2, 0.1)", "saturation",
                                         "notebook 01"]),
    (dict(jitter=(0.8, 0.4, 0.2, 0.1)), ["colorjitter(0.4, 0.4, 0.2, 0.1)", "brightness"]),
    (dict(jitter_p=1.0), ["p=1.0", "p=0.8"]),
    (dict(wrap_jitter=False), ["randomapply", "every crop"]),
    (dict(gray_p=None), ["randomgrayscale(p=0.2)"]),
    (dict(gray_p=0.5), ["randomgrayscale(p=0.2)"]),
    (dict(solarize="none"), ["second global crop should also go through", "randomsolarize"]),
    (dict(solarize="both"), ["both global crops are solarised"]),
    (dict(solarize="local"), ["local crops are solarised too"]),
    (dict(solarize_settings=(200, 0.2)), ["threshold=128", "threshold=200"]),
    (dict(solarize_settings=(128, 0.5)), ["p=0.2", "p=0.5"]),
])
def test_multicrop_names_recipe_mistakes(kwargs, words):
    """The steps of each crop, recorded as they are applied (not the crops' pixels)."""
    fails_with(checks.check_multicrop_transform, make_multicrop(**kwargs), *words)


class MultiCropCropsOnce(MultiCropTransform):
    """Crops once per call and resizes that crop for every view."""

    def __call__(self, image):
        base = self.global_1.transforms[0](image)
        tail = T.Compose(self.global_1.transforms[1:])
        small = T.Compose([T.Resize(self.local.transforms[0].size)] + self.local.transforms[1:])
        return [tail(base), tail(base)] + [small(base) for _ in range(self.n_local)]


class MultiCropDrawnOnce(MultiCropTransform):
    """Draws its crops in __init__ (from a fixed image) and returns them on every call."""

    def __call__(self, image):
        if not hasattr(self, "cached"):
            self.cached = super().__call__(image)
        return self.cached


class MultiCropWrongSignature:
    def __init__(self, size=32, n=6):
        pass


def test_multicrop_names_structural_mistakes():
    fails_with(checks.check_multicrop_transform, MultiCropCropsOnce, "applied 1 times")
    fails_with(checks.check_multicrop_transform, MultiCropDrawnOnce, "second call")
    fails_with(checks.check_multicrop_transform, MultiCropWrongSignature, "signature")


def test_multicrop_check_restores_what_it_touches():
    forward = T.RandomResizedCrop.forward
    torch.manual_seed(123)
    random.seed(5)
    np.random.seed(6)
    states = torch.random.get_rng_state(), random.getstate(), np.random.get_state()[1].copy()
    checks.check_multicrop_transform(MultiCropTransform)
    with pytest.raises(AssertionError):
        checks.check_multicrop_transform(make_multicrop(scales="swapped"))
    assert T.RandomResizedCrop.forward is forward
    assert torch.equal(torch.random.get_rng_state(), states[0])
    assert random.getstate() == states[1]
    assert np.array_equal(np.random.get_state()[1], states[2])


# ----------------------------------------------------------------------------- the head


class DINOHead(nn.Module):
    """The notebook's solution."""

    def __init__(self, in_dim, out_dim, use_bn=False, norm_last_layer=True, nlayers=3,
                 hidden_dim=2048, bottleneck_dim=256):
        super().__init__()
        nlayers = max(nlayers, 1)
        if nlayers == 1:
            self.mlp = nn.Linear(in_dim, bottleneck_dim)
        else:
            layers = [nn.Linear(in_dim, hidden_dim)]
            if use_bn:
                layers.append(nn.BatchNorm1d(hidden_dim))
            layers.append(nn.GELU())
            for _ in range(nlayers - 2):
                layers.append(nn.Linear(hidden_dim, hidden_dim))
                if use_bn:
                    layers.append(nn.BatchNorm1d(hidden_dim))
                layers.append(nn.GELU())
            layers.append(nn.Linear(hidden_dim, bottleneck_dim))
            self.mlp = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        self.last_layer = nn.utils.parametrizations.weight_norm(
            nn.Linear(bottleneck_dim, out_dim, bias=False))
        gain = self.last_layer.parametrizations.weight.original0
        with torch.no_grad():
            gain.fill_(1.0)
        if norm_last_layer:
            gain.requires_grad_(False)

    def forward(self, h):
        x = F.normalize(self.mlp(h), dim=-1)
        return self.last_layer(x)


class DINOHeadOldAPI(nn.Module):
    """Written differently: facebookresearch/dino's own code, with the old weight_norm."""

    def __init__(self, in_dim, out_dim, use_bn=False, norm_last_layer=True, nlayers=3,
                 hidden_dim=2048, bottleneck_dim=256):
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (nlayers - 1) + [bottleneck_dim]
        layers = []
        for k, (a, b) in enumerate(zip(dims, dims[1:])):
            layers.append(nn.Linear(a, b))
            if k < len(dims) - 2:
                layers.append(nn.GELU())
        self.mlp = nn.Sequential(*layers)
        self.apply(self._init_weights)
        self.last_layer = nn.utils.weight_norm(nn.Linear(bottleneck_dim, out_dim, bias=False))
        self.last_layer.weight_g.data.fill_(1)
        if norm_last_layer:
            self.last_layer.weight_g.requires_grad = False

    def _init_weights(self, m):
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=.02)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)

    def forward(self, x):
        x = self.mlp(x)
        x = x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return self.last_layer(x)


def make_head(norm="before", bias=False, weight_norm="new", fill=True, freeze="right",
              activation=nn.GELU, nlayers_fixed=None, act_at_end=False,
              names=("mlp", "last_layer"), init_std=0.02, init_bias=0.0):
    """DINOHead with one mistake switched on."""
    class Head(nn.Module):
        def __init__(self, in_dim, out_dim, use_bn=False, norm_last_layer=True, nlayers=3,
                     hidden_dim=2048, bottleneck_dim=256):
            super().__init__()
            n = nlayers if nlayers_fixed is None else nlayers_fixed
            dims = [in_dim] + [hidden_dim] * (n - 1) + [bottleneck_dim]
            layers = []
            for k, (a, b) in enumerate(zip(dims, dims[1:])):
                layers.append(nn.Linear(a, b))
                if init_std is not None:
                    nn.init.trunc_normal_(layers[-1].weight, std=init_std)
                if init_bias is not None:
                    nn.init.constant_(layers[-1].bias, init_bias)
                if k < len(dims) - 2 or act_at_end:
                    layers.append(activation())
            linear = nn.Linear(bottleneck_dim, out_dim, bias=bias)
            if weight_norm == "new":
                last = nn.utils.parametrizations.weight_norm(linear)
                gain = last.parametrizations.weight.original0
            elif weight_norm == "dim1":
                last = nn.utils.parametrizations.weight_norm(linear, dim=1)
                gain = last.parametrizations.weight.original0
            else:
                last, gain = linear, None
            if gain is not None and fill:
                with torch.no_grad():
                    gain.fill_(1.0)
            if gain is not None:
                if freeze == "right" and norm_last_layer or freeze == "always":
                    gain.requires_grad_(False)
            if freeze == "whole":
                last.requires_grad_(False)
            setattr(self, names[0], nn.Sequential(*layers))
            setattr(self, names[1], last)

        def forward(self, h):
            x = getattr(self, names[0])(h)
            if norm == "before":
                x = F.normalize(x, dim=-1)
            elif norm == "dim0":
                x = F.normalize(x, dim=0)
            out = getattr(self, names[1])(x)
            if norm == "after":
                out = F.normalize(out, dim=-1)
            return out
    return Head


def test_dino_head_accepts_right_answers(capsys):
    checks.check_dino_head(DINOHead)
    checks.check_dino_head(DINOHeadOldAPI)
    checks.check_dino_head(make_head())
    out = capsys.readouterr()
    assert out.out.count("[ok] DINOHead") == 3 and out.err == ""


@pytest.mark.parametrize("kwargs, words", [
    (dict(norm="after"), ["you normalised after the last layer"]),
    (dict(norm="none"), ["l2-normalised", "f.normalize"]),
    (dict(norm="dim0"), ["across the batch"]),
    (dict(bias=True), ["bias=false"]),
    (dict(weight_norm="none"), ["not weight-normalised", "parametrizations.weight_norm"]),
    (dict(weight_norm="dim1"), ["dim=0"]),
    (dict(fill=False), ["gains g are not 1", "fill_(1.0)"]),
    (dict(freeze="never"), ["the gain is trainable: with norm_last_layer=true call "
                            "requires_grad_(false) on last_layer.parametrizations.weight."
                            "original0"]),
    (dict(freeze="always"), ["frozen although norm_last_layer=false"]),
    (dict(freeze="whole"), ["direction v", "frozen"]),
    (dict(activation=nn.ReLU), ["gelu, not relu"]),
    (dict(nlayers_fixed=3), ["nlayers"]),
    (dict(act_at_end=True), ["ends with gelu"]),
    (dict(names=("projector", "last_layer")), ["self.mlp"]),
])
def test_dino_head_names_mistakes(kwargs, words):
    fails_with(checks.check_dino_head, make_head(**kwargs), *words)


@pytest.mark.parametrize("kwargs, words", [
    (dict(init_std=None, init_bias=None), ["standard deviation", "nn.linear's default",
                                           "trunc_normal_(weight, std=0.02)"]),
    (dict(init_std=0.05), ["standard deviation 0.0", "trunc_normal_"]),
    (dict(init_bias=0.1), ["bias of self.mlp.0 should start at 0"]),
])
def test_dino_head_names_initialisation_mistakes(kwargs, words):
    fails_with(checks.check_dino_head, make_head(**kwargs), *words)


def test_dino_head_reports_the_spread_it_measured():
    with pytest.raises(AssertionError) as info:
        checks.check_dino_head(make_head(init_std=0.05))
    spread = float(re.search(r"standard deviation (\d\.\d+)", str(info.value)).group(1))
    assert spread == pytest.approx(0.05, rel=0.1)      # a sample of the weights: near 0.05


class DINOHeadOldAPITrainableGain(DINOHeadOldAPI):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.last_layer.weight_g.requires_grad = True


def test_dino_head_names_the_old_api_gain():
    fails_with(checks.check_dino_head, DINOHeadOldAPITrainableGain, "last_layer.weight_g")


# ----------------------------------------------------------------------------- the loss


def dino_loss_pair_matrix(student_out, teacher_out, center, student_temp, teacher_temp):
    """Written differently: all cross-entropies at once, the same-view pairs masked out."""
    B = len(teacher_out) // 2
    K = teacher_out.shape[1]
    with torch.no_grad():
        p_t = torch.softmax((teacher_out - center) / teacher_temp, dim=1).view(2, B, K)
    logp_s = torch.log_softmax(student_out / student_temp, dim=1).view(-1, B, K)
    ce = -torch.einsum("ibk,vbk->iv", p_t, logp_s) / B                # (2, n_crops)
    keep = torch.ones_like(ce, dtype=torch.bool)
    keep[0, 0] = keep[1, 1] = False
    return ce[keep].mean()


def test_dino_loss_accepts_right_answers(capsys):
    checks.check_dino_loss(dino_loss)
    checks.check_dino_loss(dino_loss_pair_matrix)
    checks.check_dino_loss(make_loss())
    out = capsys.readouterr()
    assert out.out.count("[ok] dino_loss") == 3 and out.err == ""


@pytest.mark.parametrize("kwargs, words", [
    (dict(same_view=True), ["same view", "skip"]),
    (dict(swap_temps=True), ["temperatures are swapped"]),
    (dict(center_mode="none"), ["not centred"]),
    (dict(center_mode="add"), ["center is added"]),
    (dict(reduce="sum"), ["sum over the pairs"]),
    (dict(divisor=lambda n: 2 * n), ["divided by 2 * n_crops"]),
    (dict(divisor=lambda n: n), ["divided by n_crops"]),
    (dict(divisor=lambda n: n - 1), ["divided by n_crops - 1"]),
    (dict(divisor=lambda n: 2), ["divided by 2 (the teacher crops)"]),
    (dict(t_dim=0), ["teacher's softmax runs over the batch"]),
    (dict(s_dim=0), ["student's log_softmax runs over the batch"]),
    (dict(t_dim=0, s_dim=0), ["softmaxes run over the batch"]),
    (dict(t_sharp=False), ["not sharpened", "teacher_temp is ignored"]),
    (dict(s_sharp=False), ["student_temp is ignored"]),
    (dict(pairs="locals_only"), ["local crops only"]),
    (dict(pairs="globals_only"), ["local crops are left out"]),
    (dict(pairs="same_only"), ["only the pairs of the same view"]),
    (dict(layout="sample"), ["crop by crop", ".chunk"]),
    (dict(roles="swapped"), ["swapped in the cross-entropy"]),
    (dict(per_k="mean"), ["averaged over the k outputs"]),
    (dict(kl=True), ["kl divergence"]),
    (dict(sign=-1), ["sign"]),
    (dict(detach=False), ["gradient flows into the teacher", ".detach()"]),
    (dict(center_inplace=True), ["changed the center in place"]),
    (dict(reduce="per_pair"), ["0-dim"]),
    (dict(reduce="item"), ["python number"]),
])
def test_dino_loss_names_mistakes(kwargs, words):
    fails_with(checks.check_dino_loss, make_loss(**kwargs), *words)


def test_dino_loss_check_wants_ln_k_for_uniform_outputs():
    def clamps(student_out, teacher_out, center, student_temp, teacher_temp):
        loss = dino_loss(student_out, teacher_out, center, student_temp, teacher_temp)
        return loss if student_out.abs().sum() > 0 else loss * 0.5
    fails_with(checks.check_dino_loss, clamps, "ln k")


def test_dino_loss_check_wants_a_finite_loss_at_the_texts_temperatures():
    """log(softmax) instead of log_softmax: right on the small fixed inputs, -inf (and a
    NaN loss) once a student probability underflows at temperature 0.1."""
    unstable = make_loss()

    def log_of_softmax(student_out, teacher_out, center, student_temp, teacher_temp):
        B = len(teacher_out) // 2
        n = len(student_out) // B
        p_t = F.softmax((teacher_out - center) / teacher_temp, dim=-1).detach().chunk(2)
        log_p = torch.log(F.softmax(student_out / student_temp, dim=-1)).chunk(n)
        terms = [(-p_t[i] * log_p[v]).sum(-1).mean() for i in range(2) for v in range(n)
                 if v != i]
        return torch.stack(terms).mean()
    checks.check_dino_loss(unstable)
    fails_with(checks.check_dino_loss, log_of_softmax, "not a finite number", "f.log_softmax")


def test_dino_loss_check_does_not_detach_the_student_for_you():
    def detached(student_out, teacher_out, center, student_temp, teacher_temp):
        return dino_loss(student_out.detach(), teacher_out, center, student_temp, teacher_temp)
    fails_with(checks.check_dino_loss, detached, "requires_grad")


# ----------------------------------------------------------------------------- the center


def update_center_in_place(center, teacher_out, momentum):
    """Written differently: in place on the center (allowed), with torch.lerp."""
    with torch.no_grad():
        center.lerp_(teacher_out.mean(dim=0, keepdim=True), 1 - momentum)
    return center


def test_update_center_accepts_right_answers(capsys):
    checks.check_update_center(update_center)
    checks.check_update_center(update_center_in_place)
    checks.check_update_center(make_center("right"))
    out = capsys.readouterr()
    assert out.out.count("[ok] update_center") == 3 and out.err == ""


@pytest.mark.parametrize("mistake, words", [
    ("swapped", ["roles are swapped"]),
    ("softmax", ["raw", "softmax"]),
    ("centered", ["raw", "subtract the center"]),
    ("sum", ["summed"]),
    ("no_keepdim", ["keepdim=true"]),
    ("wrong_axis", ["dim=0"]),
    ("hardcoded", ["hard-coded"]),
    ("grad", ["requires grad", "no_grad"]),
    ("none", ["returned none"]),
])
def test_update_center_names_mistakes(mistake, words):
    fails_with(checks.check_update_center, make_center(mistake), *words)


# ----------------------------------------------------------------------------- the schedule


def cosine_schedule_numpy(base, final, step, total_steps):
    """Written differently: NumPy, clamped progress, the other way round (np.float64)."""
    progress = np.clip(step / total_steps, 0.0, 1.0)
    return base + (final - base) * (1 - np.cos(np.pi * progress)) / 2


def test_cosine_schedule_accepts_right_answers(capsys):
    checks.check_cosine_schedule(cosine_schedule)
    checks.check_cosine_schedule(cosine_schedule_numpy)
    checks.check_cosine_schedule(make_schedule("right"))
    out = capsys.readouterr()
    assert out.out.count("[ok] cosine_schedule") == 3 and out.err == ""


@pytest.mark.parametrize("mistake, words", [
    ("swapped", ["base and final are swapped"]),
    ("linear", ["linear schedule"]),
    ("cos_only", ["overshoots"]),
    ("no_half", ["halve it"]),
    ("unclamped", ["goes back up"]),
    ("integer_division", ["integer division"]),
    ("tensor", ["torch.tensor", "return a float"]),
    ("float32", ["numpy", "return a float"]),
    ("off", ["(0.5, 0.1, 3, 9) = 0.401", "expected 0.4"]),
])
def test_cosine_schedule_names_mistakes(mistake, words):
    fails_with(checks.check_cosine_schedule, make_schedule(mistake), *words)


# ----------------------------------------------------------------------------- all of them


def test_failing_checks_write_nothing_to_stderr(capsys):
    for check, fn in [(checks.check_multicrop_transform, make_multicrop(scales="swapped")),
                      (checks.check_dino_head, make_head(fill=False)),
                      (checks.check_dino_loss, make_loss(same_view=True)),
                      (checks.check_update_center, make_center("sum")),
                      (checks.check_cosine_schedule, make_schedule("linear"))]:
        with pytest.raises(AssertionError):
            check(fn)
    assert capsys.readouterr().err == ""
