"""Nearest neighbours and neighbour counts between two embedding sets, block by block.

The full (queries x references) matrix is never built: each block of queries walks the
references in blocks and keeps a running top-k, so 100,000 x 10,000 needs memory for one block
only. Blocks run on the GPU when the caller passes a CUDA device, else on the CPU.
"""

from __future__ import annotations

from typing import Callable, Protocol

import torch

from ganfp.errors import ArgumentError

# floats one block may hold; the metric says how many floats one (query, reference) pair costs
BLOCK_BUDGET = {"cpu": 1 << 22, "cuda": 1 << 28}  # CPU: small enough to stay in cache


class Metric(Protocol):
    name: str
    floats_per_pair: int

    def pairwise(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Distances (len(a), len(b)); smaller = more alike."""


class Euclidean:
    """L2 distance between feature vectors (via one matrix product per block)."""

    name = "euclidean"
    floats_per_pair = 3

    def pairwise(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """|a|^2 + |b|^2 - 2ab in one (na, nb) buffer: large temporaries cost more than the product."""
        a_sq = torch.linalg.vector_norm(a, dim=1).square_()
        b_sq = torch.linalg.vector_norm(b, dim=1).square_()
        d2 = a_sq[:, None] + b_sq[None, :]
        return d2.addmm_(a, b.T, alpha=-2.0).clamp_min_(0).sqrt_()


def block_sizes(n_queries: int, n_refs: int, metric: Metric, device: torch.device) -> tuple[int, int]:
    budget = BLOCK_BUDGET["cuda" if device.type == "cuda" else "cpu"] // max(1, metric.floats_per_pair)
    refs = max(1, min(n_refs, 4096, budget // 64))
    queries = max(1, min(n_queries, budget // refs))
    return queries, refs


def _query_blocks(queries: torch.Tensor, refs: torch.Tensor, metric: Metric, device: torch.device, exclude_self: bool,
                  on_block: Callable[[int], None] | None):
    """Yield (query start, iterator of distance blocks over all references) per block of queries.

    Self-pairs are set to inf when `exclude_self`; every block is on `device`.
    """
    bq, br = block_sizes(len(queries), len(refs), metric, device)
    refs = refs.to(device)

    def row(q: torch.Tensor, qs: int):
        for rs in range(0, len(refs), br):
            d = metric.pairwise(q, refs[rs : rs + br]).float()
            if exclude_self:
                rows = torch.arange(qs, qs + len(q), device=device)[:, None]
                cols = torch.arange(rs, rs + d.shape[1], device=device)[None, :]
                d = d.masked_fill(rows == cols, float("inf"))
            yield rs, d

    for qs in range(0, len(queries), bq):
        q = queries[qs : qs + bq].to(device)
        yield qs, row(q, qs)
        if on_block:
            on_block(len(q))


def nearest(queries: torch.Tensor, refs: torch.Tensor, k: int, metric: Metric, device: torch.device,
            exclude_self: bool = False, on_block: Callable[[int], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(distances, indices), each (len(queries), k), of every query's k nearest references, nearest first.

    `exclude_self` is for queries == refs: an item is never its own neighbour.
    """
    k = min(k, len(refs) - int(exclude_self))
    if k < 1:
        raise ArgumentError("not enough references for one neighbour")
    distances, indices = nearest_in_groups(queries, refs, k, metric, device, [0, len(refs)], exclude_self, on_block)
    return distances[:, 0], indices[:, 0]


def nearest_in_groups(queries: torch.Tensor, refs: torch.Tensor, k: int, metric: Metric, device: torch.device,
                      bounds: list[int], exclude_self: bool = False,
                      on_block: Callable[[int], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(distances, indices), each (len(queries), groups, k), of every query's k nearest references in each group,
    nearest first; group g is refs[bounds[g]:bounds[g + 1]]. One pass compares each pair once, as `nearest` does:
    attribution's knn keeps the nearest of every class for its report without a second pass. A group with fewer
    than k references is padded with distance inf and index -1.
    """
    groups = len(bounds) - 1
    out_d = torch.full((len(queries), groups, k), float("inf"))
    out_i = torch.full((len(queries), groups, k), -1, dtype=torch.long)
    for qs, row in _query_blocks(queries, refs, metric, device, exclude_self, on_block):
        best: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * groups
        for rs, d in row:
            for g in range(groups):
                lo, hi = max(bounds[g], rs), min(bounds[g + 1], rs + d.shape[1])
                if lo < hi:
                    best[g] = _merge(best[g], d[:, lo - rs : hi - rs], lo, k)
        for g, found in enumerate(best):
            if found is not None:
                n, width = len(found[0]), found[0].shape[1]
                out_d[qs : qs + n, g, :width], out_i[qs : qs + n, g, :width] = found[0].cpu(), found[1].cpu()
    return out_d, out_i


def _merge(best: tuple[torch.Tensor, torch.Tensor] | None, d: torch.Tensor, offset: int,
           k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The running top-k (distances, indices) merged with a block of distances whose first column is `offset`."""
    block_d, block_i = d.topk(min(k, d.shape[1]), dim=1, largest=False, sorted=True)
    block_i += offset
    if best is not None:
        block_d, block_i = torch.cat([best[0], block_d], 1), torch.cat([best[1], block_i], 1)
        block_d, pos = block_d.topk(min(k, block_d.shape[1]), dim=1, largest=False, sorted=True)
        block_i = block_i.gather(1, pos)
    return block_d, block_i


def pairwise_matrix(queries: torch.Tensor, refs: torch.Tensor, metric: Metric, device: torch.device,
                    on_block: Callable[[int], None] | None = None) -> torch.Tensor:
    """The whole (queries x refs) distance matrix on the CPU, computed block by block; only for small sets."""
    out = torch.empty(len(queries), len(refs))
    for qs, row in _query_blocks(queries, refs, metric, device, False, on_block):
        for rs, d in row:
            out[qs : qs + len(d), rs : rs + d.shape[1]] = d.cpu()
    return out


def soft_count(queries: torch.Tensor, refs: torch.Tensor, radius: float, metric: Metric, device: torch.device,
               exclude_self: bool = False, on_block: Callable[[int], None] | None = None) -> torch.Tensor:
    """Per query, the references inside a ball of `radius`, each weighted 1 - (d/radius)^2.

    A smooth count (an Epanechnikov kernel): a reference at the query counts 1, one on the
    ball's edge 0, so equal hard counts are still told apart by how close the neighbours are.
    """
    counts = torch.zeros(len(queries), dtype=torch.float64)
    for qs, row in _query_blocks(queries, refs, metric, device, exclude_self, on_block):
        for _, d in row:
            w = (1.0 - (d / radius) ** 2).clamp_min_(0)
            counts[qs : qs + len(d)] += w.sum(1).double().cpu()
    return counts
