"""Export: TorchScript trace of the best model, checked against the eager model on real batches.

    python -m steps.export [--model-dir DIR --data-dir DIR --tolerance 1e-3]

Runs at the end of the training job (the launcher starts it on the main host). Writes into the model
artifact: model.pt (fp32 trace for CPU; inputs in ``ordered_model_input_keys`` order, returns logits),
on GPU jobs model.cuda.pt (bf16 weights, SDPA attention: the fast path for batched inference),
labels.json (id2label), the tokenizer files (hf/), and export_report.json with the parity figures.
Both traces are compared with the fp32 eager model on real batches; the export fails (exit 1) when
the fp32 trace differs by more than ``--tolerance`` or the bf16 trace by more than
``--bf16-tolerance`` × max(1, largest |logit|) (bf16 keeps 8 bits of mantissa).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from steps import contract
from steps.core import udf
from steps.core.common import StepError, read_labels, run_main, write_json
from steps.inference.batching import collate

PARITY_BATCHES = 4
TRACE_FILES = {"cpu": "model.pt", "cuda": "model.cuda.pt"}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-dir", type=Path, default=None, help="holds hf/ from training (default SM_MODEL_DIR)")
    p.add_argument("--data-dir", type=Path, default=None, help="prepared dataset (default: train channel)")
    p.add_argument("--tolerance", type=float, default=1e-3, help="max |traced - eager| logit difference (fp32)")
    p.add_argument("--bf16-tolerance", type=float, default=0.05, help="same for the bf16 GPU trace, relative")
    p.add_argument("--batch-size", type=int, default=8)
    args = p.parse_args(argv)
    args.model_dir = args.model_dir or contract.model_dir()
    args.data_dir = args.data_dir or contract.channel_dir(contract.CHANNEL_TRAIN)
    return args


class LogitsOnly:
    """Wraps a HF model so the trace takes positional tensors and returns a tensor."""

    @staticmethod
    def build(model, keys: list[str]):
        import torch

        class Wrapper(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.model = model

            def forward(self, *inputs):
                return self.model(**dict(zip(keys, inputs, strict=True))).logits

        return Wrapper().eval()


def parity_batches(args, pad_id: int, keys: list[str]) -> list[tuple]:
    """Real validation rows, batched by different lengths (a trace must not freeze one shape)."""
    from datasets import load_from_disk

    data = load_from_disk(str(args.data_dir))["validation"]
    rows = sorted(data, key=lambda r: len(r["input_ids"]))
    if not rows:
        raise StepError(f"{args.data_dir}: the validation split is empty")
    pad = collate(pad_id)
    chunks = [rows[i:i + args.batch_size] for i in range(0, len(rows), args.batch_size)]
    pick = [chunks[int(i * (len(chunks) - 1) / max(PARITY_BATCHES - 1, 1))] for i in range(PARITY_BATCHES)]
    return [tuple(pad(chunk)[k] for k in keys) for chunk in pick]


def trace(model, keys: list[str], batches: list[tuple], reference: list, device: str, tolerance: float):
    """Trace on ``device`` (in the model's dtype) and compare with the fp32 eager ``reference`` logits."""
    import torch

    wrapper = LogitsOnly.build(model, keys)
    moved = [tuple(t.to(device) for t in b) for b in batches]
    with torch.no_grad():
        traced = torch.jit.freeze(torch.jit.trace(wrapper, moved[len(moved) // 2], strict=False, check_trace=False))
        outs = [traced(*b).float().cpu() for b in moved]
    diffs = [float((o - r).abs().max()) for o, r in zip(outs, reference, strict=True)]
    agree = sum(int((o.argmax(-1) == r.argmax(-1)).sum()) for o, r in zip(outs, reference, strict=True))
    report = {"dtype": str(next(model.parameters()).dtype).removeprefix("torch."), "max_abs_diff": max(diffs),
              "tolerance": tolerance, "passed": max(diffs) <= tolerance,
              "prediction_agreement": agree / sum(len(r) for r in reference),
              "batches": [{"shape": list(b[0].shape), "max_abs_diff": d} for b, d in zip(batches, diffs, strict=True)]}
    return traced, report


def export_all(model, keys: list[str], batches: list[tuple], args) -> tuple[dict, dict]:
    """fp32 CPU trace always; bf16 CUDA trace where there is a GPU. A trace freezes the device of tensors
    made inside forward (attention masks), hence one trace per device kind."""
    import torch

    with torch.no_grad():
        reference = [LogitsOnly.build(model, keys)(*b).float() for b in batches]
    scale = max(1.0, max(float(r.abs().max()) for r in reference))
    traced, reports = {}, {}
    traced["cpu"], reports["cpu"] = trace(model, keys, batches, reference, "cpu", args.tolerance)
    if torch.cuda.is_available():
        fast = model.to("cuda", dtype=torch.bfloat16)
        traced["cuda"], reports["cuda"] = trace(fast, keys, batches, reference, "cuda", args.bf16_tolerance * scale)
    return traced, reports


def quiet_for_tracing(model):
    """torch.jit.trace reads every attribute of every submodule, properties included: the encoder inside a
    classifier has no loss of its own, and its `loss_function` property then warns of a causal-LM loss, and a
    deprecated property warns too. Neither is used by a traced forward pass, so neither is read."""
    import warnings

    from transformers import PreTrainedModel

    for module in model.modules():
        if isinstance(module, PreTrainedModel) and getattr(module, "loss_type", None) is None:
            module.loss_function = None  # the setter: the property returns it without guessing a loss
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    return model


def main(argv=None) -> int:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    args = parse_args(argv)
    hf_dir = args.model_dir / "hf"
    if not (hf_dir / "config.json").is_file():
        raise StepError(f"{hf_dir} has no trained model (config.json missing): run steps.train first")
    tokenizer = AutoTokenizer.from_pretrained(str(hf_dir))
    model = quiet_for_tracing(AutoModelForSequenceClassification.from_pretrained(str(hf_dir),
                                                                                 attn_implementation="sdpa").eval())
    keys = list(udf.function("ordered_model_input_keys")(tokenizer))
    batches = parity_batches(args, tokenizer.pad_token_id or 0, keys)
    traced, reports = export_all(model, keys, batches, args)
    report = {"input_keys": keys, "tolerance": args.tolerance, "devices": reports,
              "max_abs_diff": reports["cpu"]["max_abs_diff"],  # the fp32 trace; the bf16 one under devices.cuda
              "passed": all(r["passed"] for r in reports.values())}
    write_json(args.model_dir / "export_report.json", report)
    if not report["passed"]:
        print(json.dumps(report), flush=True)
        failed = {d: r["max_abs_diff"] for d, r in reports.items() if not r["passed"]}
        raise StepError(f"export parity failed: max |traced - eager| {failed} above the tolerance "
                        f"({ {d: r['tolerance'] for d, r in reports.items()} })")
    for device, module in traced.items():
        torch.jit.save(module, str(args.model_dir / TRACE_FILES[device]))
    write_json(args.model_dir / "labels.json", {"labels": read_labels(args.data_dir)})
    write_json(args.model_dir / "input_keys.json", {"keys": keys})
    print(json.dumps({"exported": sorted(TRACE_FILES[d] for d in traced),
                      "max_abs_diff": {d: r["max_abs_diff"] for d, r in reports.items()}}))
    return 0


if __name__ == "__main__":
    run_main(main)
