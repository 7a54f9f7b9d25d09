"""The ``faustdiff`` command line (click), a thin layer over `faustdiff.api` and `audio_io`.

    faustdiff run FILE.dsp [--input KIND|FILE] [--samples N] [--sr RATE] [--set LABEL=VALUE]...
                           [-I DIR]... [-o OUT] [--wav-bits 32|64] [--emit]
                           [--backend numba|interp]
                           [--grad LABEL,...|auto] [--check-finite]
    faustdiff compile FILE.dsp [-o MODULE.py] [--sr RATE] [-I DIR]...
    faustdiff train MODEL.dsp --target FILE [--input FILE] --params LABEL,... [--loss L]
                    [--optimizer O] [--steps N] [--lr LR] [--plot PNG] [--log RUN.jsonl] ...
    faustdiff --version

Exit status: 0 on success, 1 on ANY error. Errors print one message on stderr:
``file:line:col: error: ...`` for an error with a source position, ``faustdiff: error: ...``
otherwise; click's own usage errors (unknown option, missing argument, a non-integer
``--samples``) keep click's "Usage: ... Error: ..." text. Click exits 2 on usage errors by
default; `_Main.main` runs click in non-standalone mode and maps every error to 1 itself.
"""
from __future__ import annotations

import contextlib
import importlib
import math
import os
import sys
import traceback

import click
import numpy as np

from . import __version__
from . import audio_io
from .errors import FaustError

DEFAULT_SAMPLES = 44100
DEFAULT_SR = 44100


class _Main(click.Group):
    """The command group, with our exit-status and error-message policy."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if args is None and standalone_mode:   # the real command line: a process of ours
            from .backend import cache
            cache.LEAN = True
        try:
            rv = super().main(args, prog_name or "faustdiff", complete_var,
                              standalone_mode=False, **extra)
            code = rv if isinstance(rv, int) else 0
        except click.ClickException as e:  # usage errors: click's text, but status 1
            e.show()
            code = 1
        except (click.Abort, KeyboardInterrupt):
            click.echo("faustdiff: interrupted", err=True)
            code = 1
        except FaustError as e:
            click.echo(error_message(e), err=True)
            code = 1
        except BrokenPipeError:  # `faustdiff ... | head`
            code = 1
        except OSError as e:
            where = f" '{e.filename}'" if e.filename else ""
            click.echo(f"faustdiff: error: cannot access{where}: {e.strerror or e}", err=True)
            code = 1
        except Exception as e:  # a bug of ours: one line; the traceback on request
            click.echo(internal_error_message(e), err=True)
            code = 1
        if standalone_mode:
            sys.exit(code)
        return code


def internal_error_message(e: BaseException) -> str:
    """The one line for a bug of ours; with FAUSTDIFF_DEBUG set, the traceback first."""
    if os.environ.get("FAUSTDIFF_DEBUG"):
        traceback.print_exception(type(e), e, e.__traceback__)
    text = " ".join(str(e).split())
    if len(text) > 300:
        text = text[:297] + "..."
    return (f"faustdiff: internal error: {type(e).__name__}: {text} (this is a bug in "
            f"faustdiff; run with FAUSTDIFF_DEBUG=1 for the traceback)")


def error_message(e: FaustError) -> str:
    """The one message for a FaustError: ``file:line:col: error: ...`` or ``faustdiff: error: ...``."""
    return str(e) if e.span else f"faustdiff: {e}"


def _api():
    """`faustdiff.api`, imported on first use (so `--help`/`--version` stay fast)."""
    try:
        return importlib.import_module("faustdiff.api")
    except ModuleNotFoundError as e:
        if e.name != "faustdiff.api":
            raise
        raise FaustError("the compiler pipeline (faustdiff.api) is not available in this "
                         "installation") from None


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="faustdiff",
                      message="%(prog)s %(version)s")
def main():
    """faustdiff: a Python compiler for the Faust audio language, with forward-mode
    automatic differentiation. All errors exit with status 1."""


def _force_bundled_libs(ctx, param, value) -> None:
    """--bundled-libs: the bundled libraries come before an installed Faust's."""
    if value:
        from .frontend.evaluate import LIBS_ENV
        os.environ[LIBS_ENV] = "bundled"


def _check_sr(sr: int) -> None:
    if sr <= 0:
        raise FaustError(f"--sr must be a positive number of samples per second, got {sr}")
    if sr > 2**31 - 1:   # fSamplingFreq is a C int
        raise FaustError(f"--sr must be at most 2147483647, got {sr}")


MAX_RENDER_VALUES = 1 << 28   # samples x channels held in memory by one render (2 GiB)


def _check_render_size(n: int, program) -> None:
    """Refuse a render whose signals would not fit in memory (rather than being killed)."""
    channels = program.num_inputs + program.num_outputs + len(program.bargraph_labels)
    if n * max(1, channels) > MAX_RENDER_VALUES:
        raise FaustError(f"--samples {n}: {audio_io.plural(channels, 'channel')} of {n} samples "
                         f"exceed the limit of {MAX_RENDER_VALUES} values held in memory; "
                         f"render fewer samples")


def _parse_settings(settings: tuple[str, ...]) -> list[tuple[str, float]]:
    parsed = []
    for s in settings:
        label, eq, value = s.rpartition("=")
        if not eq or not label.strip():
            raise FaustError(f"--set '{s}': expected LABEL=VALUE")
        try:
            number = float(value)
        except ValueError:
            raise FaustError(f"--set '{s}': '{value}' is not a number") from None
        if not math.isfinite(number):
            raise FaustError(f"--set '{s}': the value must be a finite number")
        parsed.append((label.strip(), number))
    return parsed


def _module_source(file: str, sr: int, include: tuple[str, ...]) -> str:
    return _api().compile_module_source(file, sample_rate=sr, include=tuple(include))


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--input", "-i", "input_", metavar="KIND|FILE",
              help="Input signal: impulse, zeros, osc, noise or sine (on every input), or a "
                   ".csv or .npy file or an audio file (.wav .flac .aiff .ogg .mp3 ..., read "
                   "by libsndfile). Default: impulse when the program has inputs.")
@click.option("--samples", "-n", type=int, metavar="N",
              help=f"Samples to render. Default: the input file's length, else {DEFAULT_SAMPLES}. "
                   "A shorter input file is followed by zeros.")
@click.option("--sr", type=int, metavar="RATE",
              help=f"Sample rate in Hz. Default: the input audio file's rate, else {DEFAULT_SR}.")
@click.option("--set", "settings", multiple=True, metavar="LABEL=VALUE",
              help="Set a control (slider, nentry, button, checkbox) before rendering; repeatable.")
@click.option("--bundled-libs", is_flag=True, expose_value=False, callback=_force_bundled_libs,
              help="Use the bundled libraries even where Faust's are installed (by default "
                   "import(\"stdfaust.lib\") reads an installed Faust's, as the compiler "
                   "does; diff.lib is always ours).")
@click.option("-I", "include", multiple=True, metavar="DIR",
              help="Add a directory to the library search path; repeatable.")
@click.option("-o", "--output", metavar="OUT",
              help="Write the outputs to OUT, by extension: .csv (outputs then bargraphs), "
                   ".npy (float64, outputs x n), or audio through libsndfile: .wav .w64 .rf64 "
                   ".aiff .aif .aifc .caf .au .snd (IEEE float, see --wav-bits), .flac (24-bit "
                   "integer PCM), .ogg/.oga (Vorbis), .opus (Opus), .mp3 (MPEG Layer III). "
                   "FLAC and the lossy formats clip samples to [-1, 1] and warn how many. "
                   "Default: print a summary.")
@click.option("--wav-bits", type=click.Choice(["32", "64"]), default=None,
              help="Float size of an audio output that holds floats (.wav .w64 .rf64 .aiff "
                   ".aif .aifc .caf .au .snd): 32 (the default) or 64. An error for .flac, "
                   ".ogg, .oga, .opus and .mp3, which hold no floats.")
@click.option("--emit", is_flag=True,
              help="Print the generated Python code instead of rendering.")
@click.option("--backend", type=click.Choice(["numba", "interp"]), default=None,
              help="numba: generated code, cached on disk (the default); interp: the "
                   "reference interpreter (slow).")
@click.option("--block", type=int, metavar="N",
              help="Render in blocks of N samples, one compute call each (Faust's `count`, "
                   "ma.BS, is N). Default: the whole render in one block.")
@click.option("--check-finite", is_flag=True,
              help="Fail (status 1) when an output or bargraph holds NaN or infinity, naming "
                   "the first sample, the output and the expression that produced it.")
@click.option("--grad", metavar="LABEL,...|auto",
              help="Also compute the partial derivatives of every output with respect to "
                   "these sliders/nentries (auto: the [diff:on] parameters), written after "
                   "the outputs as dout0/dLABEL, dout1/dLABEL, ...")
@click.option("--grad-mode", type=click.Choice(["auto", "forward", "reverse"]),
              default="auto", show_default=True,
              help="How --grad is computed. Per-sample partials are a Jacobian, which forward "
                   "mode computes in one pass (auto = forward); reverse runs one backward "
                   "pass per output sample (a cross-check, up to 4096 samples).")
def run(file, input_, samples, sr, settings, include, output, wav_bits, emit, backend, grad,
        grad_mode, block, check_finite):
    """Compile FILE.dsp and render it."""
    # Everything the user typed is checked before the (slow) compilation.
    if samples is not None and samples < 0:
        raise FaustError(f"--samples must be 0 or more, got {samples}")
    if block is not None and block <= 0:
        raise FaustError(f"--block must be 1 or more, got {block}")
    if sr is not None:
        _check_sr(sr)
    values = _parse_settings(settings)
    if output is not None:
        audio_io.check_output_path(output, None if wav_bits is None else int(wav_bits))
    if emit:
        click.echo(_module_source(file, sr or DEFAULT_SR, include), nl=False)
        return

    data = None
    kind = input_
    if input_ is not None and input_ not in audio_io.INPUT_KINDS:
        if audio_io.file_kind(input_) not in audio_io.INPUT_EXTENSIONS:
            raise FaustError(f"unknown --input '{input_}': expected one of "
                             f"{', '.join(audio_io.INPUT_KINDS)}, or a file "
                             f"({audio_io.USE_A_FILE})")
        kind = None
        data, file_sr = audio_io.read_input(input_)
        if file_sr is not None and sr is None:
            sr = file_sr
        elif file_sr is not None and file_sr != sr:
            click.echo(f"faustdiff: warning: '{input_}' is at {file_sr} Hz, rendering at "
                       f"{sr} Hz (no resampling)", err=True)
    sr = sr or DEFAULT_SR
    if output is not None:   # MP3, Opus, ... take some rates only: fail before rendering
        audio_io.check_output_rate(output, sr)

    more = {"backend": backend} if backend else {}
    if grad is not None:
        more["wrt"] = grad
        if grad_mode == "reverse":
            more["mode"] = "reverse"
    program = _api().compile_file(file, sample_rate=sr, include=tuple(include), **more)
    params = program.params
    for label, value in values:
        if label not in params:
            known = ", ".join(sorted(params)) if params else "none"
            raise FaustError(f"--set '{label}': '{file}' has no control labelled '{label}' "
                             f"(its controls: {known})")
        program.set_param(label, value)

    ins = program.num_inputs
    if data is not None:
        if data.shape[0] != ins:
            unit = audio_io.channel_unit(input_)
            raise FaustError(f"'{input_}' has {audio_io.plural(data.shape[0], unit)}, but "
                             f"'{file}' has {audio_io.plural(ins, 'input')}")
        n = data.shape[1] if samples is None else samples
        _check_render_size(n, program)
        inputs = data[:, :n]
        if inputs.shape[1] < n:
            inputs = np.pad(inputs, ((0, 0), (0, n - inputs.shape[1])))
    else:
        n = DEFAULT_SAMPLES if samples is None else samples
        _check_render_size(n, program)
        kind = kind or "impulse"
        inputs = audio_io.generate_input(kind, ins, n, sr)

    with np.errstate(all="ignore"):  # Faust arithmetic is IEEE: inf/NaN are results, not errors
        if grad is not None and grad_mode == "reverse" and block and block < n:
            raise FaustError("--grad-mode reverse differentiates one block: drop --block")
        outputs, traces, partial_values = _compute(program, inputs if ins else None, n,
                                                   block or n,
                                                   grad is not None and grad_mode != "reverse")
    bargraphs = list(zip(program.bargraph_labels, traces))
    primal = (outputs, bargraphs)
    partials = []
    if grad is not None:   # the partials: extra columns after the outputs, before bargraphs
        if grad_mode == "reverse":
            names, jac = _reverse_partials(program, inputs if ins else None, n)
        else:
            names = program.column_names()[program.num_outputs:]
            jac = partial_values.reshape(len(names), n)
        partials = list(zip(names, jac))
        if output is not None and audio_io.file_kind(output) != ".csv":
            outputs = np.concatenate([outputs] + [p[None] for _, p in partials])
        elif output is not None:
            bargraphs = partials + bargraphs
    problem = None
    if check_finite:   # reported after the outputs are written
        from .backend import finite
        problem = finite.check(program, *primal, inputs if ins else None,
                               lambda: _interp_program(file, sr, include, values), partials)
    if output is not None:
        written = audio_io.write_output(output, outputs, bargraphs, sr, int(wav_bits or 32))
        if written is not None and written.warning():
            click.echo(f"faustdiff: warning: {written.warning()}", err=True)
    else:
        source = kind if data is None else f"'{input_}'"
        _summary(file, program, outputs, bargraphs, n, sr, source if ins else None, include)
        for name, values in partials:
            with np.errstate(all="ignore"):
                peak = np.max(np.abs(values)) if n else 0.0
            click.echo(f"  {name}: peak {peak:.6g}" + (f"  final {values[-1]:.17g}" if n else ""))
    if problem is not None:
        raise problem


def _compute(program, inputs, n: int, block: int, with_partials: bool):
    """(outputs, bargraph traces, partials or None) of n samples rendered by one `compute`
    per `block` samples (the program keeps its state from block to block)."""
    if n == 0 or block >= n:
        outs = program.compute(inputs, n)
        return outs, program.bargraph_traces, program.partials if with_partials else None
    outs, traces, parts = [], [], []
    for s0 in range(0, n, block):
        m = min(block, n - s0)
        outs.append(program.compute(None if inputs is None else inputs[:, s0:s0 + m], m))
        traces.append(program.bargraph_traces)
        if with_partials:
            parts.append(program.partials)
    joined = [np.concatenate(t) for t in zip(*traces)] if traces[0] else []
    return (np.concatenate(outs, axis=1), joined,
            np.concatenate(parts, axis=2) if with_partials else None)


def _interp_program(file, sr, include, values):
    """The reference interpreter's Program of `file` with the --set values (--check-finite)."""
    program = _api().compile_file(file, sample_rate=sr, include=tuple(include), backend="interp")
    for label, value in values:
        program.set_param(label, value)
    return program


def _summary(file, program, outputs, bargraphs, n, sr, source, include=()) -> None:
    from .frontend.evaluate import library_set
    ins, outs = program.num_inputs, program.num_outputs
    head = (f"{file}: {audio_io.plural(ins, 'input')}, {audio_io.plural(outs, 'output')}, "
            f"{audio_io.plural(n, 'sample')} at {sr} Hz")
    libs = library_set(file, tuple(include))
    click.echo(head + (f", input {source}" if source else "")
               + f", libraries: {'bundled' if libs == 'bundled' else 'Faust ' + libs}")
    for i, out in enumerate(outputs):
        if n:
            with np.errstate(all="ignore"):
                peak, rms = np.max(np.abs(out)), np.sqrt(np.mean(np.square(out)))
            click.echo(f"  out{i}: peak {peak:.6g}  rms {rms:.6g}")
        else:
            click.echo(f"  out{i}: no samples")
    for label, values in bargraphs:
        last = f"final {values[-1]:.17g}" if len(values) else "no samples"
        click.echo(f"  bargraph '{label}': {last}")


REVERSE_PARTIALS_MAX = 4096


def _reverse_partials(program, inputs, n):
    """Per-sample partials ∂out_o[t]/∂θ by reverse mode: one backward pass per output
    sample (dL/dy = the unit vector at (o, t)), from the state the render started from."""
    if n > REVERSE_PARTIALS_MAX:
        raise FaustError(f"--grad-mode reverse runs one backward pass per output sample: at "
                         f"most {REVERSE_PARTIALS_MAX} samples, got {n} (forward mode "
                         "computes the partials in one pass)")
    no, nw = program.num_outputs, program.num_wrt
    jac = np.zeros((nw, no, n))
    ct = np.zeros((no, n))
    for o in range(no):
        for t in range(n):
            ct[o, t] = 1.0
            jac[:, o, t] = program.vjp(ct)[0]
            ct[o, t] = 0.0
    names = [f"dout{o}/d{w}" for w in program.wrt for o in range(no)]
    return names, jac.reshape(nw * no, n)


@main.command("compile")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("-o", "--output", metavar="MODULE.py",
              help="Write the module to MODULE.py. Default: standard output.")
@click.option("--sr", type=int, default=DEFAULT_SR, show_default=True, metavar="RATE",
              help="Sample rate in Hz.")
@click.option("--bundled-libs", is_flag=True, expose_value=False, callback=_force_bundled_libs,
              help="Use the bundled libraries even where Faust's are installed (by default "
                   "import(\"stdfaust.lib\") reads an installed Faust's, as the compiler "
                   "does; diff.lib is always ours).")
@click.option("-I", "include", multiple=True, metavar="DIR",
              help="Add a directory to the library search path; repeatable.")
def compile_cmd(file, output, sr, include):
    """Compile FILE.dsp to a standalone importable Python module."""
    _check_sr(sr)
    if output is not None and audio_io.file_kind(output) != ".py":
        raise FaustError(f"cannot write '{output}': a Python module needs a .py file name")
    source = _module_source(file, sr, include)
    if output is None:
        click.echo(source, nl=False)
    else:
        with audio_io.atomic_write(output, "w", encoding="utf-8") as f:
            f.write(source)



# ---------------------------------------------------------------------------- json

def ui_description(text: str, filename: str, sr: int, include=()) -> dict:
    """The program's interface in the shape of `faust -json`: name, filename, inputs,
    outputs, meta (the source's global `declare`s) and the ui tree (groups, then widgets with
    type/label/address/meta/init/min/max/step; bargraphs with min/max)."""
    import os
    import re
    from .signals import ir as S
    program = _api().compile_source(text, filename, sr, include, backend="interp")
    base = os.path.basename(filename)
    declares = re.findall(r'^\s*declare\s+(\w+)\s+"((?:[^"\\]|\\.)*)"\s*;', text, re.M)
    meta = {k: v for k, v in declares}
    name = meta.get("name") or os.path.splitext(base)[0]
    meta.update({"filename": base, "name": name})
    widgets = list(program.controls) + list(program.bargraph_nodes)
    if S.shares_labels(widgets):   # equal labels: Faust's compile order decides
        widgets = S.in_generation_order(program.outputs, widgets)
    nodes = S.ui_order(widgets)

    def split(label):
        pairs = re.findall(r"\[\s*([^:\]]*?)\s*(?::\s*([^\]]*?))?\s*\]", label)
        return S.strip_metadata(label), [{k: v} for k, v in pairs]

    # Faust wraps the UI in a vgroup named after the program unless it is one group already
    tops = {tuple(s.attrs[2][:1]) for s in nodes}
    wrap = not (len(tops) == 1 and tops != {()})
    root = {"type": "vgroup", "label": name, "items": []}
    groups = {(): root}
    for s in nodes:
        kind, label, path = s.attrs[0], s.attrs[1], s.attrs[2]
        folder = root
        for j in range(len(path)):
            key = tuple(path[:j + 1])
            if key not in groups:
                gl, gm = split(path[j][1])
                g = {"type": path[j][0], "label": gl}
                if gm:
                    g["meta"] = gm
                g["items"] = []
                groups[key] = g
                folder["items"].append(g)
            folder = groups[key]
        wl, wm = split(label)
        w = {"type": kind, "label": wl, "shortname": wl,
             "address": S.widget_path(s, name if wrap else "")}
        if wm:
            w["meta"] = wm
        if s.op == "ui" and kind not in ("button", "checkbox"):
            w.update(init=s.attrs[3], min=s.attrs[4], max=s.attrs[5], step=s.attrs[6])
        elif s.op == "bargraph":
            w.update(min=s.attrs[3], max=s.attrs[4])
        folder["items"].append(w)
    return {"name": name, "filename": base, "inputs": program.num_inputs,
            "outputs": program.num_outputs,
            "meta": [{k: meta[k]} for k in sorted(meta)],
            "ui": [root] if wrap or not nodes else root["items"]}


@main.command("json")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--sr", type=int, default=DEFAULT_SR, show_default=True, metavar="RATE",
              help="Sample rate in Hz.")
@click.option("-I", "include", multiple=True, metavar="DIR",
              help="Add a directory to the library search path; repeatable.")
def json_cmd(file, sr, include):
    """Print FILE.dsp's interface as JSON, in the shape of `faust -json`."""
    import json
    _check_sr(sr)
    text = _api().read_source(file)
    click.echo(json.dumps(ui_description(text, file, sr, include), indent=2))


@main.command("train")
@click.argument("file", metavar="MODEL.dsp", type=click.Path(dir_okay=False))
@click.option("--target", "-t", "targets", multiple=True, metavar="FILE",
              help="Target audio (an audio file, .wav .flac .aiff .ogg .mp3 ..., or a .csv "
                   "or .npy file), one channel per output; repeat for a "
                   "batch of examples.")
@click.option("--input", "-i", "inputs", multiple=True, metavar="FILE",
              help="Input audio, one channel per input; one per --target, or one shared.")
@click.option("--params", "-p", default="auto", show_default=True, metavar="LABEL,...|auto",
              help="Sliders/nentries to learn (auto: the [diff:on] / df.param ones).")
@click.option("--loss", default="l2", show_default=True,
              type=click.Choice(["l1", "mae", "l2", "mse", "esr", "huber", "mrstft"]))
@click.option("--optimizer", default="adam", show_default=True,
              type=click.Choice(["sgd", "momentum", "rmsprop", "adam"]))
@click.option("--steps", type=int, help="Optimiser steps (also of each --per-file fit). "
              "Default: 300.")
@click.option("--dataset", metavar="DIR_OR_MANIFEST", help="Train over a dataset: a folder "
              "of NAME.in.wav/NAME.target.wav pairs (.csv/.npy too; NAME.target.* only for a "
              "program without inputs) or a CSV manifest input,target[,weight].")
@click.option("--batch", type=int, metavar="N", help="Segments per mini-batch (--dataset; "
              "default 8).")
@click.option("--val", type=float, metavar="F", help="Fraction of the pairs held out for "
              "validation (--dataset; default 0).")
@click.option("--epochs", type=int, metavar="N", help="Passes over the training segments "
              "(--dataset; default 10).")
@click.option("--patience", type=int, metavar="N", help="Stop after N epochs without a "
              "better validation loss; keep the best epoch's values (needs --val).")
@click.option("--segment", type=float, metavar="SECONDS", help="Segment length. --dataset: "
              "independent segments (default: the shortest pair), or with --carry-state the "
              "pairs in chunks; --target (and each fit of --per-file): train a long file "
              "in chunks, the state carried from segment to segment, one step per pass over "
              "the file.")
@click.option("--carry-state", is_flag=True, help="--dataset: train on whole pairs in "
              "consecutive --segment chunks, the program's state carried from one to the "
              "next (truncated backpropagation at segment boundaries in reverse mode).")
@click.option("--checkpoint", metavar="DIR", help="Write DIR/checkpoint.json after every "
              "epoch (parameters, optimiser state, epoch, step, RNG state).")
@click.option("--resume", is_flag=True, help="Continue from --checkpoint DIR.")
@click.option("--seed", type=int, help="Seed of the validation split and the shuffling "
              "(--dataset; default 0).")
@click.option("--skip-bad", is_flag=True, help="Leave bad pairs of the dataset out, with a "
              "warning naming the file, instead of refusing the dataset.")
@click.option("--per-file", is_flag=True, help="Fit the parameters separately for every pair "
              "of --dataset (from the same start), --steps steps each.")
@click.option("--results", metavar="TABLE.csv|TABLE.json", help="The --per-file table: a row "
              "per file (file, each parameter, loss, steps).")
@click.option("--scheduler", metavar="ADDRESS", help="Run --dataset training (data-parallel: "
              "each worker renders a share of every mini-batch) or the --per-file fits (a "
              "task per pair) on the Dask cluster of this scheduler (tcp://HOST:8786; needs "
              "faustdiff[distributed]).")
@click.option("--workers", type=int, metavar="N", help="As --scheduler, on a local Dask "
              "cluster of N worker processes started for the run.")
@click.option("--scheduler-timeout", type=float, metavar="SECONDS", help="Give up reaching "
              "--scheduler after SECONDS (default 10).")
@click.option("--lr", type=float, help="Learning rate (normalised units). Default: the "
              "optimiser's (adam/rmsprop 0.001, sgd/momentum 0.01).")
@click.option("--schedule", default="constant", show_default=True, metavar="S",
              help="Learning-rate schedule: constant, cosine or exp:R.")
@click.option("--set", "settings", multiple=True, metavar="LABEL=VALUE",
              help="Start a learned parameter from VALUE, or set another control; repeatable.")
@click.option("--scale", "scales", multiple=True, metavar="LABEL=lin|log",
              help="Normalisation of a parameter (default: its [scale:log] metadata).")
@click.option("--no-normalize", is_flag=True,
              help="Learn in the parameters' own units instead of [0, 1] over their range.")
@click.option("--parallel", type=click.Choice(["auto", "vectorized", "prange", "threads",
                                               "serial"]),
              default="auto", show_default=True, help="How a batch runs.")
@click.option("--grad-mode", type=click.Choice(["auto", "forward", "reverse"]),
              default="auto", show_default=True,
              help="How gradients are computed: forward mode (one tangent per parameter), "
                   "reverse mode (one backward pass), or auto (forward for 1-2 parameters).")
@click.option("--sr", type=int, metavar="RATE",
              help=f"Sample rate in Hz. Default: the target audio file's rate, else {DEFAULT_SR}.")
@click.option("--bundled-libs", is_flag=True, expose_value=False, callback=_force_bundled_libs,
              help="Use the bundled libraries even where Faust's are installed (by default "
                   "import(\"stdfaust.lib\") reads an installed Faust's, as the compiler "
                   "does; diff.lib is always ours).")
@click.option("-I", "include", multiple=True, metavar="DIR",
              help="Add a directory to the library search path; repeatable.")
@click.option("--plot", metavar="PNG", help="Save the loss and parameter trajectories "
              "(needs matplotlib: pip install 'faustdiff[plot]').")
@click.option("--export", "export", metavar="LEARNED.dsp",
              help="Write the model's source with each learned slider's default replaced by "
                   "its learned value (compiles with the Faust compiler: faust2juce, ...).")
@click.option("--preset", metavar="LEARNED.json",
              help="Write the learned values and their Faust UI paths as JSON.")
@click.option("--log", "log_path", metavar="RUN.jsonl",
              help="Write a JSON record per step (step, loss, parameters, elapsed seconds; "
                   "with --dataset also the epoch, and one record per epoch), for plotting; "
                   "written whole at the end of the run, or not at all.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def train_cmd(file, targets, inputs, params, loss, optimizer, steps, dataset, batch, val,
              epochs, patience, segment, carry_state, checkpoint, resume, seed, skip_bad,
              per_file, results, scheduler, workers, scheduler_timeout,
              lr, schedule, settings, scales, no_normalize, parallel, grad_mode, sr, include,
              plot, export, preset, log_path, quiet):
    """Learn parameters of MODEL.dsp so that its output matches the target audio (--target,
    or every pair of --dataset)."""
    from .learn import train as T
    _check_train_options(targets, inputs, steps, dataset, batch, val, epochs, patience,
                         segment, checkpoint, resume, seed, skip_bad, per_file, results, plot,
                         export, preset, carry_state)
    _check_dask_options(dataset, scheduler, workers, scheduler_timeout)
    if log_path is not None:
        if per_file:
            raise FaustError("--log records one run: not with --per-file")
        T.check_log_path(log_path)
    if steps is None:
        steps = 300
    if steps < 0:
        raise FaustError(f"--steps must be 0 or more, got {steps}")
    if sr is not None:
        _check_sr(sr)
    values = _parse_settings(settings)
    scale_map = {}
    for sc in scales:
        label, eq, kind = sc.rpartition("=")
        if not eq or kind not in ("lin", "log"):
            raise FaustError(f"--scale '{sc}': expected LABEL=lin or LABEL=log")
        scale_map[label.strip()] = kind
    if plot is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise FaustError("--plot needs matplotlib: pip install 'faustdiff[plot]' "
                             "(or pip install matplotlib)") from None
    ds = None
    if dataset is not None:
        # (--per-file cuts each pair's fit itself: the pairs stay whole)
        ds = _open_dataset(dataset, sr, None if per_file else segment, val, batch, seed,
                           skip_bad, carry_state)
        data_t = data_i = None
        sr = sr or ds.sample_rate or DEFAULT_SR
    else:
        data_t, file_sr = T._batch(list(targets), "target", None)
        data_i = T._batch(list(inputs), "input", None)[0] if inputs else None
        sr = sr or file_sr or DEFAULT_SR
    try:
        api = _api()
        text = api.read_source(file)
        mode = T.choose_grad_mode(text, file, params, grad_mode, sr, tuple(include))
        more = {"mode": "reverse"} if mode == "reverse" else {}
        prog = api.compile_file(file, sample_rate=sr, include=tuple(include), wrt=params,
                                **more)
        # how it was compiled, for Dask workers (api.compile_file -> compile_program)
        recipe = {"text": text, "filename": file, "sample_rate": sr,
                  "include": tuple(include), "backend": None, "wrt": params,
                  "mode": more.get("mode"), "input_grads": True}
    except FaustError as e:
        if "declares no parameter" not in str(e):
            raise
        raise FaustError(f"'{file}' declares no parameter ([diff:on] or df.param): name the "
                         "sliders to learn with --params LABEL,...") from None
    if export is not None:   # a model that cannot be exported fails before training
        from .learn.export import export_source
        export_source(_api().read_source(file), file, {lab: 0.0 for lab in prog.wrt})
    learned = set(prog.wrt)
    init = {}
    for label, value in values:
        if label in learned:
            init[label] = value
        else:
            prog.set_param(label, value)
    trainer = T.Trainer(prog, loss=loss, optimizer=optimizer, lr=lr, init=init,
                        scales=scale_map, normalize=not no_normalize, parallel=parallel,
                        schedule=None if schedule == "constant" else schedule,
                        recipe=recipe)
    if ds is not None:
        _require_dataset(ds, prog, quiet)
    where = _where(scheduler, workers)
    if ds is not None:
        with _executor(scheduler, workers, scheduler_timeout) as executor:
            if per_file:
                _per_file(file, trainer, ds, steps, results, sr, loss, optimizer, executor,
                          where, quiet, segment)
                return
            log = None if quiet else (lambda line: click.echo(line, err=True))
            with np.errstate(all="ignore"):
                result = trainer.fit(ds, epochs=10 if epochs is None else epochs,
                                     patience=patience, checkpoint=checkpoint, resume=resume,
                                     progress=not quiet, log=log, log_path=log_path,
                                     executor=executor)
    else:
        with np.errstate(all="ignore"):
            result = trainer.fit(data_i, data_t, steps=steps, progress=not quiet,
                                 log_path=log_path, segment=segment)
    if ds is not None:
        click.echo(f"{file}: dataset {dataset}: {len(ds.train)} training, {len(ds.val)} "
                   f"validation pair(s), segments of {ds.segment} samples"
                   f"{' (state carried)' if ds.carry else ''} at {sr} Hz, batch "
                   f"{ds.batch}, loss {loss}, {optimizer}, {trainer.grad_mode} mode, "
                   f"{len(result.history)} epoch(s), {result.steps} steps in "
                   f"{result.seconds:.2f} s{where}")
        what = "validation loss" if ds.val else "training loss"
        click.echo(f"  {what}: {result.final_loss:.6g}")
    else:
        chunks = "" if segment is None else \
            f" in segments of {trainer.segment_samples(segment)} (state carried)"
        click.echo(f"{file}: {len(data_t)} example(s), {data_t[0].shape[1]} samples{chunks} "
                   f"at {sr} Hz, loss {loss}, {optimizer}, {trainer.grad_mode} mode, "
                   f"{result.steps} steps in {result.seconds:.2f} s")
        click.echo(f"  loss: "
                   f"{result.losses[0] if len(result.losses) else result.final_loss:.6g}"
                   f" -> {result.final_loss:.6g}")
    for label, value in result.params.items():
        click.echo(f"  {label} = {value:.9g}")
    if plot is not None:
        result.plot(plot, title=os.path.basename(file))
        click.echo(f"  plot: {plot}")
    if export is not None:
        from .learn.export import write_export
        write_export(export, _api().read_source(file), file, result.params)
        click.echo(f"  export: {export}")
    if preset is not None:
        from .learn.export import write_preset
        write_preset(preset, result.params, result.paths, file)
        click.echo(f"  preset: {preset}")
    if log_path is not None:
        click.echo(f"  log: {log_path}")


def _check_train_options(targets, inputs, steps, dataset, batch, val, epochs, patience,
                         segment, checkpoint, resume, seed, skip_bad, per_file, results, plot,
                         export, preset, carry_state=False) -> None:
    """The combinations of `train`'s options that make no sense: one-line errors."""
    if segment is not None and not (segment > 0 and math.isfinite(segment)):
        raise FaustError(f"--segment must be a positive number of seconds, got {segment}")
    given = {"--batch": batch is not None, "--val": val is not None,
             "--epochs": epochs is not None, "--patience": patience is not None,
             "--carry-state": carry_state, "--checkpoint": checkpoint is not None,
             "--resume": resume, "--seed": seed is not None, "--skip-bad": skip_bad,
             "--per-file": per_file, "--results": results is not None}
    if dataset is None:
        if not targets:
            raise FaustError("train: give --target FILE (or --dataset DIR_OR_MANIFEST)")
        used = [k for k, v in given.items() if v]
        if used:
            raise FaustError(f"{'/'.join(used)}: only with --dataset DIR_OR_MANIFEST")
        return
    if targets or inputs:
        raise FaustError("--dataset takes the pairs from DIR_OR_MANIFEST: drop "
                         f"{'--target' if targets else '--input'}")
    if per_file:
        if results is None:
            raise FaustError("--per-file needs --results TABLE.csv|TABLE.json")
        from .learn.dataset import check_table_path
        check_table_path(results)
        drop = [k for k in ("--batch", "--val", "--epochs", "--patience", "--checkpoint",
                            "--resume", "--carry-state") if given[k]]
        drop += [k for k, v in (("--plot", plot), ("--export", export), ("--preset", preset))
                 if v is not None]
        if drop:
            raise FaustError(f"--per-file fits every pair for --steps steps: drop "
                             f"{'/'.join(drop)}")
        return
    if results is not None:
        raise FaustError("--results is the table of --per-file: add --per-file")
    if steps is not None:
        raise FaustError("--steps: training over --dataset takes one step per mini-batch; "
                         "give --epochs N (or add --per-file)")
    if resume and checkpoint is None:
        raise FaustError("--resume needs --checkpoint DIR")
    if patience is not None and not val:
        raise FaustError("--patience stops on the validation loss: add --val F")
    if epochs is not None and epochs < 0:
        raise FaustError(f"--epochs must be 0 or more, got {epochs}")


def _check_dask_options(dataset, scheduler, workers, timeout) -> None:
    """--scheduler/--workers/--scheduler-timeout: one-line errors for what makes no sense,
    and for a missing Dask (the extra named)."""
    used = [k for k, v in (("--scheduler", scheduler), ("--workers", workers),
                           ("--scheduler-timeout", timeout)) if v is not None]
    if not used:
        return
    if dataset is None:
        raise FaustError(f"{'/'.join(used)}: only with --dataset DIR_OR_MANIFEST")
    if scheduler is not None and workers is not None:
        raise FaustError("--scheduler and --workers: give one (a running scheduler, or N "
                         "local workers)")
    if timeout is not None and scheduler is None:
        raise FaustError("--scheduler-timeout: only with --scheduler ADDRESS")
    if timeout is not None and not (timeout > 0 and math.isfinite(timeout)):
        raise FaustError(f"--scheduler-timeout must be a positive number of seconds, got "
                         f"{timeout}")
    if workers is not None and workers < 1:
        raise FaustError(f"--workers must be 1 or more, got {workers}")
    try:
        import distributed  # noqa: F401
    except ImportError:
        from .learn.distributed import NEED_DASK
        raise FaustError(NEED_DASK) from None


@contextlib.contextmanager
def _executor(scheduler, workers, timeout):
    """The DaskExecutor of --scheduler/--workers for the `with` block, or None."""
    if scheduler is None and workers is None:
        yield None
        return
    from .learn import distributed as D
    with D.dask_client(scheduler, workers, D.DEFAULT_TIMEOUT if timeout is None
                       else timeout) as client:
        yield D.DaskExecutor(client)


def _where(scheduler, workers) -> str:
    if workers is not None:
        return f" on {workers} local Dask worker(s)"
    return "" if scheduler is None else f" on the Dask cluster at {scheduler}"


def _open_dataset(source, sr, segment, val, batch, seed, skip_bad, carry):
    """The Dataset of --dataset, its skipped pairs reported on standard error."""
    import warnings
    from .learn.dataset import Dataset
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = Dataset(source, sr=sr, segment=segment, val=0.0 if val is None else val,
                     batch=8 if batch is None else batch, seed=0 if seed is None else seed,
                     skip_bad=skip_bad, carry=carry)
    for msg in ds.skipped:
        click.echo(f"faustdiff: warning: skipped: {msg}", err=True)
    return ds


def _require_dataset(ds, prog, quiet) -> None:
    import warnings
    before = len(ds.skipped)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.require(prog.num_inputs, prog.num_outputs)
    for msg in ds.skipped[before:]:
        click.echo(f"faustdiff: warning: skipped: {msg}", err=True)


def _per_file(file, trainer, ds, steps, results, sr, loss, optimizer, executor, where,
              quiet, segment=None) -> None:
    """--per-file: one fit per pair (in segments of `segment` seconds, the state carried,
    when given), the table written whole at the end."""
    import time
    from .learn.dataset import write_table
    start = time.perf_counter()
    log = None if quiet else (lambda line: click.echo(line, err=True))
    with np.errstate(all="ignore"):
        rows = trainer.fit_each(ds, steps=steps, log=log, executor=executor,
                                segment=segment)
    write_table(results, rows, trainer.labels)
    click.echo(f"{file}: dataset {ds.source}: {len(rows)} pair(s) fitted separately at {sr} "
               f"Hz, loss {loss}, {optimizer}, {trainer.grad_mode} mode, {steps} steps each"
               f"{'' if segment is None else f' (segments of {segment:g} s)'}, "
               f"in {time.perf_counter() - start:.2f} s{where}")
    click.echo(f"  results: {results}")


if __name__ == "__main__":  # python -m faustdiff.cli ...
    main()
