"""course_utils: the helpers every notebook of ssl-course-kit imports.

Never an exercise's solution: students install this package and can read all of it.
"""
from .runtime import (banner, get_device, is_colab, is_grading, pick, picker, run_mode,
                      seed_everything, shared_settings)

__version__ = "0.1.0"
__all__ = ["banner", "get_device", "is_colab", "is_grading", "pick", "picker", "run_mode",
           "seed_everything", "shared_settings"]
