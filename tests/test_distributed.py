"""Training on Dask distributed (faustdiff.learn.distributed, `train --scheduler/--workers`).

One LocalCluster of 2 worker processes (one thread each) serves the module. The datasets are
rendered here: a one-pole lowpass with a gain (two parameters), 8 kHz, a few hundred samples
per file. Every distributed run is compared with the same run in this process: the same
parameters, losses and tables, bit for bit (the workers run the same compiled code on the
same machine).
"""
from __future__ import annotations

import logging
import os
import sys
import time

import numpy as np
import pytest

from faustdiff.audio_io import write_audio
from faustdiff.learn.dataset import Dataset
from faustdiff.learn.losses import L2
from faustdiff.learn.train import Trainer, render

try:
    import distributed
except ImportError:   # the `distributed` extra is optional
    distributed = None
needs_dask = pytest.mark.skipif(distributed is None, reason="Dask is not installed: pip "
                                "install 'faustdiff[distributed]'")

SR = 8000
ONEPOLE = ('process = _ * hslider("gain", 0.5, 0, 1, .001) : '
           '+ ~ *(hslider("pole", 0.3, 0, 0.95, .001));')
TRUE = [{"gain": 0.6 + 0.05 * k, "pole": 0.5 - 0.04 * k} for k in range(6)]


def make_pairs(folder, lengths=(300, 340, 380, 420, 460, 500)):
    rng = np.random.default_rng(0)
    os.makedirs(folder, exist_ok=True)
    for k, n in enumerate(lengths):
        x = rng.uniform(-1, 1, (1, n))
        y = render(ONEPOLE, x, params=TRUE[k], sample_rate=SR)
        write_audio(os.path.join(folder, f"ex{k}.in.wav"), x, SR, 64)
        write_audio(os.path.join(folder, f"ex{k}.target.wav"), y, SR, 64)
    return str(folder)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    return make_pairs(tmp_path_factory.mktemp("pairs"))


@pytest.fixture(scope="module")
def cluster():
    c = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                 dashboard_address=None, silence_logs=logging.ERROR)
    client = distributed.Client(c)
    yield c, client
    client.close()
    c.close()


@pytest.fixture
def executor(cluster):
    from faustdiff.learn.distributed import DaskExecutor
    return DaskExecutor(cluster[1])


def setup(pairs, model=ONEPOLE, grad_mode="auto", carry=False, loss="l2", **ds):
    tr = Trainer(model, params=["gain", "pole"], lr=0.03, sample_rate=SR, grad_mode=grad_mode,
                 loss=loss)
    ds.setdefault("segment", 0.02)
    return tr, Dataset(pairs, program=tr, val=0.2, batch=3, seed=1, carry=carry, **ds)


def same_run(a, b) -> None:
    assert a.params == b.params
    assert np.array_equal(a.losses, b.losses)
    assert a.final_loss == b.final_loss and a.steps == b.steps
    assert [h["val_loss"] for h in a.history] == [h["val_loss"] for h in b.history]
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]


# ---------------------------------------------------------------- data-parallel training

@needs_dask
@pytest.mark.parametrize("grad_mode", ["forward", "reverse"])
@pytest.mark.parametrize("carry", [False, True], ids=["segments", "carried"])
def test_data_parallel_training_is_the_one_process_run(pairs, executor, grad_mode, carry):
    # segments: 0.02 s (160 samples) cut from every pair; carried: whole pairs in 160-sample
    # chunks, state carried (the batches mix lengths: chunk_length decides for the batch)
    tr, ds = setup(pairs, grad_mode=grad_mode, carry=carry)
    one = tr.fit(ds, epochs=3)
    tr, ds = setup(pairs, grad_mode=grad_mode, carry=carry)
    many = tr.fit(ds, epochs=3, executor=executor)
    assert tr.grad_mode == grad_mode and many.steps >= 6
    same_run(one, many)


@needs_dask
def test_weighted_pairs_are_weighted_as_in_one_process(pairs, executor, tmp_path):
    manifest = tmp_path / "weighted.csv"
    manifest.write_text("input,target,weight\n" + "".join(
        f"{pairs}/ex{k}.in.wav,{pairs}/ex{k}.target.wav,{w}\n"
        for k, w in enumerate([3, 1, 0.5, 2, 1, 0.25])))
    tr, ds = setup(str(manifest), grad_mode="reverse")
    one = tr.fit(ds, epochs=2)
    tr, ds = setup(str(manifest), grad_mode="reverse")
    same_run(one, tr.fit(ds, epochs=2, executor=executor))


@needs_dask
def test_a_mini_batch_is_shared_out_in_order(pairs, cluster):
    from faustdiff.learn.distributed import DaskExecutor, shares
    assert shares(list(range(7)), 3) == [[0, 1, 2], [3, 4], [5, 6]]
    assert shares([1, 2], 5) == [[1], [2]]
    tr, ds = setup(pairs)
    one = tr.fit(ds, epochs=2)
    for k in (1, 3):   # any number of shares: the same terms, combined in example order
        tr, ds = setup(pairs)
        same_run(one, tr.fit(ds, epochs=2, executor=DaskExecutor(cluster[1], shares=k)))


# ---------------------------------------------------------------- per-file fits

@needs_dask
def test_per_file_fits_on_the_workers_are_the_one_process_table(pairs, executor):
    tr, ds = setup(pairs)
    one = tr.fit_each(ds, steps=40)
    many = tr.fit_each(ds, steps=40, executor=executor)
    assert [r["file"] for r in many] == [f"ex{k}.target.wav" for k in range(6)]
    assert many == one
    assert np.array_equal(tr.theta, [0.5, 0.3])   # the trainer's values are left alone
    # each fit in chunks, the state carried: in reverse mode the pole's gradient is
    # truncated at the 16-sample boundaries, so the table differs from the whole fits'
    # (which shows the workers cut the pairs too) and is the one-process table
    tr, ds = setup(pairs, grad_mode="reverse")
    one = tr.fit_each(ds, steps=10, segment=0.002)
    assert tr.fit_each(ds, steps=10, segment=0.002, executor=executor) == one
    assert max(abs(a["pole"] - b["pole"]) for a, b in
               zip(one, tr.fit_each(ds, steps=10))) > 1e-6


@needs_dask
def test_the_cli_per_file_table_is_the_same_on_workers(pairs, cluster, cli, tmp_path):
    model = tmp_path / "onepole.dsp"
    model.write_text(ONEPOLE + "\n")
    # pole: not learned, set to 0.4 for the fits (the workers must set it too)
    args = ["train", model, "--dataset", pairs, "--per-file", "--steps", "30", "--lr", "0.05",
            "--params", "gain", "--set", "pole=0.4", "--set", "gain=0.2", "-q"]
    local = cli(*args, "--results", tmp_path / "one.csv")
    assert local.exit_code == 0, local.stderr
    remote = cli(*args, "--results", tmp_path / "many.csv",
                 "--scheduler", cluster[0].scheduler_address)
    assert remote.exit_code == 0, remote.stderr
    table = (tmp_path / "one.csv").read_text()
    assert (tmp_path / "many.csv").read_text() == table
    assert table.startswith("file,gain,loss,steps\nex0.target.wav,")
    default = cli(*args[:-5], "-q", "--results", tmp_path / "default.csv")
    assert default.exit_code == 0 and (tmp_path / "default.csv").read_text() != table
    assert remote.stdout.splitlines()[0].endswith(
        f" on the Dask cluster at {cluster[0].scheduler_address}")


@needs_dask
def test_the_cli_dataset_training_is_the_same_on_workers(pairs, cluster, cli, tmp_path):
    model = tmp_path / "onepole.dsp"
    model.write_text(ONEPOLE + "\n")
    args = ["train", model, "--dataset", pairs, "--val", "0.2", "--batch", "3", "--segment",
            "0.02", "--epochs", "2", "--lr", "0.03", "--params", "gain,pole", "-q"]
    local = cli(*args)
    remote = cli(*args, "--scheduler", cluster[0].scheduler_address)
    assert local.exit_code == 0 and remote.exit_code == 0, remote.stderr
    strip = [line for line in local.stdout.splitlines()[1:]]
    assert remote.stdout.splitlines()[1:] == strip   # the losses and values, to 9 digits


# ---------------------------------------------------------------- compiled once per worker

@needs_dask
def test_each_worker_compiles_the_program_once(pairs, executor):
    # a program no other test compiles: its recipe key is new to the workers
    model = ONEPOLE + "\n// compiled once per worker\n"
    tr, ds = setup(pairs, model=model)
    tr.fit(ds, epochs=2, executor=executor)
    tr.fit_each(ds, steps=5, executor=executor)
    from faustdiff.learn.distributed import recipe_key
    key = recipe_key(tr.recipe)
    counts = {w: c[key] for w, c in executor.compile_counts().items() if key in c}
    # 4 steps x 2 shares + 2 validation and 1 final losses x 1-2 shares + 6 pairs
    assert sum(tasks for _, tasks in counts.values()) >= 4 * 2 + 6
    assert len(counts) == 2 and all(compiles == 1 for compiles, _ in counts.values()), counts
    assert all(tasks > 1 for _, tasks in counts.values()), counts


# ---------------------------------------------------------------- errors

def test_without_dask_the_options_name_the_extra(pairs, cli, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "distributed", None)   # import distributed fails
    model = tmp_path / "onepole.dsp"
    model.write_text(ONEPOLE + "\n")
    for opt in (["--workers", "2"], ["--scheduler", "tcp://127.0.0.1:8786"]):
        r = cli("train", model, "--dataset", pairs, "--epochs", "1", *opt)
        assert (r.exit_code, r.stdout) == (1, "")
        assert r.stderr == ("faustdiff: error: --scheduler/--workers need Dask: pip install "
                            "'faustdiff[distributed]' (or pip install dask distributed)\n")


def test_dask_options_that_make_no_sense(pairs, cli, tmp_path):
    model = tmp_path / "onepole.dsp"
    model.write_text(ONEPOLE + "\n")
    cases = {
        ("--target", "x.wav", "--workers", "2"):
            "--workers: only with --dataset DIR_OR_MANIFEST",
        ("--dataset", pairs, "--workers", "2", "--scheduler", "tcp://h:1"):
            "--scheduler and --workers: give one (a running scheduler, or N local workers)",
        ("--dataset", pairs, "--workers", "0"): "--workers must be 1 or more, got 0",
        ("--dataset", pairs, "--workers", "1", "--scheduler-timeout", "3"):
            "--scheduler-timeout: only with --scheduler ADDRESS",
        ("--dataset", pairs, "--scheduler", "tcp://h:1", "--scheduler-timeout", "0"):
            "--scheduler-timeout must be a positive number of seconds, got 0.0",
    }
    for args, msg in cases.items():
        r = cli("train", model, *args)
        assert (r.exit_code, r.stdout, r.stderr) == (1, "", f"faustdiff: error: {msg}\n"), args


@needs_dask
def test_a_bad_scheduler_address_fails_within_the_timeout(pairs, cli, tmp_path):
    model = tmp_path / "onepole.dsp"
    model.write_text(ONEPOLE + "\n")
    start = time.perf_counter()
    r = cli("train", model, "--dataset", pairs, "--epochs", "1", "--params", "gain,pole",
            "--scheduler", "tcp://127.0.0.1:1", "--scheduler-timeout", "1")
    assert time.perf_counter() - start < 8
    assert (r.exit_code, r.stdout) == (1, "")
    assert r.stderr == ("faustdiff: error: cannot connect to the Dask scheduler "
                        "'tcp://127.0.0.1:1': no answer within 1 s\n")
    r = cli("train", model, "--dataset", pairs, "--epochs", "1", "--params", "gain,pole",
            "--scheduler", "nonsense://x")
    assert r.exit_code == 1 and r.stderr.startswith(
        "faustdiff: error: cannot connect to the Dask scheduler 'nonsense://x': unknown "
        "address scheme 'nonsense'")


def test_a_trainer_without_its_source_cannot_be_shipped(pairs):
    from faustdiff.backend import grad as G
    from faustdiff.errors import FaustError
    from faustdiff.learn.distributed import DaskExecutor
    prog = G.compile_source(ONEPOLE, "<onepole>", SR, (), ["gain", "pole"])
    tr = Trainer(prog, lr=0.03)
    ds = Dataset(pairs, program=tr, batch=3, segment=0.02)
    with pytest.raises(FaustError) as e:
        tr.fit(ds, epochs=1, executor=DaskExecutor(client=None))
    assert e.value.message == ("distributed training needs the model's source: build the "
                               "Trainer from a .dsp path or source text (or give recipe=)")


# ---------------------------------------------------------------- the README's example

def _readme_block(marker: str) -> tuple:
    """(the Python block after `marker`, the `faustdiff train` lines after it)."""
    readme = open(os.path.join(os.path.dirname(__file__), "..", "README.md")).read()
    part = readme[readme.index(marker):]
    code = part[part.index("```python\n") + 10:part.index("\n```\n")]
    return code, [line.split()[1:] for line in part.splitlines()
                  if line.startswith("    faustdiff train ")]


@needs_dask
@pytest.mark.filterwarnings("ignore:Port .* is already in use")   # its dashboard's default
def test_readme_dask_example(cli, tmp_path, monkeypatch):
    """The dataset example, then the block after `<!-- dask-example -->` (its own
    LocalCluster; the same results as its calls in one process) and the section's first
    command (`--workers 2`: the same table as the dataset example's --per-file one)."""
    monkeypatch.chdir(tmp_path)
    code, commands = _readme_block("<!-- dataset-example -->")
    one: dict = {}
    exec(compile(code, "README.md", "exec"), one)
    assert cli(*commands[1], "-q").exit_code == 0          # the per-file table, one process
    os.rename("presets.csv", "presets-one.csv")
    code = _readme_block("<!-- dask-example -->")[0]
    commands = _readme_block("### Many machines: Dask distributed")[1]
    many: dict = {"__name__": "__main__"}
    exec(compile(code, "README.md", "exec"), many)
    # the same calls in this process
    tr = Trainer("gain_dc.dsp", optimizer="adam", lr=0.03, sample_rate=8000)
    ds = Dataset("pairs", program=tr, val=0.2, batch=2, segment=0.025, seed=1)
    assert "epochs=5," in code and many["r"].params == tr.fit(ds, epochs=5).params
    assert many["rows"] == tr.fit_each(ds, steps=250) and len(many["rows"]) == 6
    assert "--workers" in commands[0]
    r = cli(*commands[0], "-q")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.splitlines()[0].endswith(" on 2 local Dask worker(s)")
    assert open("presets.csv").read() == open("presets-one.csv").read()


# ---------------------------------------------------------------- a worker lost mid-run

class KillsItsWorkerOnce(L2):
    """The l2 loss, except that its first call on a Dask worker (the marker file does not
    exist yet) ends that worker's process abruptly, in the middle of a task."""

    def __init__(self, marker: str):
        self.marker = marker

    def compute(self, y, t):
        try:
            distributed.get_worker()
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except (ValueError, FileExistsError):   # not on a worker, or killed one already
            return super().compute(y, t)
        os.close(fd)
        os._exit(1)


def _retried(cluster) -> list:
    """Keys of the tasks that were running on a worker when it was removed."""
    log = cluster[0].scheduler.transition_log
    return [e[0] for e in log if e[1] == "processing" and e[2] != "memory"
            and "worker" in str(e[4])]


@needs_dask
@pytest.mark.parametrize("what", ["data-parallel", "per-file"])
def test_a_worker_killed_mid_task_does_not_change_the_result(pairs, cluster, tmp_path, what):
    import cloudpickle
    from faustdiff.learn.distributed import DaskExecutor
    _, client = cluster
    client.wait_for_workers(2, timeout=60)

    def run(loss, executor=None):
        tr, ds = setup(pairs, grad_mode="reverse", loss=loss)
        if what == "per-file":
            return tr.fit_each(ds, steps=40, executor=executor)
        return tr.fit(ds, epochs=3, executor=executor)
    undisturbed = run("l2")
    before, retried = set(client.scheduler_info()["workers"]), len(_retried(cluster))
    marker = tmp_path / "killed"
    cloudpickle.register_pickle_by_value(sys.modules[__name__])   # the loss, to the workers
    try:
        disturbed = run(KillsItsWorkerOnce(str(marker)), DaskExecutor(client))
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert marker.exists()                      # a worker died in a task ...
    assert len(_retried(cluster)) > retried     # ... which ran again on another worker
    if what == "per-file":
        assert disturbed == undisturbed
    else:
        same_run(undisturbed, disturbed)
    client.wait_for_workers(2, timeout=60)      # its nanny started a new one
    assert len(before - set(client.scheduler_info()["workers"])) == 1


@needs_dask
def test_workers_of_another_version_are_refused(pairs, cluster, monkeypatch):
    import faustdiff
    from faustdiff.errors import FaustError
    from faustdiff.learn.distributed import DaskExecutor
    real = faustdiff.__version__
    monkeypatch.setattr(faustdiff, "__version__", "0.0.test")
    tr, ds = setup(pairs)
    with pytest.raises(FaustError) as e:
        tr.fit_each(ds, steps=1, executor=DaskExecutor(cluster[1]))
    address = sorted(cluster[1].scheduler_info()["workers"])[0]
    assert e.value.message == (f"the Dask worker at {address} runs faustdiff {real}, this "
                               "process 0.0.test: install the same version")
