"""Running a network on a CPU batch as chunks of a few images, one chunk per core at a time, each single-threaded.

A chunk's activations stay in its core's cache and no op waits for the other cores: for TF-Inception's convs
(``inception_fused.run_on_cpu``) and DINOv2's matmuls (``dinov2``) this beat whole batches on all threads by
10-30% on 2-core AVX2 and AVX-512 CPUs. The extractors' features do not depend on which chunk an image lands in
(their ops are per image), so the result equals one pass over the batch within float rounding.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

_Out = TypeVar("_Out")


@functools.lru_cache(maxsize=4)
def single_threaded_pool(workers: int) -> ThreadPoolExecutor:
    """``workers`` threads whose torch ops run single-threaded (intra-op threads are per calling thread)."""
    return ThreadPoolExecutor(workers, initializer=torch.set_num_threads, initargs=(1,),
                              thread_name_prefix="genmetrics-cpu")


def map_chunks(fn: Callable[[torch.Tensor], _Out], x: torch.Tensor, chunk: int, *, pooled: bool = False
               ) -> list[_Out]:
    """``fn`` of each chunk of ``chunk`` images of ``x`` (N, ...), in order, spread over ``torch.get_num_threads()``
    single-threaded workers. With fewer chunks than threads (e.g. one image) they run in the calling thread, whose
    ops then use all the threads, unless ``pooled``: then every chunk runs single-threaded, so an image's result
    never depends on how many threads its ops used (a matmul split over threads may round differently)."""
    chunks = x.split(chunk)
    threads = torch.get_num_threads()
    if threads < 2 or (len(chunks) < threads and not pooled):
        return [fn(part) for part in chunks]

    def single_threaded(part: torch.Tensor) -> _Out:
        with torch.inference_mode():
            return fn(part)

    return list(single_threaded_pool(threads).map(single_threaded, chunks))
