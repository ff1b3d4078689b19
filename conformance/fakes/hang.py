#!/usr/bin/env python3
"""Fake: never answers a request whose input is a file path (it sleeps forever)."""

import sys
import time

import _fake


def behave(msg):
    if "path" in msg["input"]:
        while True:
            time.sleep(60)
    return None


sys.exit(_fake.serve("fake-hang", behave))
