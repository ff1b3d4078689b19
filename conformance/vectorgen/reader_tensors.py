"""Reader vectors about tensor descriptors and the data section's layout."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .common import DIM, FULL_TENSORS, full_fields
from .packets import Bases, aligned, build
from .suite import Suite


def add_vectors(s: Suite, bases: Bases) -> None:
    """Dtype and scale, shape and length, alignment, holes, overlaps, padding, digests.

    Each vector rebuilds the full packet with a hook on its descriptors or data section, so
    ``bases`` is not needed here (the parameter keeps every topic's signature the same).
    """

    # ---- tensor descriptors and layout
    def tensor_case(
        vid: str,
        desc: str,
        code: str,
        hook: Callable[..., Any],
        redigest: bool = True,
        tags: list[str] | None = None,
        spec: list[str] | None = None,
    ) -> None:
        s.invalid(
            vid,
            desc,
            build(full_fields(), FULL_TENSORS, infos_hook=hook, redigest=redigest).encode(),
            code,
            spec=spec or ["data"],
            tags=tags or ["tensor"],
            mutation=("full", "descriptor", desc),
        )

    tensor_case(
        "r-tensor-dtype-i8-no-scale",
        "An i8 tensor without a scale.",
        "TENSOR_DTYPE",
        lambda i, d: i[6].pop("scale"),
        spec=["dtypes"],
    )
    tensor_case(
        "r-tensor-dtype-f32-with-scale",
        "An f32 tensor with a scale.",
        "TENSOR_DTYPE",
        lambda i, d: i[0].update(scale=0.5),
        spec=["dtypes"],
    )

    def minus_128(i: list[dict[str, Any]], d: bytearray) -> None:
        d[i[6]["offset"]] = 0x80

    tensor_case(
        "r-tensor-dtype-i8-minus-128",
        "An i8 tensor holding -128, the reserved value (symmetric quantisation uses -127..127).",
        "TENSOR_DTYPE",
        minus_128,
        spec=["dtypes"],
    )
    tensor_case(
        "r-tensor-shape-length",
        "The last tensor (i8 [4]) declares length 5; the data section still covers it.",
        "TENSOR_SHAPE",
        lambda i, d: i[6].update(length=5),
        tags=["tensor", "shape"],
    )
    tensor_case(
        "r-tensor-shape-shape",
        "An f32 tensor of 16 bytes declares shape [2, 4] (32 bytes).",
        "TENSOR_SHAPE",
        lambda i, d: i[0].update(shape=[2, DIM]),
        tags=["tensor", "shape"],
    )

    def move(index: int, delta: int) -> Callable[..., Any]:
        def hook(i: list[dict[str, Any]], d: bytearray) -> bytearray:
            t = i[index]
            chunk = bytes(d[t["offset"] : t["offset"] + t["length"]])
            d[t["offset"] : t["offset"] + t["length"]] = bytes(t["length"])
            t["offset"] += delta
            need = aligned(t["offset"] + t["length"])
            if len(d) < need:
                d.extend(bytes(need - len(d)))
            d[t["offset"] : t["offset"] + t["length"]] = chunk
            return d

        return hook

    tensor_case(
        "r-tensor-layout-misaligned",
        "The second tensor at offset 96 instead of 64 (bytes moved, digest kept right).",
        "TENSOR_LAYOUT",
        move(1, 32),
        tags=["tensor", "layout"],
    )
    tensor_case(
        "r-tensor-layout-hole",
        "The last tensor at offset 448 instead of 384: a 64-byte hole.",
        "TENSOR_LAYOUT",
        move(6, 64),
        tags=["tensor", "layout"],
    )

    def overlap(i: list[dict[str, Any]], d: bytearray) -> None:
        i[4]["offset"] = i[3]["offset"]

    tensor_case(
        "r-tensor-layout-overlap",
        "Two tensors at the same offset.",
        "TENSOR_LAYOUT",
        overlap,
        tags=["tensor", "layout"],
    )
    tensor_case(
        "r-tensor-layout-data-too-long",
        "The data section is 64 bytes longer than the descriptors need.",
        "TENSOR_LAYOUT",
        lambda i, d: d + bytearray(64),
        tags=["tensor", "layout"],
    )
    tensor_case(
        "r-tensor-layout-data-too-short",
        "The data section ends right after the last tensor (not padded to 64).",
        "TENSOR_LAYOUT",
        lambda i, d: d[: i[6]["offset"] + i[6]["length"]],
        tags=["tensor", "layout"],
    )

    def poke(at: Callable[[list[dict[str, Any]]], int]) -> Callable[..., Any]:
        def hook(i: list[dict[str, Any]], d: bytearray) -> None:
            d[at(i)] = 0x01

        return hook

    tensor_case(
        "r-tensor-layout-padding-between",
        "A non-zero byte in the padding between the first and second tensor.",
        "TENSOR_LAYOUT",
        poke(lambda i: i[0]["offset"] + i[0]["length"]),
        tags=["tensor", "layout"],
    )
    tensor_case(
        "r-tensor-layout-padding-end",
        "A non-zero last byte of the data section (end padding).",
        "TENSOR_LAYOUT",
        poke(lambda i: aligned(i[6]["offset"] + i[6]["length"]) - 1),
        tags=["tensor", "layout"],
    )
    tensor_case(
        "r-tensor-digest-flipped-byte",
        "One bit of the first tensor's data flipped after hashing.",
        "TENSOR_DIGEST",
        lambda i, d: d.__setitem__(i[0]["offset"], d[i[0]["offset"]] ^ 0x01),
        redigest=False,
        tags=["tensor", "digest"],
        spec=["tensors", "packet_id"],
    )

    def swap_digest(i: list[dict[str, Any]], d: bytearray) -> None:
        i[0]["sha256"], i[3]["sha256"] = i[3]["sha256"], i[0]["sha256"]

    tensor_case(
        "r-tensor-digest-swapped",
        "The digests of two tensors swapped in the descriptors.",
        "TENSOR_DIGEST",
        swap_digest,
        redigest=False,
        tags=["tensor", "digest"],
        spec=["tensors", "packet_id"],
    )
