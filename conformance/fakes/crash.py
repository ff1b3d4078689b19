#!/usr/bin/env python3
"""Fake: exits with status 3 whenever it is asked for tensor values; ``--at-start``: at once."""

import os
import sys

import _fake

if "--at-start" in sys.argv:
    sys.stderr.write("fake-crash: giving up before the handshake\n")
    os._exit(3)


def behave(msg):
    if msg["input"].get("values"):
        sys.stderr.write(f"fake-crash: crashing on {msg['id']}\n")
        sys.stderr.flush()
        os._exit(3)
    return None


sys.exit(_fake.serve("fake-crash", behave))
