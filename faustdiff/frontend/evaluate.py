"""Compile-time evaluation: syntax boxes -> a normal-form box for `process`.

Faust's evaluation model (shared/docs/faust-language.md §5): lexically scoped, lazy, mutually
recursive definitions; closures; currying and Faust's partial-application rule; multi-rule
definitions and `case` with first-match-wins pattern matching; compile-time iterations;
environments and libraries. Numbers are folded as boxes are built, so `(2,3):+` becomes
`Int(5)` and patterns, iteration counts and widget arguments see plain numbers.

Invariants:
* `ev(expr, env)` returns a *value*: a normal-form `Box`, a `Closure`, a `CaseFn` or an
  `EnvValue`. `to_box(value)` turns any value usable as a block diagram into a normal-form box
  (functions become `Symbolic` abstractions whose parameters are their first inputs).
* Every error raised here is a `FaustError` located at the expression it is about.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

from . import boxes as B
from .boxshow import show
from .boxes import (Box, Int, Real, Wire, Cut, Prim, Seq, Par, Split, Merge, Rec, Route, Waveform,
                    UI, Bargraph, Group, Slot, Symbolic, Failed, FFun, FConst, FVar)
from ..errors import FaustError, FaustEvalError, Span
from .builtins import BUILTINS, Builtin
from ..core.primitives import PRIMITIVES, fold as _fold_number


def fold_box(name: str, values: list, all_int: bool):
    """`primitives.fold` as a number box (`Int`/`Real`), None when it does not fold."""
    r = _fold_number(name, values, all_int)
    if r is not None and name == "/" and all_int and float(r).is_integer():
        r = int(r)   # as in Faust: an exact quotient of ints is an int (6/2 matches `f(3)`)
    return None if r is None else B.number(r)


# Depth of nested function applications after which evaluation is declared endless. Legitimate
# compile-time recursion (pattern-matching over lists, `fact(n)`) stays far below it.
MAX_APPLY_DEPTH = 4000
# Iteration counts above this are refused instead of exhausting memory.
MAX_ITERATIONS = 100_000
# ... and so are programs whose iterations add up to more than this (nested `par`s).
MAX_TOTAL_ITERATIONS = 1_000_000
# Function applications after which evaluation is declared too long (an exponential
# recursion such as f(n) = f(n-1) + f(n-1) would otherwise never end; an.fft(1024) needs 63,000).
MAX_APPLICATIONS = 1_000_000

# id(box) -> (box, source text) for the boxes made by library calls of the main file, so that
# later errors inside them can name the call as written (see propagate).
CALL_TEXT: dict = {}

EMPTY = Route(0, 0, ())  # the 0 -> 0 box (`par(i, 0, e)`)


# ---------------------------------------------------------------- values

@dataclass(eq=False)
class Closure:
    """A lambda with its defining environment and the arguments bound so far."""
    params: tuple[str, ...]
    body: Box
    env: "Env"
    bound: tuple = ()
    name: str = "lambda"
    span: Optional[Span] = None


@dataclass(eq=False)
class CaseFn:
    """A pattern-matching function and the arguments collected so far."""
    rules: tuple[B.Rule, ...]
    env: "Env"
    args: tuple = ()
    name: str = "case"
    span: Optional[Span] = None

    @property
    def nparams(self) -> int:
        return len(self.rules[0].patterns)


@dataclass(eq=False)
class EnvValue:
    """A first-class environment (`environment {}`, `library("f")`)."""
    env: "Env"


Value = Union[Box, Closure, CaseFn, EnvValue, Builtin]


class Binding:
    """A lazily evaluated definition: `expr` evaluated in `env` on first use, then cached."""
    __slots__ = ("name", "expr", "env", "value", "busy")

    def __init__(self, name: str, expr: Optional[Box], env: Optional["Env"], value=None):
        self.name, self.expr, self.env, self.value, self.busy = name, expr, env, value, False


class Env:
    """A scope: name -> Binding, with a lexical parent."""

    def __init__(self, parent: Optional["Env"] = None):
        self.parent = parent
        self.table: dict[str, Binding] = {}

    def lookup(self, name: str) -> Optional[Binding]:
        e = self
        while e is not None:
            b = e.table.get(name)
            if b is not None:
                return b
            e = e.parent
        return None

    def bind_value(self, name: str, value) -> None:
        self.table[name] = Binding(name, None, None, value)


# ---------------------------------------------------------------- library search path

# The folders where the Faust compiler finds its libraries when installed (after
# $FAUST_LIB_PATH), in its order.
INSTALLED_LIB_DIRS = ("/usr/local/share/faust", "/usr/share/faust")
# Libraries that are always ours, wherever Faust's are installed.
OWN_LIBRARIES = ("diff.lib",)
# FAUSTDIFF_LIBS=bundled (the CLI's --bundled-libs) puts the bundled libraries before an
# installed Faust's.
LIBS_ENV = "FAUSTDIFF_LIBS"


def bundled_only() -> bool:
    """True when the bundled libraries are forced (`FAUSTDIFF_LIBS=bundled`)."""
    return os.environ.get(LIBS_ENV, "") == "bundled"


def installed_lib_dirs() -> list[str]:
    """The installed Faust library folders that exist, in the compiler's search order."""
    return [d for d in INSTALLED_LIB_DIRS if os.path.isdir(d)]


class Resolver:
    """Finds and parses Faust files: the importing file's folder, `-I` folders,
    `$FAUST_LIB_PATH`, then the libraries bundled with faustdiff. Parsed files are cached."""

    def __init__(self, include: tuple = (), base_dir: Optional[str] = None):
        self.include = [str(p) for p in include]
        self.base_dir = base_dir
        env_path = os.environ.get("FAUST_LIB_PATH", "")
        self.env_dirs = [p for p in env_path.split(os.pathsep) if p]
        self.bundled = str(Path(__file__).parents[1] / "lib")
        self.installed = installed_lib_dirs()
        self.prefer_installed = not bundled_only()
        self._parsed: dict[str, B.Program] = {}

    def files(self) -> list[str]:
        """Every file parsed through this resolver (the libraries a compile read)."""
        return list(self._parsed)

    def search_dirs(self, from_dir: Optional[str], filename: str = "") -> list[str]:
        """Where a library is looked for, in order: the importing file's folder, the main
        file's, `-I` folders, `$FAUST_LIB_PATH`, then an installed Faust's folders
        (/usr/local/share/faust, /usr/share/faust) and the bundled libraries: the installed
        ones first, as the Faust compiler finds them, unless the bundled ones are forced
        (`bundled_only`) or the file is one of ours (`OWN_LIBRARIES`); the others then
        still provide the files we do not bundle (e.g. the old `music.lib`)."""
        dirs = [d for d in (from_dir, self.base_dir) if d]
        if self.prefer_installed and os.path.basename(filename) not in OWN_LIBRARIES:
            last = self.installed + [self.bundled]
        else:
            last = [self.bundled] + self.installed
        every = dirs + self.include + self.env_dirs + last
        return list(dict.fromkeys(every))   # each folder once, in order

    def find(self, filename: str, from_dir: Optional[str]) -> Optional[str]:
        if os.path.isabs(filename) and os.path.isfile(filename):
            return filename
        for d in self.search_dirs(from_dir, filename):
            p = os.path.join(d, filename)
            if os.path.isfile(p):
                return os.path.abspath(p)
        # `library("/path/to/diff.lib")` as in the seed: fall back on the name alone.
        base = os.path.basename(filename)
        if base != filename:
            return self.find(base, from_dir)
        return None

    def load(self, filename: str, from_dir: Optional[str], span: Optional[Span]) -> B.Program:
        path = self.find(filename, from_dir)
        if path is None:
            raise FaustEvalError(f'library file "{filename}" not found (searched: '
                                 f'{", ".join(self.search_dirs(from_dir, filename))})', span)
        prog = self._parsed.get(path)
        if prog is None:
            from .parse import parse_file
            prog = parse_file(path)
            self._parsed[path] = prog
        return prog


def library_set(filename: str, include: tuple = ()) -> str:
    """Which libraries `import("stdfaust.lib")` in `filename` reads: "bundled", or the
    folder it comes from (an installed Faust's, -I, $FAUST_LIB_PATH, the program's own)."""
    base = os.path.dirname(os.path.abspath(filename))
    r = Resolver(include, base)
    path = r.find("stdfaust.lib", base)
    if path is None or os.path.dirname(path) == os.path.abspath(r.bundled):
        return "bundled"
    return os.path.dirname(path)


# ---------------------------------------------------------------- the evaluator

class Evaluator:
    def __init__(self, resolver: Resolver):
        self.resolver = resolver
        self.slot_ids = itertools.count()
        self.depth = 0
        self.pattern_cache: dict = {}   # (id(rule), id(env)) -> (rule, env, patterns)
        self.iterations = 0   # iteration steps so far (MAX_TOTAL_ITERATIONS)
        self.applications = 0   # function applications so far (MAX_APPLICATIONS)
        self.main_file: Optional[str] = None   # errors in libraries are shown at its calls
        self.libraries: dict[str, EnvValue] = {}
        self.loading: list[str] = []
        # The root scope, parent of every file's and library's scope: the builtins.
        self.root = Env(None)
        for name, fn in BUILTINS.items():
            self.root.bind_value(name, fn)

    # ---------------------------------------------------------- scopes and definitions

    def file_env(self, program: B.Program, parent: Optional[Env] = None) -> Env:
        env = Env(parent if parent is not None else self.root)
        self.define(env, program.statements, os.path.dirname(os.path.abspath(program.filename)))
        return env

    def define(self, env: Env, statements, from_dir: Optional[str], seen: Optional[set] = None) -> None:
        """Add statements (definitions and imports) to `env`. Several definitions of one name
        in one file form a single pattern-matching function; imports merge another file's
        definitions into the same scope (a local definition wins over an imported one)."""
        seen = set() if seen is None else seen
        groups: dict[str, list[B.Def]] = {}
        for st in statements:
            if isinstance(st, B.Def):
                groups.setdefault(st.name, []).append(st)
        for name, defs in groups.items():
            env.table[name] = Binding(name, self.group_defs(name, defs), env)
        for st in statements:
            if isinstance(st, B.Import):
                self.do_import(env, st, from_dir, seen)

    def do_import(self, env: Env, st: B.Import, from_dir, seen: set) -> None:
        path = self.resolver.find(st.filename, from_dir)
        if path is None:
            self.resolver.load(st.filename, from_dir, st.span)  # raises "not found"
        if path in seen:
            return
        if path in self.loading:
            chain = " -> ".join(os.path.basename(p) for p in self.loading + [path])
            raise FaustEvalError(f"cyclic import: {chain}", st.span)
        seen.add(path)
        prog = self.resolver.load(st.filename, from_dir, st.span)
        sub = Env(None)
        self.loading.append(path)
        try:
            self.define(sub, prog.statements, os.path.dirname(path), seen)
        finally:
            self.loading.pop()
        for name, binding in sub.table.items():
            if name not in env.table:
                binding.env = env if binding.env is sub else binding.env
                env.table[name] = binding

    @staticmethod
    def group_defs(name: str, defs: list[B.Def]) -> Box:
        if len(defs) == 1 and defs[0].params is None:
            return defs[0].body
        if any(d.params is None for d in defs):
            d = defs[1] if defs[0].params is None else defs[0]
            raise FaustEvalError(f"multiple definitions of symbol '{name}'", d.span)
        n = len(defs[0].params)
        for d in defs[1:]:
            if len(d.params) != n:
                raise FaustEvalError(
                    f"in the definition of '{name}': inconsistent number of parameters in "
                    f"pattern-matching rules ({n} and {len(d.params)})", d.span)
        d = defs[0]
        simple = all(isinstance(p, B.Ident) for p in d.params)
        if len(defs) == 1 and simple and len({p.name for p in d.params}) == n:
            return B.Lambda(tuple(p.name for p in d.params), d.body, span=d.span)
        return B.Case(tuple(B.Rule(x.params, x.body, span=x.span) for x in defs), span=d.span)

    def force(self, binding: Binding, span: Optional[Span]):
        if binding.value is not None:
            return binding.value
        if binding.busy:
            raise FaustEvalError(f"endless evaluation cycle: the definition of '{binding.name}' "
                                 f"depends on itself", span)
        binding.busy = True
        try:
            v = self.ev(binding.expr, binding.env)
            if isinstance(v, Closure) and v.name == "lambda":
                v.name = binding.name
            elif isinstance(v, CaseFn) and v.name == "case":
                v.name = binding.name
        finally:
            binding.busy = False
        binding.value = v
        return v

    # ---------------------------------------------------------- evaluation

    def ev(self, e: Box, env: Env) -> Value:
        method = getattr(self, "ev_" + type(e).__name__, None)
        if method is None:
            return e  # already normal form (numbers, wires, primitives, foreign functions)
        return method(e, env)

    def ev_Ident(self, e: B.Ident, env: Env):
        b = env.lookup(e.name)
        if b is None:
            raise FaustEvalError(f"undefined symbol: {e.name}", e.span)
        return self.force(b, e.span)

    def _compose(self, cls, e, env):
        a = self.to_box(self.ev(e.a, env), e.a.span)
        b = self.to_box(self.ev(e.b, env), e.b.span)
        return simplify(cls(a, b, span=e.span))

    def ev_Seq(self, e, env):
        return self._compose(Seq, e, env)

    def ev_Par(self, e, env):
        return self._compose(Par, e, env)

    def ev_Split(self, e, env):
        return self._compose(Split, e, env)

    def ev_Merge(self, e, env):
        return self._compose(Merge, e, env)

    def ev_Rec(self, e, env):
        return self._compose(Rec, e, env)

    def ev_Lambda(self, e: B.Lambda, env: Env):
        return Closure(e.params, e.body, env, span=e.span)

    def ev_Case(self, e: B.Case, env: Env):
        return CaseFn(e.rules, env, span=e.span)

    def ev_With(self, e: B.With, env: Env):
        inner = Env(env)
        self.define(inner, e.defs, None)
        return self.ev(e.body, inner)

    def ev_Letrec(self, e: B.Letrec, env: Env):
        # `body letrec { 'x = e1; 'y = e2; }` is
        #   BODY = \(x,y).(e1,e2) ~ (_,_);  x = BODY : _,!;  y = BODY : !,_;
        # so inside e1, e2 the names denote the previous sample's values.
        names = tuple(d.name for d in e.recdefs)
        inner = Env(env)
        self.define(inner, e.defs, None)
        exprs = [d.body for d in e.recdefs]
        tup = exprs[-1]
        for x in reversed(exprs[:-1]):
            tup = Par(x, tup, span=x.span)
        lam = Closure(names, tup, inner, span=e.span)
        group = simplify(Rec(self.to_box(lam, e.span), par_of([Wire()] * len(names)), span=e.span))
        for i, n in enumerate(names):
            sel = par_of([Wire() if j == i else Cut() for j in range(len(names))])
            inner.bind_value(n, Seq(group, sel, span=e.recdefs[i].span))
        return self.ev(e.body, inner)

    def ev_Environment(self, e: B.Environment, env: Env):
        inner = Env(env)
        self.define(inner, e.defs, None)
        return EnvValue(inner)

    def ev_Access(self, e: B.Access, env: Env):
        target = e.env
        if isinstance(target, B.Component):
            v = self.library(target.filename, target.span)
        else:
            v = self.ev(target, env)
        if not isinstance(v, EnvValue):
            raise FaustEvalError(f"'{show(target)}' is not an environment, so '.{e.name}' "
                                 f"cannot be accessed", e.span)
        b = v.env.lookup(e.name)
        if b is None:
            raise FaustEvalError(f"undefined symbol: {e.name} (in {show(target)})", e.span)
        return self.force(b, e.span)

    def ev_Modify(self, e: B.Modify, env: Env):
        v = self.ev(e.env, env)
        if not isinstance(v, EnvValue):
            raise FaustEvalError(f"'{show(e.env)}' is not an environment", e.span)
        # A copy of the environment whose other definitions see the replacements.
        copy = Env(v.env.parent)
        for name, b in v.env.table.items():
            if b.expr is not None and b.env is v.env:
                copy.table[name] = Binding(name, b.expr, copy)
            else:
                copy.table[name] = b
        caller = Env(env)
        self.define(caller, e.defs, None)
        for name, b in caller.table.items():
            copy.table[name] = Binding(name, b.expr, env)
        return EnvValue(copy)

    def ev_Library(self, e: B.Library, env: Env):
        return self.library(e.filename, e.span)

    def library(self, filename: str, span) -> EnvValue:
        path = self.resolver.find(filename, self.resolver.base_dir)
        if path is None:
            self.resolver.load(filename, None, span)  # raises "not found"
        v = self.libraries.get(path)
        if v is None:
            if path in self.loading:
                raise FaustEvalError(f"cyclic library: {os.path.basename(path)}", span)
            prog = self.resolver.load(filename, None, span)
            env = Env(self.root)
            self.loading.append(path)
            try:
                self.define(env, prog.statements, os.path.dirname(path), {path})
            finally:
                self.loading.pop()
            v = self.libraries[path] = EnvValue(env)
        return v

    def ev_Component(self, e: B.Component, env: Env):
        lib = self.library(e.filename, e.span)
        b = lib.env.lookup("process")
        if b is None:
            raise FaustEvalError(f'component "{e.filename}" has no process', e.span)
        return self.force(b, e.span)

    # ---------------------------------------------------------- application

    def ev_Apply(self, e: B.Apply, env: Env):
        fn = self.ev(e.fn, env)
        args = [self.ev(a, env) for a in e.args]
        try:
            v = self.apply(fn, args, e)
        except FaustError as err:
            raise self.at_user_site(err, e) from None
        sp = e.span
        if (isinstance(v, Box) and sp is not None and sp.file == self.main_file
                and v.span is not None and v.span.file != sp.file):
            v = dataclasses.replace(v, span=sp)   # a library's box, made here: located here
            CALL_TEXT[id(v)] = (v, show(e))
        return v

    def at_user_site(self, err: FaustError, site: Box) -> FaustError:
        """An error raised in library code, located at the innermost call of the main file
        that led to it (the library position is kept in the message's last line)."""
        sp = site.span
        if (getattr(err, "at_site", False) or sp is None or sp.file != self.main_file
                or (err.span is not None and err.span.file == self.main_file)):
            return err
        expr = show(site) + (f"\n  library code at {err.span}" if err.span else "")
        new = type(err)(err.message, sp, expr)
        new.at_site = True
        return new

    def apply(self, fn: Value, args: list, site: Box) -> Value:
        while args:
            if isinstance(fn, Closure):
                k = len(fn.params) - len(fn.bound)
                take, args = args[:k], args[k:]
                fn = Closure(fn.params, fn.body, fn.env, fn.bound + tuple(take), fn.name, fn.span)
                if len(fn.bound) == len(fn.params):
                    fn = self.call_closure(fn, site)
            elif isinstance(fn, CaseFn):
                k = fn.nparams - len(fn.args)
                take, args = args[:k], args[k:]
                fn = CaseFn(fn.rules, fn.env, fn.args + tuple(take), fn.name, fn.span)
                if len(fn.args) == fn.nparams:
                    fn = self.call_case(fn, site)
            elif isinstance(fn, Builtin):
                k = fn.nparams - len(fn.args)
                take, args = args[:k], args[k:]
                fn = Builtin(fn.name, fn.nparams, fn.fn, fn.args + tuple(take), fn.span)
                if len(fn.args) == fn.nparams:
                    fn = fn.fn(self, list(fn.args), site)
            elif isinstance(fn, EnvValue):
                raise FaustEvalError("an environment cannot be applied to arguments", site.span)
            elif isinstance(fn, Symbolic) and fn.fn is not None:
                fn = fn.fn   # a function kept in a composition: apply the function itself
            else:
                return self.apply_box(fn, args, site)
        return fn

    def _enter(self, name: str, site: Box):
        self.depth += 1
        self.applications += 1
        if self.applications > MAX_APPLICATIONS:
            self.depth = 0
            raise FaustEvalError(
                f"the evaluation takes more than {MAX_APPLICATIONS} function applications "
                f"(last: '{name}'); is a recursive definition exponential (e.g. f(n-1) used "
                f"twice)? bind a repeated call to a name with `with`", site.span, show(site))
        if self.depth > MAX_APPLY_DEPTH:
            self.depth = 0
            raise FaustEvalError(
                f"endless evaluation cycle: more than {MAX_APPLY_DEPTH} nested applications "
                f"(last: '{name}'); does a recursive definition never reach its base case?",
                site.span, show(site))

    def call_closure(self, fn: Closure, site: Box):
        self._enter(fn.name, site)
        try:
            inner = Env(fn.env)
            for p, v in zip(fn.params, fn.bound):
                inner.bind_value(p, v)
            return self.ev(fn.body, inner)
        finally:
            self.depth -= 1

    def call_case(self, fn: CaseFn, site: Box):
        self._enter(fn.name, site)
        try:
            for rule in fn.rules:
                bindings: dict = {}
                patterns = self.rule_patterns(rule, fn.env)
                if all(self.match(p, a, bindings) for p, a in zip(patterns, fn.args)):
                    inner = Env(fn.env)
                    for k, v in bindings.items():
                        inner.bind_value(k, v)
                    return self.ev(rule.body, inner)
            shown = ", ".join(show_value(a) for a in fn.args)
            raise FaustEvalError(f"pattern matching failed: no rule of '{fn.name}' matches "
                                 f"argument list ({shown})", site.span)
        finally:
            self.depth -= 1

    def rule_patterns(self, rule: B.Rule, env: Env) -> tuple:
        """The evaluated patterns of `rule` in its definition environment (cached per
        rule and environment: a pattern is evaluated once, as Faust builds its matcher)."""
        key = (id(rule), id(env))
        hit = self.pattern_cache.get(key)
        if hit is None:
            pats = tuple(simplify_pattern(self.to_box(self.ev(as_pattern(p), env), p.span))
                         for p in rule.patterns)
            hit = self.pattern_cache[key] = (rule, env, pats)   # keeps the ids alive
        return hit[2]

    def match(self, pat: Box, value: Value, bindings: dict) -> bool:
        """First-order matching of an evaluated pattern (see `rule_patterns`) against an
        evaluated argument, as Faust's pattern matcher does: a `PatVar` matches anything
        (a repeated one requires equal arguments); a number matches the argument's value
        when the argument is a 0 -> 1 constant (of the same type: `1` is not `1.0`);
        compositions and groups match part by part; anything else matches an equal box."""
        if isinstance(pat, B.PatVar):
            if pat.name in bindings:
                return same_value(bindings[pat.name], value)
            bindings[pat.name] = value
            return True
        if isinstance(value, (Closure, CaseFn, EnvValue, Builtin)):
            return False
        if isinstance(pat, (Int, Real)):
            v = numeric_value(value)
            return v is not None and type(v) is type(pat) and v.value == pat.value
        if isinstance(pat, (Seq, Par, Split, Merge, Rec)):
            return (type(value) is type(pat) and self.match(pat.a, value.a, bindings)
                    and self.match(pat.b, value.b, bindings))
        if isinstance(pat, Group):
            return (isinstance(value, Group) and value.kind == pat.kind
                    and value.label == pat.label and self.match(pat.body, value.body, bindings))
        return pat == value

    def apply_box(self, fn: Box, args: list, site: Box) -> Box:
        """`f(a1..ak)` for a block diagram f: the arguments fill f's first inputs, wires the
        rest; one single-output argument to an infix primitive fills its SECOND input."""
        from .arity import arity
        argboxes = [self.to_box(a, site.span) for a in args]
        ins, _ = arity(fn)
        outs = [arity(a)[1] for a in argboxes]
        if (isinstance(fn, Prim) and PRIMITIVES[fn.name].infix and len(argboxes) == 1
                and outs[0] == 1):
            return simplify(Seq(Par(Wire(), argboxes[0]), fn, span=site.span))
        total = sum(outs)
        if total > ins:
            raise FaustEvalError(f"too many arguments: {total}, instead of {ins}, in "
                                 f"{show(site)}", site.span)
        return simplify(Seq(par_of(argboxes + [Wire()] * (ins - total)), fn, span=site.span))

    # ---------------------------------------------------------- values as boxes

    def to_box(self, v: Value, span: Optional[Span]) -> Box:
        if isinstance(v, Box):
            return v
        if isinstance(v, (Closure, CaseFn)):
            slot = Slot(next(self.slot_ids))
            try:
                body = self.to_box(
                    self.apply(v, [slot], B.Ident(getattr(v, "name", "?"), span=span)), span)
            except FaustEvalError as e:
                if "pattern matching failed" not in str(e):
                    raise
                body = Failed(e, span=span)   # raised if used as a box, not if applied
            return Symbolic(slot, body, fn=v, span=span)
        if isinstance(v, Builtin):
            raise FaustEvalError(f"the builtin '{v.name}' needs {v.nparams} arguments", span)
        raise FaustEvalError("an environment cannot be used as a block diagram", span)

    def const(self, e: Box, env: Env, what: str) -> list:
        """The constant outputs of an expression, as Int/Real boxes (compile-time values)."""
        box = self.to_box(self.ev(e, env), e.span)
        vals = const_outputs(box)
        if vals is None:
            raise FaustEvalError(f"{what} must be a compile-time constant, got: {show(box)}",
                                 e.span)
        return vals

    def const_number(self, e: Box, env: Env, what: str):
        vals = self.const(e, env, what)
        if len(vals) != 1:
            raise FaustEvalError(f"{what} must be a single number, got {len(vals)} values",
                                 e.span)
        return vals[0]

    # ---------------------------------------------------------- special forms

    def ev_Iter(self, e: B.Iter, env: Env):
        n = self.const_number(e.count, env, f"the number of iterations of {e.kind}")
        if not isinstance(n, Int):
            if not math.isfinite(n.value) or float(n.value) != int(n.value):
                raise FaustEvalError(f"the number of iterations of {e.kind} must be an "
                                     f"integer, got {n.value}", e.count.span)
            n = Int(int(n.value))
        count = n.value
        if count < 0:
            raise FaustEvalError(f"the number of iterations of {e.kind} must be 0 or more, "
                                 f"got {count}", e.count.span)
        if count > MAX_ITERATIONS:
            raise FaustEvalError(f"{e.kind} with {count} iterations exceeds the limit of "
                                 f"{MAX_ITERATIONS}", e.count.span)
        self.iterations += count
        if self.iterations > MAX_TOTAL_ITERATIONS:
            raise FaustEvalError(f"more than {MAX_TOTAL_ITERATIONS} iteration steps in total "
                                 f"(nested or repeated par/seq/sum/prod): the program is too "
                                 f"large", e.count.span)
        items = []
        for i in range(count):
            inner = Env(env)
            inner.bind_value(e.var, Int(i))
            items.append(self.to_box(self.ev(e.body, inner), e.body.span))
        return self.combine(e, items, env)

    def combine(self, e: B.Iter, items: list, env: Env) -> Box:
        from .arity import arity
        sp = e.span
        if not items:
            if e.kind != "seq":
                return EMPTY
            inner = Env(env)
            inner.bind_value(e.var, Int(0))
            ins, outs = arity(self.to_box(self.ev(e.body, inner), e.body.span))
            if ins != outs:
                raise FaustEvalError("in seq(): the iterated function must have the same number "
                                     f"of inputs and outputs ({ins} and {outs})", sp)
            return par_of([Wire()] * ins) if ins else EMPTY
        if e.kind == "par":
            return par_of(items, sp)
        if e.kind == "seq":
            acc = items[-1]
            for x in reversed(items[:-1]):
                acc = simplify(Seq(x, acc, span=sp))
            return acc
        op = Prim("+" if e.kind == "sum" else "*")
        acc = items[0]
        for x in items[1:]:
            acc = simplify(Seq(Par(acc, x, span=sp), op, span=sp))
        return acc

    def ev_RouteExpr(self, e: B.RouteExpr, env: Env):
        if len(e.args) < 2:
            raise FaustEvalError("route needs at least 2 arguments: route(ins, outs, pairs...)",
                                 e.span)
        nums = []
        for a in e.args:
            nums.extend(self.const(a, env, "a route argument"))
        for x in nums:
            if not math.isfinite(x.value):
                raise FaustEvalError(f"a route argument must be a finite number, got {x.value}",
                                     e.span)
        ints = [int(x.value) for x in nums]
        ins, outs, flat = ints[0], ints[1], ints[2:]
        if ins < 0 or outs < 0:
            raise FaustEvalError(f"route sizes must be positive, got route({ins}, {outs}, ...)",
                                 e.span)
        if max(ins, outs) > MAX_ITERATIONS:
            raise FaustEvalError(f"route({ins}, {outs}, ...) exceeds the limit of "
                                 f"{MAX_ITERATIONS} inputs or outputs", e.span)
        if len(flat) % 2:
            raise FaustEvalError("route needs (source, destination) pairs: got an odd number "
                                 f"of values ({len(flat)})", e.span)
        pairs = tuple((flat[i], flat[i + 1]) for i in range(0, len(flat), 2))
        return Route(ins, outs, pairs, span=e.span)

    def ev_WaveformExpr(self, e: B.WaveformExpr, env: Env):
        vals = []
        for v in e.values:
            vals.extend(self.const(v, env, "a waveform value"))
        if not vals:
            raise FaustEvalError("an empty waveform", e.span)
        return Waveform(tuple(vals), span=e.span)

    def ev_UIExpr(self, e: B.UIExpr, env: Env):
        label = self.substitute(e.label, env)
        k = e.kind
        if k in ("hgroup", "vgroup", "tgroup"):
            return Group(k, label, self.to_box(self.ev(e.args[0], env), e.args[0].span),
                         span=e.span)
        nums = [float(self.const_number(a, env, f"an argument of {k}").value) for a in e.args]
        if k in ("button", "checkbox"):
            return UI(k, label, span=e.span)
        if k in ("hslider", "vslider", "nentry"):
            init, lo, hi, step = nums
            if not lo <= init <= hi:
                raise FaustEvalError(f"{k} '{label}' init = {_g(init)} outside of "
                                     f"[{_g(lo)} {_g(hi)}] range", e.span)
            return UI(k, label, init, lo, hi, step, span=e.span)
        if k in ("hbargraph", "vbargraph"):
            return Bargraph(k, label, nums[0], nums[1], span=e.span)
        raise FaustEvalError(f"unsupported user-interface element: {k}", e.span)

    _LABEL_VAR = re.compile(r"%(\d*)(?:\{([A-Za-z_]\w*)\}|([A-Za-z_]\w*))")

    def substitute(self, label: str, env: Env) -> str:
        """Replace `%i`, `%2i`, `%{i}` in a label by the value of `i` in scope; a width pads
        with spaces on the left (`%2i` of 0 is ` 0`), as Faust does."""
        def rep(m):
            width, name = m.group(1), m.group(2) or m.group(3)
            b = env.lookup(name)
            if b is None:
                return m.group(0)
            try:
                v = const_outputs(self.to_box(self.force(b, None), None))
            except FaustError:
                return m.group(0)
            if not v or len(v) != 1:
                return m.group(0)
            x = v[0].value
            s = str(int(x)) if isinstance(v[0], Int) or float(x).is_integer() else repr(x)
            return s.rjust(int(width)) if width else s   # Faust pads with spaces (even %02i)
        return self._LABEL_VAR.sub(rep, label)

    def ev_InputsOf(self, e: B.InputsOf, env: Env):
        from .arity import arity
        return Int(arity(self.to_box(self.ev(e.box, env), e.box.span))[0], span=e.span)

    def ev_OutputsOf(self, e: B.OutputsOf, env: Env):
        from .arity import arity
        return Int(arity(self.to_box(self.ev(e.box, env), e.box.span))[1], span=e.span)


# ---------------------------------------------------------------- helpers

def _g(x: float) -> str:
    return f"{x:g}"


def par_of(items: list, span=None) -> Box:
    """Right-nested parallel composition of a non-empty list (Faust's `par` shape)."""
    if not items:
        return EMPTY
    acc = items[-1]
    for x in reversed(items[:-1]):
        acc = Par(x, acc, span=span)
    return acc


_PATTERN_OPS = (Seq, Par, Split, Merge, Rec)


def as_pattern(e: Box) -> Box:
    """A rule's pattern (syntax) with its identifiers turned into pattern variables, as
    Faust prepares patterns: every identifier except one in function position (`dup` in
    `dup(x)`), inside compositions, applications, groups, `with` bodies, iteration bodies
    and inputs()/outputs(); anything else is left as written."""
    r = dataclasses.replace
    if isinstance(e, B.Ident):
        return B.PatVar(e.name, span=e.span)
    if isinstance(e, B.Apply):
        fn = e.fn if isinstance(e.fn, B.Ident) else as_pattern(e.fn)
        return r(e, fn=fn, args=tuple(as_pattern(a) for a in e.args))
    if isinstance(e, _PATTERN_OPS):
        return r(e, a=as_pattern(e.a), b=as_pattern(e.b))
    if isinstance(e, (B.With, B.Iter)):
        return r(e, body=as_pattern(e.body))
    if isinstance(e, (B.InputsOf, B.OutputsOf)):
        return r(e, box=as_pattern(e.box))
    if isinstance(e, B.UIExpr) and e.kind in ("hgroup", "vgroup", "tgroup"):
        return r(e, args=(as_pattern(e.args[0]),) + tuple(e.args[1:]))
    return e


def numeric_value(box: Box):
    """The number a 0 -> 1 box computes when it is a compile-time constant (Faust's
    `isBoxNumeric`), else None. Boxes holding pattern variables are never numeric."""
    if isinstance(box, (Int, Real)):
        return box
    if not isinstance(box, Box) or _has_patvar(box):
        return None
    from .arity import arity
    try:
        if arity(box) != (0, 1):
            return None
    except (FaustError, TypeError):
        return None
    vals = const_outputs(box)
    return vals[0] if vals is not None and len(vals) == 1 else None


def _has_patvar(box: Box) -> bool:
    stack = [box]
    while stack:
        b = stack.pop()
        if isinstance(b, B.PatVar):
            return True
        if isinstance(b, _PATTERN_OPS):
            stack += [b.a, b.b]
        elif isinstance(b, (Group, Symbolic)):
            stack.append(b.body)
    return False


def simplify_pattern(p: Box) -> Box:
    """An evaluated pattern with its numeric parts folded to numbers (Faust's pattern
    simplification): a numeric box becomes its number, compositions are simplified part by
    part, anything else stays."""
    n = numeric_value(p)
    if n is not None:
        return n
    if isinstance(p, _PATTERN_OPS):
        return dataclasses.replace(p, a=simplify_pattern(p.a), b=simplify_pattern(p.b))
    return p


def same_value(a, b) -> bool:
    if isinstance(a, Box) and isinstance(b, Box):
        return a == b
    return a is b


def show_value(v) -> str:
    if isinstance(v, Box):
        return show(v)
    if isinstance(v, (Closure, CaseFn, Builtin)):
        return v.name
    return "environment"


def const_leaves(box: Box) -> Optional[list]:
    """The numbers of a parallel tree of numbers, else None."""
    out, stack = [], [box]
    while stack:
        b = stack.pop()
        if isinstance(b, (Int, Real)):
            out.append(b)
        elif isinstance(b, Par):
            stack.append(b.b)
            stack.append(b.a)
        else:
            return None
    return out


def const_outputs(box: Box) -> Optional[list]:
    """The outputs of a 0-input box when all are compile-time constants, else None."""
    leaves = const_leaves(box)
    if leaves is not None:
        return leaves
    try:
        vals = cprop(box, [])
    except _NotConst:
        return None
    return None if any(v is _VAR for v in vals) else vals


class _NotConst(Exception):
    pass


# a value cprop carries without knowing it (a waveform's content): only a cut may take it
_VAR = Cut()


def cprop(box: Box, ins: list, slots: Optional[dict] = None) -> list:
    """Propagate constant inputs through a box made of numbers, wires, cuts, foldable
    primitives, select2/select3 with a constant selector, routes, groups, compositions and
    abstractions (`Symbolic`, whose slot takes the first input: `slots` maps slot ids to
    their constants); raise _NotConst on anything else."""
    if isinstance(box, (Int, Real)):
        if ins:   # `1 : 2` is an arity error (reported by arity), not `1, 2`
            raise _NotConst
        return [box]
    if isinstance(box, Wire):
        if len(ins) != 1:
            raise _NotConst
        return ins
    if isinstance(box, Waveform):
        # its size is a constant (Faust: `waveform{...} : _, !` is a number), its content not
        if ins:
            raise _NotConst
        return [Int(len(box.values)), _VAR]
    if any(x is _VAR for x in ins) and not isinstance(box, (Cut, Seq, Par, Split, Group,
                                                             Symbolic, Route)):
        raise _NotConst
    if isinstance(box, Cut):
        if len(ins) != 1:
            raise _NotConst
        return []
    if isinstance(box, Slot):
        if ins or slots is None or box.id not in slots:
            raise _NotConst
        return [slots[box.id]]
    if isinstance(box, Symbolic):
        if not ins:
            raise _NotConst
        return cprop(box.body, ins[1:], {**(slots or {}), box.slot.id: ins[0]})
    if isinstance(box, Prim) and box.name in ("select2", "select3"):
        return [_select(box.name, ins)]
    if isinstance(box, Prim):
        row = PRIMITIVES[box.name]
        if row.fold is None or len(ins) != row.ins:
            raise _NotConst
        try:
            r = fold_box(box.name, [x.value for x in ins], all(isinstance(x, Int) for x in ins))
        except ZeroDivisionError:
            raise _NotConst
        if r is None:
            raise _NotConst
        return [r]
    if isinstance(box, Group):
        return cprop(box.body, ins, slots)
    if isinstance(box, Par):
        from .arity import arity
        na = arity(box.a)[0]
        return cprop(box.a, ins[:na], slots) + cprop(box.b, ins[na:], slots)
    if isinstance(box, Seq):
        return cprop(box.b, cprop(box.a, ins, slots), slots)
    if isinstance(box, Split):
        mid = cprop(box.a, ins, slots)
        from .arity import arity
        nb = arity(box.b)[0]
        if not mid:
            raise _NotConst
        return cprop(box.b, [mid[k % len(mid)] for k in range(nb)], slots)
    if isinstance(box, Merge):
        mid = cprop(box.a, ins, slots)
        from .arity import arity
        nb = arity(box.b)[0]
        if nb == 0:
            raise _NotConst
        sums = []
        if any(x is _VAR for x in mid):
            raise _NotConst
        for k in range(nb):
            acc = None
            for x in mid[k::nb]:
                acc = x if acc is None else fold_box("+", [acc.value, x.value],
                                                 isinstance(acc, Int) and isinstance(x, Int))
            sums.append(acc if acc is not None else Int(0))
        return cprop(box.b, sums, slots)
    if isinstance(box, Route):
        if len(ins) != box.ins:
            raise _NotConst
        outs = [None] * box.outs
        for s, d in box.pairs:
            if 1 <= s <= box.ins and 1 <= d <= box.outs:
                x = ins[s - 1]
                o = outs[d - 1]
                if o is not None and (o is _VAR or x is _VAR):
                    raise _NotConst
                outs[d - 1] = x if o is None else fold_box(
                    "+", [o.value, x.value], isinstance(o, Int) and isinstance(x, Int))
        return [o if o is not None else Int(0) for o in outs]
    raise _NotConst


def _select(name: str, ins: list) -> Box:
    """A select2/select3 of constants: the input its selector (cast to int) picks, as Faust's
    normaliser folds it (select2: 0 -> first, else second; select3: 0, 1, else third), of
    the type of the whole select (real when any choice is real)."""
    n = 2 if name == "select2" else 3
    if len(ins) != n + 1 or not math.isfinite(ins[0].value):
        raise _NotConst
    k = int(ins[0].value)
    pick = ins[1] if k == 0 else ins[2] if (k == 1 or n == 2) else ins[3]
    if isinstance(pick, Int) and any(isinstance(x, Real) for x in ins[1:]):
        return Real(float(pick.value), span=pick.span)
    return pick


def simplify(box: Box) -> Box:
    """Fold a composition whose left side is all numbers into numbers, as Faust's
    evaluator does (`(2,3):+` -> 5, `1 <: _,_` -> `1,1`). Keeps the box otherwise."""
    if isinstance(box, (Seq, Split, Merge)):
        leaves = const_leaves(box.a)
        if leaves is not None and _foldable_shape(box.b):
            try:
                vals = cprop(box, [])
            except _NotConst:
                return box
            except FaustError:
                return box
            if vals and not any(v is _VAR for v in vals):
                return par_of([type(v)(v.value, span=box.span) for v in vals], box.span)
    return box


def _foldable_shape(b: Box) -> bool:
    """Cheap pre-check: only small boxes of wires, cuts, primitives and routes fold."""
    stack, budget = [b], 64
    while stack:
        x = stack.pop()
        budget -= 1
        if budget < 0:
            return False
        if isinstance(x, (Seq, Par, Split, Merge)):
            stack += [x.a, x.b]
        elif not isinstance(x, (Int, Real, Wire, Cut, Prim, Route)):
            return False
    return True


# ---------------------------------------------------------------- entry point

def evaluate_process(program: B.Program, resolver: Resolver, name: str = "process") -> Box:
    """Evaluate `process` (or `name`) of a parsed file to a normal-form box."""
    ev = Evaluator(resolver)
    ev.main_file = program.filename
    env = ev.file_env(program)
    b = env.table.get(name)
    if b is None:
        raise FaustEvalError(f"no '{name}' definition in the program",
                             Span(program.filename, 1, 1))
    v = ev.force(b, b.expr.span if b.expr is not None else None)
    box = ev.to_box(v, b.expr.span if b.expr is not None else None)
    if box.span is None and b.expr is not None:   # e.g. the shared empty box
        box = dataclasses.replace(box, span=b.expr.span)
    return box
