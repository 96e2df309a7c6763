"""Teacher–student losses on embeddings (ShrinkTeaNet and its baselines).

* Angular distillation (Duong et al., "ShrinkTeaNet", arXiv 1905.10620): the mean over the batch of
  (1 − cos(F_t, F_s))^p. Which p the paper uses is not confirmed: p = 2 follows VarGFaceNet's
  transcription of its formula (‖1 − F̂_t·F̂_s‖²), p = 1 the third-party reimplementations (and
  VarGFaceNet's own variant). Matching directions only, it leaves the student's feature norms free.
* L2 feature matching: the mean over the batch of ‖F_t − F_s‖² on raw embeddings (magnitudes too).
* Hinton knowledge distillation: T²·KL(softmax(z_t / T) ‖ softmax(z_s / T)) on class logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def angular_distillation(teacher: torch.Tensor, student: torch.Tensor, p: int = 1) -> torch.Tensor:
    if p not in (1, 2):
        raise ValueError(f"the angular distillation exponent p must be 1 or 2, got {p}")
    if len(teacher) == 0:  # no teacher answer in this batch (a black-box teacher found no face)
        return student.sum() * 0
    cos = F.cosine_similarity(teacher.float(), student.float(), dim=1)
    return ((1 - cos) ** p).mean()


def l2_distillation(teacher: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
    if len(teacher) == 0:
        return student.sum() * 0
    return ((teacher.float() - student.float()) ** 2).sum(1).mean()


def hinton_distillation(teacher_logits: torch.Tensor, student_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    teacher = F.log_softmax(teacher_logits.float() / temperature, dim=1)
    student = F.log_softmax(student_logits.float() / temperature, dim=1)
    return temperature**2 * F.kl_div(student, teacher, log_target=True, reduction="batchmean")
