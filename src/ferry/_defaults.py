"""Defaults that the command line shows in ``--help`` without importing the stages."""

#: ai.onnx opset ``ferry export`` writes unless told otherwise.
DEFAULT_OPSET = 18
