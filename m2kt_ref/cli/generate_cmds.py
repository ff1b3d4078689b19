"""``m2kt generate``: teacher-side packet generation (spec/algorithms.md §1, §6).

The teacher is an m2kt model directory, or ``hf:DIR``, a Hugging Face ``save_pretrained``
directory read with a concept file and a prompt file (docs/huggingface.md). Torch (and
``transformers``) are imported inside the handler only. User mistakes (a missing teacher
directory, an unknown layer or dtype, a bad key file, a malformed concept file) raise coded errors
that ``m2kt`` prints as ``CODE: message`` with exit status 1.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from m2kt_ref.cli.common import add_distributed_options, distributed_run, rank0_writes
from m2kt_ref.errors import UsageError

__all__ = ["HF_PREFIX", "generate_command", "register"]

#: A teacher or student named ``hf:DIR`` is a Hugging Face model directory.
HF_PREFIX = "hf:"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``generate`` to the ``m2kt`` parser."""
    p = subparsers.add_parser(
        "generate",
        help="build a knowledge packet from a teacher model directory",
        description="Read a trained teacher's hidden states on its task's concept probes and "
        "problems, and write a knowledge packet whose every fact comes from the teacher and "
        "says how: concepts, abstraction graph, reasoning traces (steps decoded by the "
        "teacher's own readout, problems chosen to cover every transition it makes), anchors, "
        "provenance and safety policy (spec/algorithms.md §1). Task ground truth enters only "
        "with --declare, marked declared.",
    )
    p.add_argument(
        "--teacher",
        required=True,
        metavar="DIR",
        help="teacher model directory, or hf:DIR for a Hugging Face save_pretrained directory",
    )
    p.add_argument("-o", "--output", required=True, metavar="PACKET", help="packet file to write")
    p.add_argument(
        "--traces",
        metavar="K|FILE",
        help="number of traces (default: exactly the cover with --trace-selection cover, 16 "
        "with random, every prompt with declared); with an hf: teacher, a prompt file "
        "(JSON lines) is accepted here too",
    )
    p.add_argument(
        "--trace-selection",
        choices=("cover", "random", "declared"),
        help="cover: the fewest problems whose decoded steps exercise every transition the "
        "teacher makes (default for m2kt teachers); random; declared: every prompt in file "
        "order (default for hf: teachers)",
    )
    p.add_argument(
        "--concepts",
        metavar="FILE",
        help="hf: teachers: the concept file (JSON: concepts with probe texts)",
    )
    p.add_argument(
        "--prompts",
        metavar="FILE",
        help="hf: teachers: the prompt file (JSON lines: prompt, optional answer), the traces",
    )
    p.add_argument(
        "--max-new-tokens",
        type=int,
        default=8,
        metavar="N",
        help="hf: teachers with a language-model head continue a prompt without answer by up "
        "to N tokens (8; 0 leaves it as it is)",
    )
    p.add_argument(
        "--model-dtype",
        choices=("fp32", "bf16", "fp16"),
        help="hf: teachers: precision of the weights (fp32; bf16/fp16 need --device cuda)",
    )
    p.add_argument(
        "--step-decoding",
        choices=("teacher-readout", "nearest-concept"),
        help="how trace steps are named (default: the teacher's readout where the layer feeds "
        "it, else the nearest concept)",
    )
    p.add_argument(
        "--operators",
        action="store_true",
        help="ask the teacher the task's operator probes and add what they yield",
    )
    p.add_argument(
        "--declare",
        action="store_true",
        help="add the task's ground-truth relations, marked declared",
    )
    p.add_argument(
        "--dtype", default="f32", metavar="DTYPE", help="tensor dtype: f32 (default), f16, bf16, i8"
    )
    p.add_argument("--key", metavar="KEY", help="sign with this secret key file (NAME.key)")
    p.add_argument(
        "--layer",
        metavar="L",
        help="layer to read (default: the last block / hidden layer; hf: hidden.N with a "
        "language-model head, else mean.N)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the trace choice's order (0)")
    p.add_argument("--knn", type=int, default=3, metavar="K", help="similarity neighbours (3)")
    p.add_argument("--components", type=int, default=4, metavar="R", help="manifold directions (4)")
    p.add_argument("--cluster-levels", type=int, default=3, metavar="L", help="clustering cuts (3)")
    p.add_argument(
        "--protected",
        action="append",
        default=[],
        metavar="ID",
        help="a concept id to list as protected; repeatable",
    )
    p.add_argument(
        "--created",
        metavar="TIME",
        help="header time, YYYY-MM-DDTHH:MM:SSZ or Unix seconds (default: $SOURCE_DATE_EPOCH, "
        "else now); pins the bytes",
    )
    p.add_argument("--name", help="teacher name in the packet (default: the directory name)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        metavar="N",
        help="rows per forward pass (default 1024; an hf: teacher's by its width); with "
        "--distributed, the unit shared out to the ranks (the packet equals a single-process "
        "run with the same N)",
    )
    add_distributed_options(p)
    p.add_argument("--json-form", action="store_true", help="write the JSON form instead of CBOR")
    p.add_argument("--json", action="store_true", help="print the generation stats as JSON")
    p.set_defaults(handler=generate_command)


def _trace_count(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"--traces {value!r} is neither a number nor, with hf:, a file") from None


def generate_command(args: argparse.Namespace) -> int:
    if args.threads < 1:
        raise UsageError("--threads must be >= 1")
    if args.batch_size is not None and args.batch_size < 1:
        raise UsageError("--batch-size must be >= 1")
    with distributed_run(args) as dist:
        return _generate(args, dist)


def _generate(args: argparse.Namespace, dist: Any) -> int:
    hf = args.teacher.startswith(HF_PREFIX)
    prompts = args.prompts
    traces_value = args.traces
    if hf and traces_value is not None and not traces_value.strip().lstrip("-").isdigit():
        if prompts is not None:
            raise UsageError("give the prompt file once: --prompts or --traces FILE")
        prompts, traces_value = traces_value, None
    traces = _trace_count(traces_value)
    if not hf:
        for flag, value in (
            ("--concepts", args.concepts),
            ("--prompts", prompts),
            ("--model-dtype", args.model_dtype),
        ):
            if value is not None:
                raise UsageError(f"{flag} is for hf: teachers; {args.teacher} is an m2kt teacher")
    elif args.concepts is None:
        raise UsageError("an hf: teacher needs --concepts FILE (docs/huggingface.md)")
    elif args.operators:
        raise UsageError("--operators: a text teacher's task defines no operator probes")
    key = None
    if args.key:
        from m2kt_ref.packet.keys import load_signing_key

        key = load_signing_key(args.key)  # fail before any work
    import torch

    from m2kt_ref.packet import codec

    torch.set_num_threads(args.threads)
    common = {
        "traces": traces,
        "step_decoding": args.step_decoding,
        "declare": args.declare,
        "dtype": args.dtype,
        "layer": args.layer,
        "knn": args.knn,
        "components": args.components,
        "cluster_levels": args.cluster_levels,
        "seed": args.seed,
        "created": args.created,
        "protected": args.protected,
        "key": key,
        "name": args.name,
        "device": str(dist.device) if dist is not None else args.device,
    }
    if hf:
        import m2kt_ref.transfer.hf as mhf  # a coded error when the hf extra is missing

        result = mhf.generate_hf_packet(
            args.teacher[len(HF_PREFIX) :],
            args.concepts,
            prompts,
            trace_selection=args.trace_selection or "declared",
            max_new_tokens=args.max_new_tokens,
            model_dtype=args.model_dtype,
            batch_size=args.batch_size,
            dist=dist,
            **common,
        )
    else:
        from m2kt_ref.transfer.teacher.generate import generate_packet

        result = generate_packet(
            args.teacher,
            trace_selection=args.trace_selection or "cover",
            operators=args.operators,
            batch_size=args.batch_size or 1024,
            dist=dist,
            **common,
        )
    if dist is not None:
        # None: the default (1024 rows, or an hf: teacher's by its width)
        result.stats["distributed"] = {**dist.describe(), "batch_size": args.batch_size}

    def save() -> Path:
        codec.write_packet(
            result.packet, args.output, encoding="json" if args.json_form else "cbor"
        )
        return Path(args.output)

    if rank0_writes(dist, "writing the packet", save) is None:  # another rank wrote it
        return 0
    stats = {"file": args.output, "file_bytes": Path(args.output).stat().st_size, **result.stats}
    if args.json:
        print(json.dumps(stats, indent=2, sort_keys=True))
        return 0
    s = stats
    print(
        f"{args.output}: packet {s['packet_id'][:16]}…, {s['file_bytes']} bytes ({s['dtype']}); "
        f"{s['concepts']} concepts + {s['clusters']} clusters, {s['edges']} edges, "
        f"{s['traces']} traces, {s['anchors']} anchors; layer {s['layer']} (d={s['latent_dim']}); "
        f"task inputs {s['task_inputs_used']}, probes {s['concept_probes_used']}; "
        f"{s['timing_s']['total']:.2f}s" + ("; signed" if s["signed"] else "")
    )
    return 0
