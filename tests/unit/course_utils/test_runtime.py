"""course_utils.runtime: run mode, pick, device, seeding, banner, Colab detection."""
import random
import sys

import numpy as np
import pytest
import torch

from course_utils import data, runtime


@pytest.fixture
def env(course_env):
    course_env.setattr(torch.cuda, "is_available", lambda: False)
    return course_env


def test_run_mode_defaults_to_fast_on_cpu_and_full_with_cuda(env):
    assert runtime.run_mode() == "fast"
    env.setattr(torch.cuda, "is_available", lambda: True)
    assert runtime.run_mode() == "full"


def test_course_fast_forces_fast_even_with_cuda(env):
    env.setattr(torch.cuda, "is_available", lambda: True)
    env.setenv("COURSE_FAST", "1")
    assert runtime.run_mode() == "fast"
    env.setenv("COURSE_FAST", "0")
    assert runtime.run_mode() == "full"


def test_course_mode_beats_course_fast(env):
    env.setenv("COURSE_FAST", "1")
    env.setenv("COURSE_MODE", "full")
    assert runtime.run_mode() == "full"
    env.setenv("COURSE_MODE", " Grading ")
    assert runtime.run_mode() == "grading"


def test_nbgrader_execution_beats_course_mode(env):
    env.setenv("COURSE_MODE", "full")
    env.setenv("COURSE_FAST", "1")
    env.setenv("NBGRADER_EXECUTION", "autograde")
    assert runtime.run_mode() == "grading"
    assert runtime.is_grading()


def test_invalid_course_mode_raises(env):
    env.setenv("COURSE_MODE", "turbo")
    with pytest.raises(ValueError, match="turbo"):
        runtime.run_mode()


def test_pick_by_mode_and_grading_falls_back_to_fast(env):
    assert runtime.pick(full=1, fast=2, grading=3, mode="full") == 1
    assert runtime.pick(full=1, fast=2, grading=3, mode="fast") == 2
    assert runtime.pick(full=1, fast=2, grading=3, mode="grading") == 3
    assert runtime.pick(full=1, fast=2, mode="grading") == 2
    env.setenv("NBGRADER_EXECUTION", "1")
    assert runtime.pick(full=1, fast=2) == 2
    assert runtime.pick(full=1, fast=2, grading=0) == 0  # a falsy value is still a choice


def test_picker_keeps_the_mode_it_was_given(env):
    pick = runtime.picker("full")
    env.setenv("NBGRADER_EXECUTION", "1")             # the environment changes afterwards
    assert pick(full=1, fast=2, grading=3) == 1
    assert runtime.picker("grading")(full=1, fast=2) == 2
    with pytest.raises(ValueError, match="turbo"):
        runtime.picker("turbo")


def test_get_device_prefers_cuda_then_mps_then_cpu(env):
    assert runtime.get_device() == torch.device("cpu")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None:
        env.setattr(mps, "is_available", lambda: True)
        assert runtime.get_device() == torch.device("mps")
    env.setattr(torch.cuda, "is_available", lambda: True)
    assert runtime.get_device() == torch.device("cuda")


def test_get_device_honours_course_device_and_prefer(env):
    env.setattr(torch.cuda, "is_available", lambda: True)
    env.setenv("COURSE_DEVICE", "cpu")
    assert runtime.get_device() == torch.device("cpu")
    env.delenv("COURSE_DEVICE")
    assert runtime.get_device(prefer="cpu") == torch.device("cpu")


def test_get_device_is_cpu_while_grading_even_with_cuda(env):
    env.setattr(torch.cuda, "is_available", lambda: True)
    env.setenv("NBGRADER_EXECUTION", "autograde")
    assert runtime.get_device() == torch.device("cpu")


def _draws():
    return random.random(), float(np.random.rand()), float(torch.rand(()))


def test_seed_everything_reproduces_python_numpy_and_torch():
    gen = runtime.seed_everything(123)
    first, from_gen = _draws(), torch.rand(3, generator=gen)
    gen = runtime.seed_everything(123)
    assert _draws() == first
    assert torch.equal(torch.rand(3, generator=gen), from_gen)
    runtime.seed_everything(124)
    assert all(a != b for a, b in zip(_draws(), first))


def test_num_workers_is_zero_unless_full():
    assert runtime.num_workers("fast") == 0
    assert runtime.num_workers("grading") == 0
    assert runtime.num_workers("full") >= 1


def test_banner_names_mode_device_and_data(env):
    line = runtime.banner("shapes", mode="fast", device=torch.device("cpu"))
    assert "mode: fast" in line and "device: cpu" in line and "data: shapes" in line
    assert "\n" not in line
    env.setenv("NBGRADER_EXECUTION", "1")
    line = runtime.banner("cifar10")
    assert "mode: grading" in line and "device: cpu" in line and "data: cifar10" in line
    assert "local" in line


def test_is_colab_from_environment(env):
    env.delitem(sys.modules, "google.colab", raising=False)
    assert not runtime.is_colab()
    env.setenv("COLAB_RELEASE_TAG", "release-colab_20250101-060000_RC00")
    assert runtime.is_colab()
    assert "Colab" in runtime.banner("shapes", mode="fast", device=torch.device("cpu"))


@pytest.mark.parametrize("value, expected", [
    ("1", True), ("true", True), ("Yes", True), (" on ", True),
    ("0", False), ("false", False), ("NO", False), ("off", False), ("", None)])
def test_a_flag_reads_the_same_values_everywhere(env, value, expected):
    env.setenv("COURSE_X", value)
    assert runtime.flag("COURSE_X", default=None) is expected
    env.delenv("COURSE_X")
    assert runtime.flag("COURSE_X") is False and runtime.flag("COURSE_X", default=None) is None


def test_a_mistyped_flag_is_an_error_not_off(env):
    env.setenv("COURSE_OFFLINE", "ture")
    with pytest.raises(ValueError, match="COURSE_OFFLINE='ture'"):
        runtime.flag("COURSE_OFFLINE")


@pytest.mark.parametrize("name, read", [
    ("COURSE_FAST", lambda: runtime.run_mode() == "fast"),
    ("COURSE_OFFLINE", lambda: data.offline()),
    ("COURSE_GPU_AUGMENT", lambda: data.gpu_augment_enabled(torch.device("cpu")))])
def test_every_flag_of_the_course_takes_on(env, name, read):
    env.setenv(name, "on")                 # COURSE_OFFLINE=on was ignored before
    assert read()


def test_shared_settings_follow_the_mode_and_course_dataset(env):
    env.delenv("COURSE_DATASET", raising=False)
    assert runtime.shared_settings("full") == ("cifar10", None, None, 200, None)
    assert runtime.shared_settings("fast") == ("shapes", 2000, 500, 20, None)
    assert runtime.shared_settings("grading") == ("shapes", 200, 100, 20, 2)
    env.setenv("COURSE_DATASET", "stl10")
    assert runtime.shared_settings("full")[0] == runtime.shared_settings("fast")[0] == "stl10"
    assert runtime.shared_settings("grading")[0] == "shapes"     # grading never downloads
