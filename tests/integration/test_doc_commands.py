"""Every command in the README's and the manual's (docs/*.md) fenced `bash` blocks, and every
inline code span in their prose that is a whole `python`, `dvc` or `torchrun` command, still runs
as written, checked cheaply, without running the work:

- `python src/<entry>.py [overrides]`: Hydra entry scripts compose their config (the script's own
  `config_name`) with the command's overrides, every job of a multirun (`-m`) included, resolve it
  and validate it as the stage would (`rankvideo.utils.validate`): a wrong key, option or value
  fails. Launchers in front (`torchrun ...`, `srun`) are parsed and stripped.
- `python scripts/X.py ...` and the argparse scripts in src/ (`export_run.py`): the script's own
  parser parses the command's arguments (the script runs up to `parse_args`, then stops).
- `dvc ...`: DVC's own parser accepts the command; stage targets exist in dvc.yaml (or as files);
  `dvc exp run -S` overrides compose with conf/ as DVC's Hydra integration composes them.
- `python -m rankvideo.stages NAME`: NAME is a DVC stage command; `python -m pytest ...`: the test
  paths exist; `bash X.sh`, `.ci/run`: the file exists.
- Commands that set up the environment or serve something (`SKIPPED`: pip, venv, git, mlflow,
  mkdocs, ...) are reported as skipped, by name. Any other command fails until it is handled here.

Placeholders in a value (`PATH`, `...`, `<key>`) are allowed: such a command is composed but not
range-validated. Shell variables (`$RUN`) are expanded to a dummy value, as the shell would. Inline
spans that are synopses rather than commands (`python src/train.py [overrides]`,
`dvc repro -f -s NAME`, `python src/*.py`, `dvc exp run -S key=value`) are not collected.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import logging
import os
import re
import shlex
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from conftest import CONF, REPO

DOC_FILES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

# Commands that install, set up the shell or serve something: nothing cheap to check.
SKIPPED = {
    "pip": "installs packages",
    ".": "activates a virtual environment",
    "source": "activates a virtual environment",
    "cd": "changes directory",
    "git": "version control",
    "mlflow": "serves the MLflow UI or server",
    "mkdocs": "builds or serves the manual",
}
SKIPPED_MODULES = {"venv": "creates a virtual environment", "pip": "installs packages", "mkdocs": "builds the manual"}

# Entry script -> the stage whose config checks it runs (rankvideo.utils.validate).
ENTRY_STAGE = {"tune": "train"}

_FENCE = re.compile(r"^(?P<indent>[ \t]*)```bash[ \t]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.S | re.M)
_ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_SHELL_VAR = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}|\$[A-Za-z_][A-Za-z0-9_]*")
_PLACEHOLDER = re.compile(r"^(\.\.\.|[A-Z][A-Z0-9_]*(\.[a-z]+)?|<[^>]*>)$")
_OPERATORS = {"&&", "||", ";", "|"}
_INLINE = re.compile(r"(?<!`)`([^`]+)`(?!`)")
_INLINE_PROGRAMS = ("python", "python3", "dvc", "torchrun")
_SYNOPSIS_TOKEN = re.compile(r"^([A-Z][A-Z0-9_]*|key=value|\[[a-z ]+\])$|\*")


@dataclass(frozen=True)
class Command:
    where: str  # file:line of the command's first line
    argv: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.where}: {shlex.join(self.argv)}"


def extract_commands(path: Path) -> list[Command]:
    """The commands of every ```bash block of `path`: continuation lines joined, comments dropped,
    `&&` / `;` / `|` chains split, leading VAR=value assignments and shell variables expanded."""
    text = path.read_text()
    where = path.relative_to(REPO)
    commands = []
    for block in _FENCE.finditer(text):
        first_line = text.count("\n", 0, block.start("body")) + 1
        lines = textwrap.dedent(block.group("body")).splitlines()
        i = 0
        while i < len(lines):
            start, logical = i, lines[i]
            while logical.rstrip().endswith("\\") and i + 1 < len(lines):
                i += 1
                logical = logical.rstrip()[:-1] + " " + lines[i].strip()
            i += 1
            tokens = shlex.split(logical, comments=True)
            chain: list[str] = []
            for token in [*tokens, ";"]:
                if token not in _OPERATORS:
                    chain.append(token)
                    continue
                while chain and _ENV_ASSIGNMENT.match(chain[0]):
                    chain.pop(0)
                if chain:
                    argv = tuple(_SHELL_VAR.sub("x", t) for t in chain)
                    commands.append(Command(f"{where}:{first_line + start}", argv))
                chain = []
    return commands


def extract_inline_commands(path: Path) -> list[Command]:
    """The inline code spans of `path`'s prose (outside fenced blocks) that are whole commands."""
    text = path.read_text()
    where = path.relative_to(REPO)
    prose = re.sub(r"^[ \t]*```.*?^[ \t]*```", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S | re.M)
    commands = []
    for span in _INLINE.finditer(prose):
        try:
            argv = shlex.split(" ".join(span.group(1).split()))
        except ValueError:
            continue
        if len(argv) < 2 or argv[0] not in _INLINE_PROGRAMS or any(_SYNOPSIS_TOKEN.search(t) for t in argv):
            continue
        if argv[:3] == ["python", "-m", "rankvideo.stages"] and len(argv) == 3:
            continue  # the stage command's name, without a stage
        line = prose.count("\n", 0, span.start()) + 1
        commands.append(Command(f"{where}:{line} (inline)", tuple(_SHELL_VAR.sub("x", t) for t in argv)))
    return commands


def all_commands() -> list[Command]:
    """Every command once, at its first place (`+N` counts the other places it is written)."""
    found = [c for path in DOC_FILES for c in [*extract_commands(path), *extract_inline_commands(path)]]
    places: dict[tuple[str, ...], list[str]] = {}
    for c in found:
        places.setdefault(c.argv, []).append(c.where)
    return [Command(w[0] + (f" +{len(w) - 1}" if len(w) > 1 else ""), argv) for argv, w in places.items()]


# ---------------------------------------------------------------------------------------------
# Checks, one per kind of command. Each raises AssertionError (or calls pytest.skip) with the reason.


def _dvc_stages() -> set[str]:
    return set(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])


def _hydra_entry(script: Path) -> tuple[str, Path] | None:
    """(config_name, config dir) of a `@hydra.main` script, or None when it is not one."""
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.FunctionDef):
            for dec in node.decorator_list:
                if isinstance(dec, ast.Call) and ast.unparse(dec.func) == "hydra.main":
                    kw = {k.arg: ast.literal_eval(k.value) for k in dec.keywords}
                    return kw["config_name"], (script.parent / kw["config_path"]).resolve()
    return None


def _uses_argparse(script: Path) -> bool:
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.Import) and any(a.name == "argparse" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.module == "argparse":
            return True
    return False


def _strip_optional(token: str) -> str:
    """`[baseline=PATH]` in a synopsis is the optional override `baseline=PATH`."""
    return token[1:-1] if token.startswith("[") and token.endswith("]") and "=" in token else token


def compose_overrides(config_name: str, overrides: list[str], *, multirun: bool = False,
                      config_dir: Path = CONF) -> list:
    """The composed config of every job the command would run (one without `-m`), resolved."""
    from hydra import compose, initialize_config_dir
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf, open_dict

    jobs = [overrides]
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        if multirun:
            parser = OverridesParser.create()
            parsed = parser.parse_overrides(overrides)
            plain = [o.input_line for o in parsed if not o.is_sweep_override()]
            base = compose(config_name=config_name, overrides=plain, return_hydra_config=True)
            given = {o.get_key_element() for o in parsed}
            from_config = [f"{k}={v}" for k, v in (base.hydra.sweeper.get("params") or {}).items() if k not in given]
            batches = BasicSweeper.split_arguments(parser.parse_overrides(from_config) + parsed, max_batch_size=None)
            jobs = [list(job) for batch in batches for job in batch]
        configs = []
        for job in jobs:
            cfg = compose(config_name=config_name, overrides=job, return_hydra_config=True)
            with open_dict(cfg):
                del cfg["hydra"]
            OmegaConf.resolve(cfg)
            configs.append(cfg)
    return configs


def check_hydra_entry(script: Path, args: list[str]) -> None:
    from hydra._internal.utils import get_args_parser

    from rankvideo.utils.validate import validate_config

    config_name, config_dir = _hydra_entry(script)
    with contextlib.redirect_stderr(io.StringIO()) as err:
        try:
            parsed = get_args_parser().parse_args([_strip_optional(a) for a in args])
        except SystemExit:
            raise AssertionError(f"Hydra's command line refuses it: {err.getvalue().strip()}") from None
    overrides = list(parsed.overrides or [])
    configs = compose_overrides(parsed.config_name or config_name, overrides, multirun=parsed.multirun,
                                config_dir=config_dir)
    if any(_PLACEHOLDER.match(o.split("=", 1)[1]) for o in overrides if "=" in o):
        return  # composed; placeholder values are not range-checked
    for cfg in configs:
        validate_config(cfg, ENTRY_STAGE.get(script.stem, script.stem))


_ARGPARSE_HARNESS = r"""
import argparse, contextlib, io, json, runpy, sys

class Parsed(Exception):
    pass

_parse = argparse.ArgumentParser.parse_args

def parse_args(self, args=None, namespace=None):
    _parse(self, args, namespace)
    raise Parsed()

argparse.ArgumentParser.parse_args = parse_args
script, argvs = sys.argv[1], json.loads(sys.argv[2])
results = []
for argv in argvs:
    sys.argv = [script, *argv]
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            runpy.run_path(script, run_name="__main__")
        results.append("the script ran to its end without parsing its arguments")
    except Parsed:
        results.append("ok")
    except SystemExit as e:
        said = [ln for ln in err.getvalue().splitlines() if "error" in ln.lower()] or err.getvalue().splitlines()[-1:]
        results.append(f"its parser refuses the arguments (exit {e.code}): {' '.join(said)}")
print("RESULTS " + json.dumps(results))
"""

_argparse_cache: dict[tuple[str, tuple[str, ...]], str] = {}


def parse_script_args(script: Path, argvs: list[list[str]]) -> list[str]:
    """Run `script` up to its `parse_args` for each argv, in one subprocess; 'ok' or why not."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    p = subprocess.run([sys.executable, "-c", _ARGPARSE_HARNESS, str(script), json.dumps(argvs)], cwd=REPO,
                       capture_output=True, text=True, timeout=300, env=env)
    line = next((ln for ln in p.stdout.splitlines() if ln.startswith("RESULTS ")), None)
    assert line, f"{script.name} could not be loaded:\n{p.stderr[-2000:]}"
    return json.loads(line[len("RESULTS "):])


def check_argparse_script(script: Path, args: list[str]) -> None:
    key = (str(script), tuple(args))
    if key not in _argparse_cache:
        # Parse every documented command of this script in one process (imports once), cache all.
        argvs = [list(c.argv[c.argv.index(_rel(script)) + 1:]) for c in COMMANDS if _rel(script) in c.argv]
        argvs = [a for a in argvs if (str(script), tuple(a)) not in _argparse_cache] or [args]
        if args not in argvs:
            argvs.append(args)
        for argv, result in zip(argvs, parse_script_args(script, argvs)):
            _argparse_cache[(str(script), tuple(argv))] = result
    assert _argparse_cache[key] == "ok", _argparse_cache[key]


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def check_python_file(script_arg: str, args: list[str]) -> None:
    script = REPO / script_arg
    assert script.is_file(), f"{script_arg} does not exist"
    if _hydra_entry(script):
        check_hydra_entry(script, args)
    elif _uses_argparse(script):
        check_argparse_script(script, args)
    else:
        assert not args, f"{script_arg} takes no arguments"


@contextlib.contextmanager
def _sys_argv(argv: list[str]):
    saved, sys.argv = sys.argv, argv
    try:
        yield
    finally:
        sys.argv = saved


def check_dvc(args: list[str]) -> None:
    from dvc.cli import DvcParserError, parse_args

    # DVC's parser also reads sys.argv (its -q/-v flags): give it the command's own. It reports
    # through its logger, whose handler holds the real stderr: listen to the logger.
    said = io.StringIO()
    handler = logging.StreamHandler(said)
    logging.getLogger("dvc").addHandler(handler)
    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()), \
                _sys_argv(["dvc", *args]):
            parsed = parse_args(args)
    except (SystemExit, DvcParserError):
        raise AssertionError(f"DVC's parser refuses it: {said.getvalue().strip()}") from None
    finally:
        logging.getLogger("dvc").removeHandler(handler)
    if args[:1] in (["repro"], ["status"], ["commit"], ["push"], ["pull"]) or args[:2] == ["exp", "run"]:
        stages = _dvc_stages()
        for target in getattr(parsed, "targets", None) or []:
            assert target in stages or (REPO / target).exists(), f"{target!r} is neither a stage of dvc.yaml nor a file"
    if args[:2] == ["exp", "run"] and parsed.set_param:
        compose_overrides("config", list(parsed.set_param))


def check_python_module(module: str, args: list[str]) -> None:
    if module in SKIPPED_MODULES:
        pytest.skip(f"python -m {module}: {SKIPPED_MODULES[module]}")
    if module == "rankvideo.stages":
        from rankvideo.stages import STAGES

        assert len(args) == 1 and args[0] in STAGES and args[0] != "train", \
            f"`python -m rankvideo.stages` takes one of {sorted(set(STAGES) - {'train'})}, not {args}"
        assert args[0] in _dvc_stages(), f"{args[0]} is not a stage of dvc.yaml"
    elif module == "pytest":
        for a in args:
            path = a.split("::")[0]
            if not a.startswith("-") and ("/" in path or path.endswith(".py")):
                assert (REPO / path).exists(), f"{path} does not exist"
    else:
        raise AssertionError(f"`python -m {module}` is not a command this test knows: handle or skip it")


def check(argv: list[str]) -> None:
    prog, args = argv[0], argv[1:]
    if prog in SKIPPED:
        pytest.skip(f"{prog}: {SKIPPED[prog]}")
    if prog in ("python", "python3"):
        if args[:1] == ["-m"]:
            return check_python_module(args[1], args[2:])
        return check_python_file(args[0], args[1:])
    if prog == "torchrun":
        from torch.distributed.run import get_args_parser

        parsed = get_args_parser().parse_args(args)
        return check_python_file(parsed.training_script, list(parsed.training_script_args))
    if prog == "srun":
        rest = [a for a in args if not a.startswith("-")]
        return check(rest)
    if prog == "dvc":
        return check_dvc(args)
    if prog == "bash":
        assert (REPO / args[0]).is_file(), f"{args[0]} does not exist"
        return None
    if "/" in prog:
        assert (REPO / prog).is_file() and os.access(REPO / prog, os.X_OK), f"{prog} is not an executable file"
        return None
    raise AssertionError(f"`{prog}` is not a command this test knows: check it here, or add it to SKIPPED")


COMMANDS = all_commands()


@pytest.mark.parametrize("command", COMMANDS, ids=str)
def test_documented_command_runs_as_written(command):
    check(list(command.argv))


def test_commands_were_found_in_the_readme_and_the_manual():
    where = {c.where.split(":")[0] for c in COMMANDS if "(inline)" not in c.where}
    assert "README.md" in where and len(where) >= 8, where
    kinds = {c.argv[0] if c.argv[0] not in ("python", "python3") else c.argv[1].split("/")[0] for c in COMMANDS}
    assert {"dvc", "src", "scripts", "-m", "torchrun"} <= kinds, kinds


@pytest.mark.parametrize("bad, reason", [
    ("python src/train.py loss.pairwis=1", "Could not override 'loss.pairwis'"),
    ("python src/train.py loss=no_such_loss", "no_such_loss"),
    ("python src/train.py curriculum.stage2.epochs=0", "curriculum.stage2.epochs=0"),
    ("python src/train.py -m loss.pairwise=0.1,-1", "loss"),
    ("python src/tune.py tune.n_trialz=3", "tune.n_trialz"),
    ("dvc exp run -S retrieval.k2=1.2", "retrieval.k2"),
    ("dvc repro -s no_such_stage", "no_such_stage"),
    ("dvc repro --no-such-flag", "refuses"),
    ("python -m rankvideo.stages no_such_stage", "no_such_stage"),
    ("python scripts/probe_binding.py --no-such-flag", "refuses"),
    ("python scripts/probe_binding.py --task no_such_task", "refuses"),
    ("python src/export_run.py run.trec --out x.trec", "refuses"),
    ("python scripts/no_such_script.py", "does not exist"),
    ("frobnicate --now", "not a command this test knows"),
])
def test_a_wrong_command_fails_the_check(bad, reason):
    with pytest.raises(Exception, match=re.escape(reason)):
        check(shlex.split(bad))


def test_extraction_joins_lines_splits_chains_and_drops_comments(tmp_path, monkeypatch):
    page = tmp_path / "page.md"
    page.write_text("text\n\n  ```bash\n  A=1 python src/train.py \\\n    loss.pairwise=0.5   # a comment\n"
                    "  . .venv/bin/activate && dvc repro\n  # a comment line\n  ```\n\n```\nnot bash\n```\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    commands = extract_commands(page)
    assert [c.argv for c in commands] == [("python", "src/train.py", "loss.pairwise=0.5"), (".", ".venv/bin/activate"),
                                         ("dvc", "repro")]
    assert commands[0].where == "page.md:4"
