#!/usr/bin/env python3
"""Fake: answers some requests with garbage; ``--bad-handshake``: garbage from the start.

* file inputs: a line that is not JSON;
* requests that set max_depth: JSON that is not a protocol reply (an unknown outcome);
* requests asking for tensor values: a well-formed reply for another seq.
"""

import json
import sys

import _fake


def behave(msg):
    inp = msg["input"]
    if "path" in inp:
        return "this is not JSON {"
    if "max_depth" in inp.get("limits", {}):
        return json.dumps({"seq": msg["seq"], "result": {"outcome": "maybe"}})
    if inp.get("values"):
        return json.dumps({"seq": msg["seq"] + 1000, "skipped": {"reason": "wrong seq"}})
    return None


start = '{"protocol": 99, "implementation": "?"}' if "--bad-handshake" in sys.argv else None
sys.exit(_fake.serve("fake-garbage", behave, start=start))
