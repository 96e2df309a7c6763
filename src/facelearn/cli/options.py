"""Help texts shared by several commands: the names themselves come from the registries at run time."""

DETECTOR_HELP = "face detector, a name in facelearn.align.DETECTORS (an unknown name lists them)"
BACKEND_HELP = "auto (the fastest, measured here) or a name in facelearn.deploy.backends.BACKENDS"
