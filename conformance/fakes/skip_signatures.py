#!/usr/bin/env python3
"""Fake: never checks the Ed25519 equation (nor S < L); trust, policy and structure still hold."""

import sys

import _fake
import nacl.signing

nacl.signing.VerifyKey.verify = lambda self, message, signature: message
_fake.m2kt_indep_verify.L = 1 << 256
sys.exit(_fake.serve("fake-skip-signatures"))
