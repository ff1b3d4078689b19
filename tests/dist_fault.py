"""``m2kt`` with a fault injected into one rank, for tests/test_distributed.py (run by torchrun).

``M2KT_TEST_FAULT=MODE:RANK:STEP``: on rank ``RANK``, ingestion step ``STEP`` raises
(``raise``), hangs (``hang``) or kills the process (``exit``); the other ranks run normally.
The library itself has no fault hooks: this script patches the training step before running
the command line.
"""

from __future__ import annotations

import os
import sys
import time

from m2kt_ref.cli import main
from m2kt_ref.transfer.student.train_loop import CompositeLossTrainer

mode, rank, at = os.environ["M2KT_TEST_FAULT"].split(":")
if os.environ.get("RANK") == rank:
    original = CompositeLossTrainer._loss
    calls = {"n": 0}

    def faulty(self):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == int(at):
            if mode == "raise":
                raise RuntimeError(f"injected fault on rank {rank}")
            if mode == "hang":
                time.sleep(3600)
            if mode == "exit":
                os._exit(17)
        return original(self)

    CompositeLossTrainer._loss = faulty  # type: ignore[method-assign]

sys.exit(main())
