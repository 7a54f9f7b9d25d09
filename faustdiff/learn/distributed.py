"""Training on many machines with Dask distributed (the `faustdiff[distributed]` extra).

    from distributed import Client
    from faustdiff.learn.distributed import DaskExecutor
    client = Client("tcp://scheduler:8786")          # or Client(LocalCluster(...))
    tr.fit(dataset, epochs=20, executor=DaskExecutor(client))    # data-parallel
    rows = tr.fit_each(dataset, steps=300, executor=DaskExecutor(client))   # a task per pair

`faustdiff train --dataset DIR --scheduler ADDRESS` (or `--workers N`: a `LocalCluster` of N
worker processes started for the run, closed at its end) does the same (`dask_client`).

What runs where:
* data-parallel training (`batch_terms`): every mini-batch (and the validation and final
  losses, batch by batch) is cut into contiguous shares, one task per worker thread; a
  task renders its share at θ and returns its examples' terms (`Trainer.example_terms`:
  loss and dL/dθ per example, or per segment with the state carried); the driver combines
  them in example order (`combine_terms`, the function a one-process run uses) and steps
  the optimiser. On one machine (the same compiled code) the parameters are the
  one-process run's bit for bit; workers on other CPUs may round the reverse-mode
  backward kernel (fast-math reassociation vectorised for the host) differently, ~1e-13.
* per-file fitting (`fit_pairs`): one task per pair, `Trainer.fit_pair` on a worker; the
  rows are gathered in the dataset's order.
* Tasks are pure functions of their arguments (the trainer's configuration, θ, segment ids
  and the pairs' samples): when a worker is lost, the scheduler runs its tasks again on
  another one and the result is the same. The samples of data-parallel training are sent
  once per run, each pair as the result of a task that returns it (`pair_arrays`: lost
  with a worker, it is computed again from the arguments the scheduler keeps); a per-file
  task carries its own pair.
* Compiling: a task carries the model's recipe (`Trainer.recipe`: source text and the
  `compile_program` arguments); each worker process compiles a recipe once (`_PROGRAMS`,
  keyed by the recipe's content hash; `COMPILES` counts) and keeps free program pools
  for its tasks. Workers sharing a disk cache (`FAUSTDIFF_CACHE_DIR`) load the module the
  driver compiled instead of generating it again. Workers need faustdiff installed (the
  same version as the driver).

This module imports `train` and `dataset`, never the reverse (the trainer knows an
executor only by its two methods); `distributed` itself is imported when a client is
made or used, so the module imports without Dask.
"""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import threading
import time
from contextlib import contextmanager
from typing import Optional

import numpy as np

from ..backend.build import compile_program
from ..errors import FaustError
from .dataset import cut
from .train import Trainer

NEED_DASK = ("--scheduler/--workers need Dask: pip install 'faustdiff[distributed]' (or pip "
             "install dask distributed)")
DEFAULT_TIMEOUT = 10.0   # seconds to reach a scheduler (or start a local cluster)

# ---------------------------------------------------------------- the worker side

_LOCK = threading.Lock()
_PROGRAMS: dict = {}     # recipe key -> the compiled program (this process)
_FREE: dict = {}         # recipe key -> pools of programs no task is using
COMPILES: dict = {}      # recipe key -> how many times this process compiled it
TASKS: dict = {}         # recipe key -> tasks this process ran with it


def recipe_key(recipe: dict) -> str:
    """The content hash of a recipe (the source text and every compile argument)."""
    from .. import __version__
    canon = json.dumps({k: (list(v) if isinstance(v, tuple) else v)
                        for k, v in sorted(recipe.items())}, sort_keys=True)
    return hashlib.sha256(f"{__version__}\n{canon}".encode()).hexdigest()[:32]


def _program(recipe: dict, key: str):
    """The compiled program of a recipe, compiled at most once in this process."""
    with _LOCK:
        prog = _PROGRAMS.get(key)
        if prog is None:
            prog = _PROGRAMS[key] = compile_program(**recipe)
            COMPILES[key] = COMPILES.get(key, 0) + 1
        return prog


def compile_counts() -> dict:
    """{recipe key: (compiles, tasks)} of this process (`client.run(compile_counts)`: per
    worker): a worker compiles a recipe once, whatever the number of its tasks."""
    with _LOCK:
        return {k: (COMPILES[k], TASKS.get(k, 0)) for k in COMPILES}


def _checkout(cfg: dict) -> Trainer:
    """A Trainer of the configuration around a program pool no other task uses (a new
    pool of clones when all are busy: several threads on a worker)."""
    key = cfg["key"]
    base = _program(cfg["recipe"], key)
    with _LOCK:
        TASKS[key] = TASKS.get(key, 0) + 1
        free = _FREE.setdefault(key, [])
        pool = free.pop() if free else None
    if pool is None:
        pool = [base.clone()]
    for p in pool:   # the other widgets as the driver set them
        for label, value in cfg["controls"].items():
            p.set_param(label, value)
    tr = Trainer(pool[0], loss=cfg["loss"], optimizer=cfg["optimizer"],
                 normalize=cfg["normalize"], parallel=cfg["parallel"],
                 schedule=cfg["schedule"], recipe=cfg["recipe"])
    tr.specs = list(cfg["specs"])
    tr._pool = pool
    return tr


def _checkin(cfg: dict, tr: Trainer) -> None:
    with _LOCK:
        _FREE.setdefault(cfg["key"], []).append(tr._pool)


def worker_version() -> str:
    """faustdiff's version in this process (checked on every worker before the first
    task: `DaskExecutor._check`)."""
    from .. import __version__
    return __version__


def pair_arrays(x, t) -> tuple:
    """A task: a pair's (input, target), so that workers hold them (see `_futures`)."""
    return x, t


def share_terms(cfg: dict, theta, ids, chunk, need, *arrays) -> list:
    """A task: the terms (`Trainer.example_terms`) of the examples `ids` ((pair, start,
    stop)) at θ; `arrays` are the (input, target) of the pairs `need`."""
    data = dict(zip(need, arrays))
    xs, ts = [], []
    for i, a, b in ids:
        x, t = cut(*data[i], a, b)
        xs.append(x)
        ts.append(t)
    tr = _checkout(cfg)
    try:
        with np.errstate(all="ignore"):
            return tr.example_terms(theta, xs, ts, chunk)[0]
    finally:
        _checkin(cfg, tr)


def pair_fit(cfg: dict, x, t, name, theta0, steps, tol, segment=None) -> dict:
    """A task: one row of `fit_each` (`Trainer.fit_pair`)."""
    tr = _checkout(cfg)
    try:
        with np.errstate(all="ignore"):
            return tr.fit_pair(x, t, name, theta0, steps, tol, segment=segment)
    finally:
        _checkin(cfg, tr)


# ---------------------------------------------------------------- the driver side

def _config(trainer: Trainer) -> dict:
    """What a worker needs to act as `trainer`: the recipe, the other widgets' values, the
    parameter specs, loss, optimiser (reset by each fit), normalisation and schedule."""
    if trainer.recipe is None:
        raise FaustError("distributed training needs the model's source: build the Trainer "
                         "from a .dsp path or source text (or give recipe=)")
    controls = {k: float(v) for k, v in trainer.program.params.items()
                if k not in trainer.labels}
    return {"recipe": trainer.recipe, "key": recipe_key(trainer.recipe),
            "controls": controls, "specs": list(trainer.specs), "loss": trainer.loss,
            "optimizer": copy.deepcopy(trainer.optimizer), "normalize": trainer.normalize,
            "parallel": trainer.parallel, "schedule": trainer.schedule}


def shares(items: list, k: int) -> list:
    """`items` cut into at most k contiguous, non-empty parts of sizes differing by at
    most one, in order."""
    k = max(1, min(k, len(items)))
    q, r = divmod(len(items), k)
    out, a = [], 0
    for j in range(k):
        b = a + q + (1 if j < r else 0)
        out.append(items[a:b])
        a = b
    return out


class DaskExecutor:
    """Evaluations on the workers of a `distributed.Client` (see the module docstring):
    `Trainer.fit(dataset, executor=...)` and `Trainer.fit_each(dataset, executor=...)`.

    client -- a connected `distributed.Client`
    shares -- parts a mini-batch is cut into (default: the cluster's worker threads when
              the batch is submitted)"""

    def __init__(self, client, shares: Optional[int] = None):
        self.client = client
        self.shares = shares
        self._data: dict = {}   # id(pair) -> (pair, future of its (input, target))
        self._threads = None    # (worker threads, when asked)
        self._checked = False

    def _check(self) -> None:
        """Once: every worker imports faustdiff, the same version as this process."""
        if self._checked:
            return
        from .. import __version__
        try:
            versions = self.client.run(worker_version)
        except ImportError as e:
            raise FaustError(f"the Dask workers cannot import faustdiff ({e}): install it "
                             "where they run") from None
        for address, v in sorted(versions.items()):
            if v != __version__:
                raise FaustError(f"the Dask worker at {address} runs faustdiff {v}, this "
                                 f"process {__version__}: install the same version")
        self._checked = True

    def _parts(self) -> int:
        """Shares per batch: `shares`, else the cluster's threads (asked again every few
        seconds: a round trip to the scheduler; the count changes no result)."""
        if self.shares is not None:
            return max(1, int(self.shares))
        now = time.monotonic()
        if self._threads is None or now - self._threads[1] > 5.0:
            self._threads = (max(1, sum(self.client.nthreads().values())), now)
        return self._threads[0]

    def _futures(self, dataset, indexes) -> list:
        """Futures of the (input, target) of dataset.pairs[i], made the first time a pair
        is needed by a task that returns them (not `scatter`: scattered data has no
        lineage, and Dask's memory manager keeps one replica, so a lost worker would lose
        it; a task's result is computed again from the arguments the scheduler keeps)."""
        for i in indexes:
            p = dataset.pairs[i]
            if id(p) not in self._data:
                with _quiet_size():
                    self._data[id(p)] = (p, self.client.submit(pair_arrays, p.x, p.t,
                                                               pure=False))
        return [self._data[id(dataset.pairs[i])][1] for i in indexes]

    def batch_terms(self, trainer, theta, dataset, batches) -> list:
        """For every batch of (segment ids, chunk length or None): its examples' terms, in
        order, computed by one task per share."""
        cfg = _config(trainer)
        self._check()
        theta = np.asarray(theta, dtype=np.float64)
        self._futures(dataset, sorted({i for ids, _ in batches for i, _, _ in ids}))
        k = self._parts()
        futs = []
        for ids, chunk in batches:
            row = []
            for part in shares(list(ids), k):
                need = sorted({i for i, _, _ in part})
                row.append(self.client.submit(share_terms, cfg, theta, part, chunk, need,
                                              *self._futures(dataset, need), pure=False))
            futs.append(row)
        with _task_errors():
            done = self.client.gather(futs)
        return [[term for part in row for term in part] for row in done]

    def fit_pairs(self, trainer, dataset, theta0, steps, tol, segment=None):
        """The rows of `fit_each`, one task per pair, yielded in the dataset's order."""
        cfg = _config(trainer)
        self._check()
        theta0 = np.asarray(theta0, dtype=np.float64)
        with _quiet_size():
            futs = [self.client.submit(pair_fit, cfg, p.x, p.t, p.name, theta0, steps, tol,
                                       segment, pure=False) for p in dataset.pairs]
        try:
            for f in futs:
                with _task_errors():
                    row = f.result()
                yield row
        finally:   # a run stopped early (an error) leaves no task behind
            try:
                self.client.cancel(futs)
            except Exception:   # noqa: BLE001 - the client may be closed already
                pass

    def compile_counts(self) -> dict:
        """{worker address: {recipe key: (compiles, tasks)}} over the cluster."""
        return self.client.run(compile_counts)


@contextmanager
def _task_errors():
    """A task that kept killing its workers (Dask gives up after a few: `KilledWorker`)
    as a FaustError; the tasks' own errors (FaustError included) pass unchanged."""
    from distributed.scheduler import KilledWorker
    try:
        yield
    except KilledWorker as e:
        raise FaustError(f"a Dask task ended the process of every worker that ran it "
                         f"({e}); see the workers' logs") from None


@contextmanager
def _quiet_size():
    """No warning about the samples a task carries: shipping them is the point."""
    import warnings
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ll]arge (object|graph)")
        yield


# ---------------------------------------------------------------- clients

def _need_dask():
    try:
        import distributed
    except ImportError:
        raise FaustError(NEED_DASK) from None
    return distributed


@contextmanager
def dask_client(scheduler: Optional[str] = None, workers: Optional[int] = None,
                timeout: float = DEFAULT_TIMEOUT):
    """A `distributed.Client` for the `with` block: connected to the scheduler at
    `scheduler` (a FaustError naming it when it cannot be reached within `timeout`
    seconds), or to a `LocalCluster` of `workers` worker processes (one thread each)
    started now and closed at the end. Without Dask: a FaustError naming the extra."""
    if (scheduler is None) == (workers is None):
        raise FaustError("give a scheduler address or a number of workers (not both)")
    dd = _need_dask()
    cluster = None
    if workers is not None:
        if int(workers) < 1:
            raise FaustError(f"--workers must be 1 or more, got {workers}")
        cluster = dd.LocalCluster(n_workers=int(workers), processes=True,
                                  threads_per_worker=1, dashboard_address=None,
                                  silence_logs=logging.ERROR)
        scheduler = cluster
    try:
        try:
            client = dd.Client(scheduler, timeout=float(timeout))
        except (OSError, ValueError, TimeoutError) as e:
            raise FaustError(f"cannot connect to the Dask scheduler '{scheduler}': "
                             f"{_reason(e, timeout)}") from None
        try:
            yield client
        finally:
            client.close()
    finally:
        if cluster is not None:
            cluster.close()


def _reason(e: Exception, timeout: float) -> str:
    text = str(e).strip()
    if isinstance(e, (OSError, TimeoutError)) and "imed out" in text or not text:
        return f"no answer within {timeout:g} s"
    return text.rstrip(".")
