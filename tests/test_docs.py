"""Docs are tested against the code: settings, routes, examples and commands.

Every code block of the README is fenced and names its language, and every shell, Python
and config example is either run or validated:

- A ``sh`` or ``python`` block runs, in README order, in one shell session against a live
  server (the Quick start's, started here on a free port with its own home directory, so its
  default data directory is the test's). Variables, the venv's activation and the working
  directory carry over from block to block, as in a reader's terminal. A block must exit 0;
  ``curl`` runs with ``--fail-with-body``, so an HTTP error fails the block too.
- ``<!-- output -->`` before a block: it is the expected output of the block before it.
  Whitespace is ignored and ``...`` stands for anything.
- ``<!-- runs until stopped -->`` before a block (an event stream, a ``watch``): it runs in
  the background until its output matches its output block, then it is stopped.
- ``<!-- not run: REASON -->`` before a block (installing on a Pi, systemd, a broker on
  another machine): a shell block's syntax is checked with ``bash -n``, a Python block is
  compiled.
- A ``toml`` block is loaded by the config loader (fragments too: they must load alone).

The only change made to a block before it runs: the port 8080 in ``localhost:8080`` becomes
the test server's.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.machinery import SourceFileLoader
from pathlib import Path

import pytest

from pinpanel.config import load
from tests.support import REPO, ServerProcess, run_cli

README = (REPO / "README.md").read_text()

SHELL = "sh"
RUNNABLE = {SHELL, "python"}
CONFIG = "toml"
#: Languages shown, not run: outputs, wire formats, other programs' config.
SHOWN = {"json", "text", "js", "caddyfile", "nginx", "ini"}
MARKER = re.compile(r"<!--\s*(output|runs until stopped|not run:\s*\S.*?)\s*-->$")
#: A hang guard for one block, never a timing assertion: every block here takes seconds.
BLOCK_DEADLINE_S = 120.0


@dataclass
class Block:
    lang: str
    text: str
    line: int  # 1-based line of the opening fence
    marker: str | None

    @property
    def where(self) -> str:
        return f"README.md line {self.line} ({self.lang})"

    @property
    def runs(self) -> bool:
        return self.lang in RUNNABLE and not (self.marker or "").startswith("not run")

    @property
    def streams(self) -> bool:
        return self.marker == "runs until stopped"


def blocks(text: str = README) -> list[Block]:
    """The README's fenced blocks, each with the marker comment on the line before it."""
    found: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            lang = line[3:].strip()
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            previous = lines[i - 1].strip() if i else ""
            match = MARKER.match(previous)
            found.append(Block(lang, "\n".join(lines[i + 1:end]) + "\n", i + 1,
                               match.group(1) if match else None))
            i = end + 1
        else:
            i += 1
    return found


def indented_code_lines(text: str = README) -> list[int]:
    """Lines opening an indented (unfenced) code block: they cannot say their language."""
    found = []
    lines = text.splitlines()
    fenced = False
    for number, line in enumerate(lines, 1):
        if line.startswith("```"):
            fenced = not fenced
        elif (not fenced and line.startswith("    ") and line.strip()
              and number > 1 and not lines[number - 2].strip()):
            found.append(number)
    return found


def output_of(block: Block, all_blocks: list[Block]) -> Block | None:
    index = all_blocks.index(block)
    if index + 1 < len(all_blocks) and all_blocks[index + 1].marker == "output":
        return all_blocks[index + 1]
    return None


def _squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


def matches(expected: str, actual: str, *, prefix: bool = False) -> bool:
    """``actual`` is ``expected``, ignoring whitespace, with ``...`` matching anything."""
    pattern = ".*?".join(re.escape(_squeeze(part)) for part in expected.split("..."))
    regex = re.compile(pattern, re.DOTALL)
    squeezed = _squeeze(actual)
    return bool(regex.match(squeezed) if prefix else regex.fullmatch(squeezed))


# -- the shell session -------------------------------------------------------------------------


class Session:
    """One bash process fed block after block, as a reader's terminal would be."""

    def __init__(self, cwd: Path, home: Path, scratch: Path) -> None:
        venv_bin = str(Path(sys.prefix) / "bin")
        path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep)
                               if p and p != venv_bin)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("PINPANEL_", "XDG_", "PYTHON", "VIRTUAL_ENV"))
               and k != "STATE_DIRECTORY"}
        # unbuffered: a stopped Python example must have printed what it printed
        env.update(HOME=str(home), PATH=path, PYTHONUNBUFFERED="1")
        self.scratch = scratch
        self.proc = subprocess.Popen(["bash", "--noprofile", "--norc"], cwd=cwd, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self._buffer = b""
        # job control: each background example gets a process group of its own to stop
        self._send("set -m\ncurl() { command curl --silent --show-error --fail-with-body \"$@\"; }")

    def _send(self, commands: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(commands.encode() + b"\n")
        self.proc.stdin.flush()

    def _reply(self, tag: str, block: Block) -> str:
        """Wait for the session to print ``tag VALUE``; the block failed if bash ended."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + BLOCK_DEADLINE_S
        while (match := re.search(rf"^{tag} (\S*)$".encode(), self._buffer, re.M)) is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                self.close()
                pytest.fail(f"{block.where} did not finish:\n{block.text}")
            chunk = os.read(fd, 65536)
            if not chunk:
                code = self.proc.wait()
                pytest.fail(f"{block.where} exited {code}:\n{block.text}\n{self.files(block)}")
            self._buffer += chunk
        self._buffer = self._buffer[match.end():]
        return match.group(1).decode()

    def paths(self, block: Block) -> tuple[Path, Path, Path]:
        suffix = ".py" if block.lang == "python" else ".sh"
        stem = self.scratch / f"block-{block.line}"
        return stem.with_suffix(suffix), stem.with_suffix(".out"), stem.with_suffix(".err")

    def files(self, block: Block) -> str:
        _, out, err = self.paths(block)
        return (f"--- stdout\n{out.read_text(errors='replace') if out.exists() else ''}"
                f"--- stderr\n{err.read_text(errors='replace') if err.exists() else ''}")

    def _command(self, block: Block, text: str) -> str:
        script, out, err = self.paths(block)
        script.write_text(text)
        run = f"python {script}" if block.lang == "python" else f". {script}"
        # a group, not a subshell: what the block sets stays set; stdin is not the session's
        return f"{{ {run}; }} >{out} 2>{err} </dev/null"

    def run(self, block: Block, text: str) -> str:
        """Run a block to its end; with ``set -e`` a failing command ends the session."""
        self._send(f"set -e\n{self._command(block, text)}\nset +e\necho __done__ ok")
        self._reply("__done__", block)
        return self.paths(block)[1].read_text()

    def stream(self, block: Block, text: str, expected: str) -> str:
        """Run a block in the background until its output matches, then stop it."""
        self.paths(block)[1].touch()
        self._send(f"{self._command(block, text)} &\necho __pid__ $!")
        pid = int(self._reply("__pid__", block))
        out = self.paths(block)[1]
        deadline = time.monotonic() + BLOCK_DEADLINE_S
        try:
            while not matches(expected, out.read_text(errors="replace"), prefix=True):
                self._send(f"kill -0 {pid} 2>/dev/null && echo __alive__ yes || echo __alive__ no")
                if self._reply("__alive__", block) == "no" or time.monotonic() > deadline:
                    pytest.fail(f"{block.where} never printed its output:\n{expected}\n"
                                f"{self.files(block)}")
                time.sleep(0.05)
        finally:
            os.killpg(pid, signal.SIGTERM)
            self._send(f"wait {pid}; echo __done__ $?")
            self._reply("__done__", block)
        return out.read_text()

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def readme_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """The Quick start's server: default config, first start, data in ~/.local/state."""
    home = tmp_path / "home"
    state = home / ".local" / "state"
    state.mkdir(parents=True)
    server = ServerProcess(state / "pinpanel", token_scope=None)
    server.start()
    yield server
    server.stop()


def test_readme_examples_run_in_order_against_a_live_server(
        tmp_path: Path, readme_server: ServerProcess) -> None:
    activate = Path(sys.prefix) / "bin" / "activate"
    assert activate.exists(), "run the tests with the project's venv (scripts/test makes it)"
    work = tmp_path / "clone"  # the reader's directory: the clone with its venv
    work.mkdir()
    (work / ".venv").symlink_to(sys.prefix)
    (work / "examples").symlink_to(REPO / "examples")
    scratch = tmp_path / "blocks"
    scratch.mkdir()
    session = Session(work, tmp_path / "home", scratch)
    everything = blocks()
    ran = 0
    try:
        for block in everything:
            if not block.runs:
                continue
            text = block.text.replace("localhost:8080", f"localhost:{readme_server.port}")
            expected = output_of(block, everything)
            if block.streams:
                assert expected is not None, f"{block.where} runs until stopped: give its output"
                output = session.stream(block, text, expected.text)
            else:
                output = session.run(block, text)
                if expected is not None:
                    assert matches(expected.text, output), (
                        f"{block.where} printed\n{output}\nnot\n{expected.text}")
            ran += 1
    finally:
        session.close()
    assert ran >= 15, ran  # the README's API sections, not a handful


def test_every_readme_block_is_fenced_with_a_known_language() -> None:
    assert indented_code_lines() == [], "fence these README blocks and name their language"
    for block in blocks():
        assert block.lang in RUNNABLE | SHOWN | {CONFIG}, f"{block.where}: which language?"
        if block.marker == "output":
            assert block.lang in SHOWN, f"{block.where}: an output is json or text"
        elif block.marker is not None:
            assert block.lang in RUNNABLE, f"{block.where}: only examples run"


def test_every_readme_output_follows_an_example_that_runs() -> None:
    everything = blocks()
    for index, block in enumerate(everything):
        if block.marker == "output":
            assert index and everything[index - 1].runs, f"{block.where}: output of what?"


def test_readme_examples_that_cannot_run_here_are_valid_syntax(tmp_path: Path) -> None:
    checked = 0
    for block in blocks():
        if block.runs or block.lang not in RUNNABLE:
            continue
        if block.lang == SHELL:
            result = subprocess.run(["bash", "-n"], input=block.text, text=True,
                                    capture_output=True, check=False)
            assert result.returncode == 0, f"{block.where}: {result.stderr}"
        else:
            compile(block.text, block.where, "exec")
        checked += 1
    assert checked >= 5, checked


def test_every_readme_config_example_loads(tmp_path: Path) -> None:
    configs = [block for block in blocks() if block.lang == CONFIG]
    assert len(configs) >= 5, len(configs)
    for block in configs:
        path = tmp_path / f"block-{block.line}.toml"
        path.write_text(block.text)
        assert load(path).pins, block.where


def test_the_token_and_the_server_have_one_name_each(tmp_path: Path) -> None:
    for other in (r"\$TOKEN\b", r"\$AUTH\b", r"\bHOST:", r"\$HOST\b"):
        assert not re.search(other, README), other
    assert README.count("export PINPANEL_TOKEN=") == 1
    made = run_cli("token", "create", "docs", "--data-dir", str(tmp_path / "data"))
    assert made.returncode == 0, made.stderr
    assert "Bearer $PINPANEL_TOKEN" in made.stderr


def test_output_matching_ignores_whitespace_and_takes_ellipses() -> None:
    assert matches('{"pin": 18, "seq": ..., "x": "..."}', '{"pin":18,"seq":12,"x":"a b"}')
    assert not matches('{"pin": 18}', '{"pin":19}')
    assert not matches('{"pin": 18}', '{"pin":18}{"pin":23}')
    assert matches("event: snapshot\nid: ...", "event: snapshot\nid: 4\ndata: {}", prefix=True)


def test_markers_are_understood() -> None:
    text = ("<!-- not run: on a Pi -->\n```sh\nsudo true\n```\n"
            "```sh\necho hi\n```\n<!-- output -->\n```text\nhi\n```\n")
    parsed = blocks(text)
    assert [(b.lang, b.marker, b.runs) for b in parsed] == [
        ("sh", "not run: on a Pi", False), ("sh", None, True), ("text", "output", False)]
    assert output_of(parsed[1], parsed) is parsed[2]
    assert indented_code_lines("text\n\n    indented\n") == [3]


def _gen_docs() -> object:
    import importlib.util

    loader = SourceFileLoader("gen_docs", str(REPO / "scripts" / "gen-docs"))
    spec = importlib.util.spec_from_loader("gen_docs", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_settings_table_is_current() -> None:
    assert _gen_docs().render(README) == README, "run scripts/gen-docs"  # type: ignore[attr-defined]


def test_every_example_config_is_valid() -> None:
    examples = sorted((REPO / "examples").glob("*.toml"))
    assert examples
    for path in examples:
        assert load(path).pins, path


def test_readme_example_is_the_example_file() -> None:
    example = (REPO / "examples" / "pinpanel.toml").read_text()
    body = example.split("\n\n", 1)[1]
    assert body in README


def test_every_api_path_is_in_the_readme() -> None:
    from pinpanel.web.app import spec

    for path in spec()["paths"]:
        last = "/" + path.rsplit("/", 1)[1]
        assert path in README or f"`{last}`" in README, path


def test_readme_gives_the_two_commands() -> None:
    assert ".venv/bin/pip install . && .venv/bin/pinpanel" in README
    assert "\n```sh\nscripts/test\n```\n" in README
    assert (REPO / ".ci" / "run").read_text().count("scripts/test") == 1


def test_readme_keeps_the_benchmark_tables_in_bench() -> None:
    performance = README.split("## Performance\n", 1)[1].split("\n## ", 1)[0]
    assert "](bench/README.md)" in performance
    assert len(performance.strip().splitlines()) <= 2
    assert "| figure | conns | pinpanel |" in (REPO / "bench" / "README.md").read_text()


def test_scripts_test_says_what_it_installs_before_installing() -> None:
    script = (REPO / "scripts" / "test").read_text()
    assert script.index("about 280 MB") < script.index("apt-get install")


def test_design_doc_exists() -> None:
    assert Path(REPO / "docs" / "DESIGN.md").exists()
