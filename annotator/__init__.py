"""annotator: multi-reader grading of lumbar spinal stenosis on axial MRI."""

__version__ = "0.1.0"
