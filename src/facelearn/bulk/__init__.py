"""The photo pipeline at scale: photos → decode → detect → align → (embed | crop | teacher) → write.

Three commands are this one pipeline with different ends, on either engine (``--engine local``: a
process pool; ``--engine ray``: Ray Data, on this machine or a cluster):

* ``facelearn embed PHOTOS OUT`` — every face of every photo as Parquet (:mod:`.embed`, :mod:`.output`);
* ``facelearn prepare`` — aligned crops for training, a folder or RecordIO (:mod:`.prepare`);
* ``facelearn teacher-embed`` — a black-box teacher's embedding of every photo (:mod:`.teacher`);

and ``facelearn enroll --from-embeddings OUT`` puts an embed output into a gallery (:mod:`.enroll`).
PHOTOS is a folder tree, a text file of paths or a Parquet of paths (:mod:`.sources`); the shared
stages and the batch are in :mod:`.stages`, the engines in :mod:`.local` and :mod:`.ray_engine`.
"""

from __future__ import annotations

from .engine import ENGINES, EngineOptions, build_engine
from .sources import Photo, list_photos
from .stages import STATUSES, Item, Pipeline

__all__ = ["ENGINES", "STATUSES", "EngineOptions", "Item", "Photo", "Pipeline", "build_engine", "list_photos"]
