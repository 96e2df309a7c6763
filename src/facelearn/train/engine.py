"""The one training loop. Tasks say what a step computes; the engine does everything else.

Device and threads, channels_last, autocast (bf16 on CPU, fp16 with a grad scaler on CUDA),
gradient accumulation and clipping, the schedule, progress bar and TensorBoard, periodic
verification, atomic checkpoints (keep-last-N plus best), exact resume, and a clean stop on a
non-finite loss that leaves the last good checkpoint untouched. Under ``torchrun`` every process
runs this loop on its slice of the batch (:mod:`facelearn.train.parallel`); rank 0 alone writes.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

from ..config import Config, dump_config, to_dict
from ..data.loader import TrainingDataset, build_train_loader
from ..data.pairs import PairSet
from ..data.transforms import TrainTransform
from ..distributed import local_rank, rank, world_size
from ..eval.embed import evaluate_pair_set
from .checkpoint import (
    FORMAT,
    CheckpointError,
    load_backbone_weights,
    load_checkpoint,
    load_head_weights,
    prune,
    rng_state,
    save_atomic,
    set_rng_state,
    step_checkpoints,
    step_path,
)
from .parallel import DataParallel
from .schedule import build_scheduler
from .tasks import Task

log = logging.getLogger("facelearn.train")


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{local_rank()}" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class NullWriter:
    """TensorBoard for the processes other than rank 0: writes nothing."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def resolve_amp(mode: str, device: torch.device) -> torch.dtype | None:
    if mode == "off":
        return None
    if mode == "auto":
        return torch.float16 if device.type == "cuda" else torch.bfloat16
    if mode in ("bf16", "fp16"):
        return torch.bfloat16 if mode == "bf16" else torch.float16
    raise ValueError(f"unknown train.amp {mode!r}; valid: auto, bf16, fp16, off")


def build_optimizer(task: Task, config: Config) -> torch.optim.Optimizer:
    """SGD or AdamW; 1-D parameters (BatchNorm, PReLU, biases) skip weight decay unless
    ``optim.decay_norm_and_bias``."""
    optim = config.optim
    decay, no_decay = [], []
    for parameter in task.parameters():
        if parameter.requires_grad:
            (no_decay if parameter.ndim <= 1 and not optim.decay_norm_and_bias else decay).append(parameter)
    groups = [
        {"params": decay, "weight_decay": optim.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if optim.name == "sgd":
        return torch.optim.SGD(groups, lr=optim.lr, momentum=optim.momentum, nesterov=optim.nesterov)
    if optim.name == "adamw":
        return torch.optim.AdamW(groups, lr=optim.lr)
    raise ValueError(f"unknown optim.name {optim.name!r}; valid: sgd, adamw")


class Trainer:
    def __init__(self, config: Config, task: Task, source, eval_sets: list[PairSet], make_loader=None):
        """``make_loader(start_batch)`` gives the task's batches (default: classification batches)."""
        self.config = config
        self.make_loader = make_loader or self.classification_loader
        self.train_config = config.train
        self.run_dir = Path(config.train.output_dir)
        self.device = resolve_device(config.train.device)
        self.amp_dtype = resolve_amp(config.train.amp, self.device)
        self.rank, self.world_size = rank(), world_size()
        self.is_main = self.rank == 0
        if config.train.sync_bn and self.world_size > 1:
            if self.device.type != "cuda":
                raise ValueError("train.sync_bn needs CUDA (torch's SyncBatchNorm); on CPU leave it off")
            task.backbone = torch.nn.SyncBatchNorm.convert_sync_batchnorm(task.backbone)
        self.task = task.to(self.device)
        if config.train.channels_last:
            self.task.to(memory_format=torch.channels_last)
        self.source = source
        self.eval_sets = eval_sets
        self.optimizer = build_optimizer(task, config)
        self.parallel = DataParallel(self.task, self.optimizer)
        self.scheduler = build_scheduler(self.optimizer, config.train.steps, config.schedule)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.step = 0
        self.best_accuracy = -1.0
        self.skipped_images = 0

    # ---------------------------------------------------------------- state
    def state(self) -> dict:
        return {
            "format": FORMAT,
            "step": self.step,
            "task": self.task.state_dict(),
            "optimizer": self.parallel.optimizer_state(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng_state(),
            "best_accuracy": self.best_accuracy,
            "config": to_dict(self.config),
        }

    def restore(self, path: Path) -> None:
        state = load_checkpoint(path)
        if state.get("format") != FORMAT:
            raise CheckpointError(f"{path} is not a facelearn training checkpoint")
        try:
            self.task.load_state_dict(state["task"])
        except (RuntimeError, ValueError) as error:
            raise CheckpointError(
                f"{path} was written for another model or class count than this config: {error}"
            ) from None
        self.parallel.load_optimizer_state(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        self.step = state["step"]
        self.best_accuracy = state["best_accuracy"]
        log.warning("resuming from %s at step %d (train.resume=false or a new output_dir starts over)", path, self.step)

    def write(self, path: Path) -> None:
        """Every process builds the state (Partial FC gathers its shards); rank 0 alone writes it."""
        state = self.state()
        if self.is_main:
            save_atomic(state, path)

    def save(self) -> Path:
        path = step_path(self.run_dir, self.step)
        self.write(path)
        if self.is_main:
            prune(self.run_dir, self.train_config.keep_last)
        return path

    # ---------------------------------------------------------------- loop
    def classification_loader(self, start_batch: int):
        data, cfg = self.config.data, self.train_config
        dataset = TrainingDataset(
            self.source, TrainTransform(data.flip, data.degrade), data.image_size, cfg.seed, data.strict
        )
        if data.sampler not in ("random", "identity"):
            raise ValueError(f"unknown data.sampler {data.sampler!r}; valid: random, identity")
        k = data.samples_per_identity if data.sampler == "identity" else 0
        return build_train_loader(
            dataset, cfg.batch_size, cfg.seed, start_batch, data.num_workers, self.rank, self.world_size, k
        )

    def fit(self) -> dict:
        """Train to ``train.steps`` (resuming if a checkpoint exists), evaluate, and return the
        summary also written to ``metrics.json``. The run's log goes to ``train.log``."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if not self.is_main:
            return self._fit()
        handler = logging.FileHandler(self.run_dir / "train.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        package_log = logging.getLogger("facelearn")
        package_log.addHandler(handler)
        if package_log.getEffectiveLevel() > logging.INFO:
            package_log.setLevel(logging.INFO)
        try:
            return self._fit()
        finally:
            package_log.removeHandler(handler)
            handler.close()

    def _fit(self) -> dict:
        cfg = self.train_config
        started = time.perf_counter()
        if self.is_main:
            dump_config(self.config, self.run_dir / "config.yaml")
        self.task.check_labels(self.source)
        existing = step_checkpoints(self.run_dir) if cfg.resume else []
        if existing:
            self.restore(existing[-1])
        elif cfg.init_backbone:
            load_backbone_weights(self.task.backbone, cfg.init_backbone)
            log.info("initialised the backbone from %s", cfg.init_backbone)
            if cfg.init_head:
                load_head_weights(self.task.head, cfg.init_backbone)
                log.info("initialised the head from %s", cfg.init_backbone)

        loader = self.make_loader(self.step * cfg.grad_accum)
        batches = iter(loader)

        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(self.run_dir / "tensorboard")) if self.is_main else NullWriter()
        progress = tqdm(
            total=cfg.steps,
            initial=self.step,
            desc="train",
            dynamic_ncols=True,
            mininterval=1.0,
            disable=not self.is_main,
        )
        window_start, window_images = time.perf_counter(), 0
        self.task.train()
        while self.step < cfg.steps:
            loss_value, images, metrics = self.train_step(batches)
            window_images += images
            self.step += 1
            progress.update(1)
            if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                speed = window_images / (time.perf_counter() - window_start)
                lr = self.optimizer.param_groups[0]["lr"]
                progress.set_postfix(loss=f"{loss_value:.3f}", lr=f"{lr:.4f}", img_s=f"{speed:.0f}")
                writer.add_scalar("train/loss", loss_value, self.step)
                writer.add_scalar("train/lr", lr, self.step)
                writer.add_scalar("train/images_per_second", speed, self.step)
                for name, value in metrics.items():
                    writer.add_scalar(f"train/{name}", value, self.step)
                terms = "".join(f" {name} {value:.4f}" for name, value in metrics.items())
                log.info("step %d loss %.4f lr %.5f %.1f img/s%s", self.step, loss_value, lr, speed, terms)
                window_start, window_images = time.perf_counter(), 0
            if self.config.eval.every and self.step % self.config.eval.every == 0 and self.step < cfg.steps:
                self.evaluate(writer, output_dir=None)
            if self.step % cfg.checkpoint_every == 0 and self.step < cfg.steps:
                self.save()
        progress.close()
        metrics = self.evaluate(writer, output_dir=self.run_dir / "eval" if self.is_main else None)
        self.save()
        summary = {
            "step": self.step,
            "seconds": round(time.perf_counter() - started, 1),
            "skipped_images": self.skipped_images,
            "verification": metrics,
        }
        if self.is_main:
            torch.save(self.task.backbone.state_dict(), self.run_dir / "backbone.pt")
            (self.run_dir / "metrics.json").write_text(json.dumps(summary, indent=2))
        writer.close()
        if self.world_size > 1:
            dist.barrier()  # every process leaves together, after rank 0 has written everything
        return summary

    def train_step(self, batches) -> tuple[float, int]:
        cfg = self.train_config
        total_loss, images, metrics = 0.0, 0, {}
        for _ in range(cfg.grad_accum):
            batch = next(batches)
            self.skipped_images += batch["skipped"]
            if batch["labels"].numel() == 0:
                continue
            batch["images"] = batch["images"].to(self.device, non_blocking=True)
            if cfg.channels_last:
                batch["images"] = batch["images"].contiguous(memory_format=torch.channels_last)
            batch["labels"] = batch["labels"].to(self.device, non_blocking=True)
            with torch.autocast(
                self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None
            ):
                output = self.task(batch)
            loss = output.loss.float()
            if not torch.isfinite(loss):
                last = step_checkpoints(self.run_dir)
                where = f"the last good checkpoint is {last[-1]}" if last else "no checkpoint was written yet"
                raise TrainingDiverged(
                    f"the loss became {loss.item()} at step {self.step + 1}; training stopped and {where}. "
                    f"Lower optim.lr, keep train.clip_grad_norm on, or check the data"
                )
            self.scaler.scale(loss / cfg.grad_accum).backward()
            total_loss += loss.item() / cfg.grad_accum
            images += len(batch["images"])
            metrics = output.metrics
        self.parallel.average_gradients()
        self.scaler.unscale_(self.optimizer)
        if cfg.clip_grad_norm > 0:
            self.parallel.clip_gradients(cfg.clip_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        return total_loss, images, metrics

    def evaluate(self, writer, output_dir: Path | None) -> dict:
        results = {}
        for pairs in self.eval_sets:
            result = evaluate_pair_set(
                self.task.backbone,
                pairs,
                output_dir,
                batch_size=self.config.eval.batch_size,
                flip=self.config.eval.flip,
                device=self.device,
                channels_last=self.train_config.channels_last,
                amp_dtype=self.amp_dtype,
            )
            results[pairs.name] = result.to_dict()
            writer.add_scalar(f"verification/{pairs.name}/accuracy", result.accuracy, self.step)
            log.info("step %d %s accuracy %.4f ± %.4f", self.step, pairs.name, result.accuracy, result.accuracy_std)
        report = getattr(self.task, "report", None)
        if report is not None and self.is_main:
            report(self.run_dir / "eval", self.step, writer)
        if results:
            first = next(iter(results.values()))["accuracy"]
            if first > self.best_accuracy:
                self.best_accuracy = first
                self.write(self.run_dir / "best.pt")
        return results
