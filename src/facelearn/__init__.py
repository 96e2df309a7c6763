"""facelearn: train, distill, evaluate and deploy face-recognition models with PyTorch."""

__version__ = "0.1.0"
