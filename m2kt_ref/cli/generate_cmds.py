"""``m2kt generate``: teacher-side packet generation (spec/algorithms.md §1).

Torch is imported inside the handler only. User mistakes (a missing teacher directory, an unknown
layer or dtype, a bad key file) raise coded errors that ``m2kt`` prints as ``CODE: message`` with
exit status 1.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from m2kt_ref.errors import UsageError

__all__ = ["generate_command", "register"]


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
    p.add_argument("--teacher", required=True, metavar="DIR", help="teacher model directory")
    p.add_argument("-o", "--output", required=True, metavar="PACKET", help="packet file to write")
    p.add_argument(
        "--traces",
        type=int,
        metavar="K",
        help="number of traces (default: exactly the cover with --trace-selection cover, 16 "
        "with random)",
    )
    p.add_argument(
        "--trace-selection",
        choices=("cover", "random"),
        default="cover",
        help="cover: the fewest problems whose decoded steps exercise every transition the "
        "teacher makes (default); random",
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
        "--layer", metavar="L", help="layer to read (default: the last block / hidden layer)"
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
    p.add_argument("--json-form", action="store_true", help="write the JSON form instead of CBOR")
    p.add_argument("--json", action="store_true", help="print the generation stats as JSON")
    p.set_defaults(handler=generate_command)


def generate_command(args: argparse.Namespace) -> int:
    if args.threads < 1:
        raise UsageError("--threads must be >= 1")
    key = None
    if args.key:
        from m2kt_ref.packet.keys import load_signing_key

        key = load_signing_key(args.key)  # fail before any work
    import torch

    from m2kt_ref.packet import codec
    from m2kt_ref.transfer.teacher.generate import generate_packet

    torch.set_num_threads(args.threads)
    result = generate_packet(
        args.teacher,
        traces=args.traces,
        trace_selection=args.trace_selection,
        step_decoding=args.step_decoding,
        operators=args.operators,
        declare=args.declare,
        dtype=args.dtype,
        layer=args.layer,
        knn=args.knn,
        components=args.components,
        cluster_levels=args.cluster_levels,
        seed=args.seed,
        created=args.created,
        protected=args.protected,
        key=key,
        name=args.name,
        device=args.device,
    )
    codec.write_packet(result.packet, args.output, encoding="json" if args.json_form else "cbor")
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
