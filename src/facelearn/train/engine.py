"""The one training loop. Tasks say what a step computes; the engine does everything else.

Device and threads, channels_last, autocast (bf16 on CPU, fp16 with a grad scaler on CUDA),
gradient accumulation and clipping, the schedule, progress bar and TensorBoard, periodic
verification, atomic checkpoints (keep-last-N plus best), exact resume, and the faults:

* a lock on the run directory (a second run on it is refused, naming the first);
* resuming refuses a config that alters the run, unless ``train.resume=force``;
* SIGTERM or Ctrl-C finishes the step, writes a checkpoint and exits 128 + the signal number, also
  when the whole process group gets it (``timeout``, SLURM): the data workers leave it to this process;
* a non-finite loss, parameter or buffer stops the run before anything is written, so the last
  good checkpoint, ``best.pt`` and ``backbone.pt`` are never replaced by a broken model.

Under ``torchrun`` each process runs it on its slice of the batch (``parallel.py``); rank 0 writes.
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
from ..data.pairs import PairSet
from ..distributed import rank, world_size
from ..errors import FacelearnError
from ..eval.embed import evaluate_pair_set
from ..hardware import compile_backbone, precision_name, resolve_amp, resolve_device
from ..io import DirectoryLock, write_atomic, write_text_atomic
from ..models.checkpoint import (
    FORMAT,
    CheckpointError,
    load_backbone_weights,
    load_checkpoint,
    load_head_weights,
    save_atomic,
    step_checkpoints,
)
from .checkpoint import prune, remove_temporary_files, rng_state, set_rng_state, step_path
from .logs import NullWriter, run_log
from .optimizer import build_optimizer
from .parallel import ProcessGroupTraining
from .resume import altering_changes, apply_changed_config
from .schedule import build_scheduler
from .signals import DataLostToTheSignal, StopOnSignal, TrainingStopped
from .tasks import Task

log = logging.getLogger("facelearn.train")


class TrainingDiverged(FacelearnError):
    """The loss, a parameter or a buffer became NaN or infinite."""


class Trainer:
    def __init__(self, config: Config, task: Task, eval_sets: list[PairSet]):
        self.config = config
        self.train_config = config.train
        self.run_dir = Path(config.train.output_dir)
        self.device = resolve_device(config.train.device)
        self.amp_dtype = resolve_amp(config.train.amp, self.device)
        self.rank, self.world_size = rank(), world_size()
        self.is_main = self.rank == 0
        if config.train.sync_bn and self.world_size > 1:
            if self.device.type != "cuda":
                raise FacelearnError("train.sync_bn needs CUDA (torch's SyncBatchNorm); on CPU leave it off")
            task.backbone = torch.nn.SyncBatchNorm.convert_sync_batchnorm(task.backbone)
        self.task = task.to(self.device)
        if config.train.channels_last:
            self.task.to(memory_format=torch.channels_last)
        self.eval_sets, self.compiled = eval_sets, compile_backbone(task.backbone, config.train)
        self.optimizer = build_optimizer(task, config)
        self.parallel = ProcessGroupTraining(self.task, self.optimizer, self.device)
        self.scheduler = build_scheduler(self.optimizer, config.train.steps, config.schedule)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.step = 0
        self.best_accuracy = -1.0
        self.skipped_images = 0
        self.stop = StopOnSignal()

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

    def restore(self, path: Path, state: dict) -> dict:
        """Load ``state`` (read from ``path``); returns its RNG state, to be set when the loop starts."""
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
        self.step = state["step"]
        self.best_accuracy = state["best_accuracy"]
        log.warning("resuming from %s at step %d (train.resume=false or a new output_dir starts over)", path, self.step)
        return state["rng"]

    def check_finite(self) -> None:
        """Refuse to go on (and to write) with a NaN or infinite parameter or buffer."""
        broken = [
            name for name, t in self.task.state_dict().items() if t.is_floating_point() and not t.isfinite().all()
        ]
        if self.parallel.all_agree(bool(broken)):
            raise TrainingDiverged(
                f"the model became non-finite at step {self.step} ({', '.join(broken[:3]) or 'on another process'}); "
                f"training stopped before writing it, {self.last_good()}. "
                "Lower optim.lr, keep train.clip_grad_norm on, or check the data"
            )

    def last_good(self) -> str:
        last = step_checkpoints(self.run_dir)
        return f"the last good checkpoint is {last[-1]}" if last else "no checkpoint was written yet"

    def write(self, path: Path) -> None:
        """Every process builds the state (Partial FC gathers its shards); rank 0 alone writes it."""
        self.check_finite()
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
    def fit(self) -> dict:
        """Train to ``train.steps`` (resuming if a checkpoint exists), evaluate, and return the
        summary also written to ``metrics.json``. The run's log goes to ``train.log``."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if not self.is_main:
            with self.stop:
                return self._fit()
        lock = DirectoryLock(self.run_dir, "facelearn train")
        lock.acquire()
        try:
            with run_log(self.run_dir / "train.log"), self.stop:
                return self._fit()
        finally:
            lock.release()

    def start(self) -> dict | None:
        """Resume or initialise; returns the RNG state to set once the loop is about to start."""
        cfg = self.train_config
        if self.is_main:
            remove_temporary_files(self.run_dir)
        existing = step_checkpoints(self.run_dir) if cfg.resume else []
        if existing:
            state = load_checkpoint(existing[-1])
            changes = altering_changes(state.get("config", {}), self.config)
            if changes and cfg.resume != "force":
                raise FacelearnError(
                    f"{self.run_dir} holds a run with another config ({'; '.join(changes)}). Run the same config "
                    "to continue it, add train.resume=force to continue with the new values, or choose another "
                    "train.output_dir"
                )
            saved_rng = self.restore(existing[-1], state)
            if changes:
                self.scheduler = apply_changed_config(self.task, self.optimizer, self.scheduler, self.config)
                log.warning("train.resume=force: continuing with %s", "; ".join(changes))
        else:
            saved_rng = None
            if cfg.init_backbone:
                load_backbone_weights(self.task.backbone, cfg.init_backbone)
                log.info("initialised the backbone from %s", cfg.init_backbone)
                if cfg.init_head:
                    load_head_weights(self.task.head, cfg.init_backbone)
                    log.info("initialised the head from %s", cfg.init_backbone)
        if self.is_main:
            dump_config(self.config, self.run_dir / "config.yaml")
        return saved_rng

    def _fit(self) -> dict:
        cfg = self.train_config
        started = time.perf_counter()
        self.task.check_labels()
        saved_rng = self.start()
        precision, mode = precision_name(self.amp_dtype), "compiled" if self.compiled else "eager"
        log.info("training on %s in %s, the backbone %s", self.device, precision, mode)
        batches = iter(self.task.loader(self.step * cfg.grad_accum))

        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(self.run_dir / "tensorboard")) if self.is_main else NullWriter()
        bar = {"desc": "train", "dynamic_ncols": True, "mininterval": 1.0, "disable": not self.is_main}
        progress = tqdm(total=cfg.steps, initial=self.step, **bar)
        if saved_rng is not None:  # after everything that might draw from the global generators
            set_rng_state(saved_rng)
        self.task.train()
        try:
            self.loop(batches, writer, progress)
        finally:
            progress.close()
            # the data workers ignore SIGTERM (signals.py), so none may outlive the run: at the process's exit
            # multiprocessing would join it forever
            getattr(batches, "_shutdown_workers", lambda: None)()
        metrics = self.evaluate(writer, output_dir=self.run_dir / "eval" if self.is_main else None)
        self.save()
        summary = {
            "step": self.step,
            "seconds": round(time.perf_counter() - started, 1),
            "skipped_images": self.skipped_images,
            "precision": precision,  # what train.amp=auto chose on this machine
            "compiled": self.compiled,
            "verification": metrics,
        }
        if self.is_main:
            backbone = self.task.backbone.state_dict()
            write_atomic(self.run_dir / "backbone.pt", lambda handle: torch.save(backbone, handle))
            write_text_atomic(self.run_dir / "metrics.json", json.dumps(summary, indent=2))
        writer.close()
        if self.world_size > 1:
            dist.barrier()  # every process leaves together, after rank 0 has written everything
        return summary

    def loop(self, batches, writer, progress) -> None:
        """Steps up to ``train.steps``, logging, evaluating, checkpointing and stopping on a signal."""
        cfg = self.train_config
        window_start, window_images = time.perf_counter(), 0
        while self.step < cfg.steps:
            try:
                loss_value, images, metrics = self.train_step(batches)
            except DataLostToTheSignal as lost:  # the signal went to the whole process group
                self.stop_on_signal(writer, save=not lost.mid_step)
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
            if self.parallel.all_agree(self.stop.requested is not None):
                self.stop_on_signal(writer)
            if self.config.eval.every and self.step % self.config.eval.every == 0 and self.step < cfg.steps:
                self.evaluate(writer, output_dir=None)
            if self.step % cfg.checkpoint_every == 0 and self.step < cfg.steps:
                self.save()

    def stop_on_signal(self, writer, save: bool = True) -> None:
        """Checkpoint (unless the step was cut short after it ran the model) and stop with 128 + the signal."""
        import signal

        written = f"checkpoint {self.save()} written" if save else f"not saved mid-step, {self.last_good()}"
        writer.close()
        signum = self.stop.requested or signal.SIGTERM
        name = signal.Signals(signum).name
        if self.world_size > 1:
            dist.barrier()
        raise TrainingStopped(
            f"stopped by {name} after step {self.step}: {written}; run the same command to continue", 128 + signum
        )

    def train_step(self, batches) -> tuple[float, int, dict]:
        cfg = self.train_config
        total_loss, images, metrics = 0.0, 0, {}
        for micro in range(cfg.grad_accum):
            batch = self.stop.next_batch(batches, mid_step=micro > 0)
            self.skipped_images += batch["skipped"]
            if batch["labels"].numel() == 0:
                continue
            batch["images"] = batch["images"].to(self.device, non_blocking=True)
            if cfg.channels_last:
                batch["images"] = batch["images"].contiguous(memory_format=torch.channels_last)
            batch["labels"] = batch["labels"].to(self.device, non_blocking=True)
            with self.parallel.accumulating(last_micro_batch=micro == cfg.grad_accum - 1):
                with torch.autocast(
                    self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None
                ):
                    output = self.parallel.model(batch)
                loss = output.loss.float()
                if not torch.isfinite(loss):
                    raise TrainingDiverged(
                        f"the loss became {loss.item()} at step {self.step + 1}; training stopped and "
                        f"{self.last_good()}. Lower optim.lr, keep train.clip_grad_norm on, or check the data"
                    )
                self.scaler.scale(loss / cfg.grad_accum).backward()
            total_loss += loss.item() / cfg.grad_accum
            images += len(batch["images"])
            metrics = output.metrics
        self.scaler.unscale_(self.optimizer)
        if cfg.clip_grad_norm > 0:
            self.parallel.clip_gradients(cfg.clip_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        return total_loss, images, metrics

    def evaluate(self, writer, output_dir: Path | None) -> dict:
        self.check_finite()  # a broken model would score every pair alike
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
        if self.is_main:
            self.task.report(self.run_dir / "eval", self.step, writer)
        if results:
            first = next(iter(results.values()))["accuracy"]
            if first > self.best_accuracy:
                self.best_accuracy = first
                self.write(self.run_dir / "best.pt")
        return results
