"""Training set-up: the accelerator (mixed precision, torch.compile), the model, the data loaders, the optimizer."""

from __future__ import annotations

import os

from steps.core import udf
from steps.core.common import StepError, read_labels
from steps.inference.batching import CappedWindows, LengthGroupedBatches, collate, row_lengths
from steps.training import packed

COMPILE_MODE = "SMPIPE_TRAIN_COMPILE_MODE"  # torch.compile's mode on GPU (bench/train_ab.py compares them)
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")  # reduce-overhead: CUDA graphs


def compile_mode() -> str:
    mode = os.environ.get(COMPILE_MODE) or "default"
    if mode not in COMPILE_MODES:
        raise StepError(f"{COMPILE_MODE}={mode!r} is not a torch.compile mode: unset it or set one of "
                        f"{', '.join(COMPILE_MODES)}")
    return mode


def model_source(args) -> str:
    if (args.pretrained / "config.json").is_file():
        return str(args.pretrained)
    if args.hub_model_id:
        return args.hub_model_id
    raise StepError(f"no pretrained model at {args.pretrained} (config.json missing) and no hub_model_id; "
                    "check models[].source")


def mixed_precision(requested: str) -> str:
    import torch

    if requested == "auto":
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    return {"fp32": "no"}.get(requested, requested)


def make_loader(dataset, batch_size: int, seed: int, shuffle: bool, group: bool, pad_id: int, max_windows: int = 0,
                unpadded: bool = False, workers: int | None = None):
    """Length-grouped batches; with ``max_windows``, at most that many windows of a document per epoch;
    ``unpadded``: the rows of a batch laid end to end (training/packed.py); ``workers``: collating processes
    (default: 2 on a GPU host, none on CPU)."""
    import torch

    windows = CappedWindows(dataset["doc_id"], max_windows, seed) if max_windows else None
    sampler = LengthGroupedBatches(row_lengths(dataset), batch_size, seed, shuffle, group, windows)
    # On GPU, two workers collate the next batches into pinned memory while the GPU runs this one.
    workers = (2 if torch.cuda.is_available() else 0) if workers is None else workers
    layout = packed.collate if unpadded else collate
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=layout(pad_id),
                                         pin_memory=workers > 0, num_workers=workers, persistent_workers=workers > 0)
    return loader, sampler


def compile_plugin(args, lengths: list[int]):
    """torch.compile on GPU, applied by accelerate after DDP wrapping (all-reduce still overlaps backward).

    Uniform lengths: the whole model, static shapes. Variable lengths on one GPU: the whole model with
    symbolic shapes (one compilation, not one per batch width). Variable lengths on several GPUs: each
    repeated layer on its own (regional), because DDP's graph splitting failed to compile symbolic
    shapes on torch 2.11 (InductorError "expected [s16] to have been codegen-ed", 2×H200).
    """
    import torch
    from accelerate.utils import TorchDynamoPlugin

    mode = compile_mode()  # checked on CPU too: a bad value fails here, not on the first GPU job
    if not (args.torch_compile and torch.cuda.is_available()):
        return TorchDynamoPlugin(backend="no")
    if min(lengths, default=0) == max(lengths, default=0):
        return TorchDynamoPlugin(backend="inductor", mode=mode)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return TorchDynamoPlugin(backend="inductor", mode=mode, use_regional_compilation=True)
    return TorchDynamoPlugin(backend="inductor", mode=mode, dynamic=True)


def setup(args):
    import torch
    from accelerate import Accelerator, DataLoaderConfiguration
    from accelerate.utils import DistributedDataParallelKwargs, set_seed
    from datasets import load_from_disk
    from transformers import AutoTokenizer

    if not (args.data_dir / "dataset_dict.json").is_file():
        raise StepError(f"{args.data_dir} is not a prepared dataset (dataset_dict.json missing)")
    labels = read_labels(args.data_dir)
    data = load_from_disk(str(args.data_dir)).with_format(None)
    lengths = row_lengths(data["train"])
    torch.backends.cuda.matmul.allow_tf32 = True  # the fp32 leftovers of mixed precision use tensor cores
    # cpu=True on a GPU-less host: accelerate then runs N launched processes as MULTI_CPU (gloo), not N copies.
    accelerator = Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=mixed_precision(args.precision),
                              gradient_accumulation_steps=args.gradient_accumulation_steps,
                              dynamo_plugin=compile_plugin(args, lengths),
                              # the batch's copy to the GPU is queued behind the running step, not waited for:
                              # a blocking copy made the host wait for every step, then the GPU for the host
                              dataloader_config=DataLoaderConfiguration(non_blocking=torch.cuda.is_available()),
                              kwargs_handlers=[DistributedDataParallelKwargs(gradient_as_bucket_view=True)])
    set_seed(args.seed)
    source = model_source(args)
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = ready_to_train(udf.function("load_model")(source, labels, args.init))
    return accelerator, labels, data, tokenizer, model


def ready_to_train(model):
    """Train mode from the first step: from_pretrained returns the model in eval mode (dropout off), and the
    first validation's train() would switch dropout on only from epoch 2, recompiling the compiled model then
    (a full recompile). The problem type is set now, not by the first forward pass, whose change
    of the config would recompile at step 2."""
    model.train()
    config = getattr(model, "config", None)
    if config is not None and getattr(config, "problem_type", "") is None:
        config.problem_type = "single_label_classification"  # integer class ids, one label per row
    return model


def make_optimizer(model, args):
    import torch

    decay = [p for _, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for _, p in model.named_parameters() if p.ndim <= 1]
    return torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=args.learning_rate,
                             fused=torch.cuda.is_available())
