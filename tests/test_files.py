"""Input and output discipline (issue 13): the one reader and the one writer of
:mod:`supernode_dsl.files`, and every reproducer of the issue through the CLI.

The CLI runs are subprocesses started together (``Batch`` of ``test_cli``); device outputs
are tested only on nodes made here in a temporary folder (never a system device), and a
full disk with a standard output opened on ``/dev/full`` for writing.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_cli import ROOT, Batch, Runs, assert_input_error

import supernode_dsl as cmx
from supernode_dsl import files
from supernode_dsl.diagnostics import CmxError
from supernode_dsl.files import Output, OutputConflict, read_bytes, read_text, write_outputs

TINY = "tests/fixtures/plan/tiny.cmx"  # a small deployment: plans in about a second
SMALL = 'plane ub "u"\ndie D { hbm = 64 GB }\nnode N {\n    die[2]: D\n' \
        '    link ub die[0] <-> die[1] { bw = 28 GB/s }\n}\ninstance n: N\n'
KEEP = b"keep these bytes\n"
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    """Every CLI run of this module, started at once."""
    tmp = tmp_path_factory.mktemp("io")
    small = tmp / "small.cmx"
    small.write_text(SMALL, encoding="utf-8")
    os.mkfifo(tmp / "in.fifo")
    os.mkfifo(tmp / "out.fifo")
    (tmp / "imports.cmx").write_text('import "in.fifo"\nimport "/dev/zero"\n' + SMALL,
                                     encoding="utf-8")
    with open(tmp / "big.cmx", "wb") as f:  # 60 MB, sparse: refused before it is read
        f.truncate(60_000_000)
    (tmp / "numbers.cmx").write_text("param x = " + "9" * 401 + " GB\nparam z = 1\n" + SMALL,
                                     encoding="utf-8")
    (tmp / "nesting.cmx").write_text("param y = " + "**".join(["2"] * 500) + "\n" + SMALL,
                                     encoding="utf-8")
    (tmp / "main.cmx").write_text('import "lib.cmx"\ninstance d: D\n', encoding="utf-8")
    (tmp / "lib.cmx").write_text("die D { hbm = 64 GB }\n", encoding="utf-8")
    for name in ("same.cmx", "plan.json"):
        (tmp / name).write_bytes(SMALL.encode() if name == "same.cmx" else KEEP)
    special = tmp / "out.fifo"  # a device node made here (as root), else a FIFO
    if IS_ROOT:
        special = tmp / "null"
        os.mknod(special, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    t = str(tmp)
    commands: dict[str, tuple[list[str], dict[str, str] | None]] = {
        "check-fifo": (["check", f"{t}/in.fifo"], None),
        "imports": (["check", f"{t}/imports.cmx"], None),
        "big": (["check", f"{t}/big.cmx"], None),
        "numbers": (["check", f"{t}/numbers.cmx", "-D", "z=" + "9" * 5001], None),
        "nesting": (["check", f"{t}/nesting.cmx"], None),
        "loads-zero": (["plan", TINY, "--expert-loads", "/dev/zero", "-o", f"{t}/p1.json"],
                       None),
        "previous-zero": (["plan", TINY, "--previous", "/dev/zero", "-o", f"{t}/p2.json"],
                          None),
        "plan-fifo": (["emit", "hccl-rank-table", TINY, "--plan", f"{t}/in.fifo", "-o",
                       f"{t}/r.json"], None),
        "same-as-input": (["compile", f"{t}/same.cmx", "-o", f"{t}/same.cmx", "--format",
                           "node-link"], None),
        "same-as-import": (["compile", f"{t}/main.cmx", "-o", f"{t}/lib.cmx", "--format",
                            "node-link"], None),
        "trace-missing-dir": (["plan", TINY, "-o", f"{t}/plan.json", "--trace",
                               f"{t}/missing-dir/t.json"], None),
        "trace-is-plan": (["plan", TINY, "-o", f"{t}/plan.json", "--trace",
                           f"{t}/plan.json"], None),
        "tree-to-stdout": (["emit", "chakra-et", TINY, "--plan", "tests/golden/plan/tiny.plan.json",
                            "-O", "role=decode", "-o", "-"], None),
        "out-special": (["compile", f"{t}/small.cmx", "-o", str(special), "--format",
                         "node-link"], None),
    }
    batch = Batch(commands)
    yield Runs(batch, tmp)
    batch.close()


def test_devices_fifos_and_directories_are_refused_as_inputs(runs: Runs) -> None:
    for key in ("check-fifo", "imports", "loads-zero", "previous-zero", "plan-fifo"):
        assert_input_error(runs(key), "E031")
    # each import is located at its statement
    imports = runs("imports").stderr
    assert "imports.cmx:1:1: error[E031]: " in imports and "is a FIFO" in imports
    assert "imports.cmx:2:1: error[E031]: '/dev/zero' is a character device" in imports
    assert "'/dev/zero' is a character device" in runs("loads-zero").stderr


def test_an_input_over_the_size_limit_fails_fast(runs: Runs) -> None:
    assert_input_error(runs("big"), "E030")
    assert "the limit for an input file is 1.0 MiB (raise it with CMX_MAX_INPUT_BYTES=" \
        in runs("big").stderr


def test_numbers_and_nesting_beyond_the_limits_are_located(runs: Runs) -> None:
    proc = runs("numbers")
    assert_input_error(proc, "E014")
    assert "numbers.cmx:1:11: error[E014]: a number literal of 401 characters" in proc.stderr
    assert "a number literal of 5,001 characters" in proc.stderr  # the -D value
    assert_input_error(runs("nesting"), "E014")
    assert "nesting.cmx:1:308: error[E014]: this expression is nested or chained more " \
        "than 100 levels deep" in runs("nesting").stderr


def _usage_error(proc: subprocess.CompletedProcess[str], text: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert text in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_an_output_that_is_an_input_or_another_output_is_a_usage_error(runs: Runs) -> None:
    _usage_error(runs("same-as-input"), "is the input")
    assert (runs.tmp / "same.cmx").read_text(encoding="utf-8") == SMALL
    _usage_error(runs("same-as-import"), "is the input")
    assert (runs.tmp / "lib.cmx").read_text(encoding="utf-8").startswith("die D")
    _usage_error(runs("trace-is-plan"), "is given for two outputs")
    assert (runs.tmp / "plan.json").read_bytes() == KEEP


def test_a_failed_command_leaves_every_output_untouched(runs: Runs) -> None:
    assert_input_error(runs("trace-missing-dir"), "E032")
    assert (runs.tmp / "plan.json").read_bytes() == KEEP


def test_a_directory_of_files_is_refused_on_standard_output(runs: Runs) -> None:
    proc = runs("tree-to-stdout")
    assert_input_error(proc, "E032")
    assert "files to standard output; give -o DIR" in proc.stderr and proc.stdout == ""


def test_a_device_or_fifo_output_is_refused_and_kept(runs: Runs) -> None:
    assert_input_error(runs("out-special"), "E031")
    mode = os.stat(runs.tmp / ("null" if IS_ROOT else "out.fifo")).st_mode
    assert stat.S_ISCHR(mode) if IS_ROOT else stat.S_ISFIFO(mode)


def test_outputs_that_cannot_be_written_are_found_before_any_work(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "f")
    for path, code in ((tmp_path / "f", "E031"), (tmp_path, "E031"),
                       (tmp_path / "no" / "x", "E032")):
        with pytest.raises(CmxError) as info:
            files.check_outputs([path])
        assert info.value.codes == [code]
    with pytest.raises(OutputConflict):
        files.check_outputs(["-", "-"])


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
@pytest.mark.parametrize("args", [["compile", "SMALL", "-o", "-"], ["check", "SMALL"],
                                  ["plan", TINY, "-o", "OUT"]],
                         ids=["compile-stdout", "check-summary", "plan-summary"])
def test_a_full_standard_output_is_a_diagnostic(args: list[str], tmp_path: Path) -> None:
    """A full standard output is E032, and the plan's summary, written with the plan file,
    leaves no plan behind."""
    small, out = tmp_path / "small.cmx", tmp_path / "plan.json"
    small.write_text(SMALL, encoding="utf-8")
    names = {"SMALL": str(small), "OUT": str(out)}
    with open("/dev/full", "w") as full:  # opened for writing: harmless
        proc = subprocess.run([sys.executable, "-m", "supernode_dsl",
                               *[names.get(a, a) for a in args]],
                              cwd=ROOT, stdout=full, stderr=subprocess.PIPE, text=True,
                              timeout=60, check=False)
    assert proc.returncode == 1, proc.stderr
    assert "error[E032]: cannot write standard output: No space left on device" in proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr
    assert not out.exists()


# ---- the reader ---------------------------------------------------------------------------

def test_reader_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "f")  # opened non-blocking: must not hang
    for path, kind in ((tmp_path / "f", "a FIFO"), (tmp_path, "a directory"),
                       (Path("/dev/zero"), "a character device")):
        with pytest.raises(CmxError) as info:
            read_bytes(path, "E011")
        assert info.value.codes == ["E031"] and kind in str(info.value)
    with pytest.raises(CmxError) as info:
        read_bytes(tmp_path / "missing", "E021")
    assert info.value.codes == ["E021"] and "No such file" in str(info.value)


def test_reader_size_limit_and_environment(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "x"
    p.write_bytes(b"0123456789")
    assert read_bytes(p, "E011", limit=10) == b"0123456789"
    with pytest.raises(CmxError) as info:
        read_bytes(p, "E011", limit=9)
    assert info.value.codes == ["E030"]
    monkeypatch.setenv(files.MAX_INPUT_BYTES_ENV, "1_000")
    assert files.max_input_bytes() == files.max_input_bytes(source=True) == 1000
    monkeypatch.setenv(files.MAX_INPUT_BYTES_ENV, "lots")
    with pytest.raises(CmxError) as info:
        read_bytes(p, "E011")
    assert info.value.codes == ["E030"]


def test_reader_locates_a_decoding_error(tmp_path: Path) -> None:
    p = tmp_path / "bad.cmx"
    p.write_bytes(b"param a = 1\nparam \xc3\xa9 = 2 \xff\n")
    with pytest.raises(CmxError) as info:
        read_text(p, "E011")
    d = info.value.diagnostics[0]
    assert d.code == "E011" and d.span is not None
    assert (d.span.line, d.span.col) == (2, 13)  # the é is one column
    assert "byte 0xff at line 2, column 13" in d.message


# ---- the writer ---------------------------------------------------------------------------

def test_writer_stages_everything_or_writes_nothing(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_bytes(KEEP)
    real_stage = files._stage

    def failing_stage(out: Output) -> files._Staged:
        if Path(out.path) == b:
            raise OSError(28, "No space left on device")
        return real_stage(out)

    monkeypatch.setattr(files, "_stage", failing_stage)
    with pytest.raises(CmxError) as info:
        write_outputs([Output(a, "new"), Output(b, "new")])
    assert info.value.codes == ["E032"] and "No space left" in str(info.value)
    assert a.read_bytes() == KEEP and not b.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_writer_refuses_a_directory_on_standard_output(tmp_path: Path,
                                                       capfdbinary: pytest.CaptureFixture[bytes]
                                                       ) -> None:
    a = tmp_path / "a.json"
    a.write_bytes(KEEP)
    tree = files.FileTree({"0.et": b"x", "1.et": b"y"})
    with pytest.raises(CmxError) as info:
        write_outputs([Output(a, "new"), Output("-", tree)])
    assert info.value.codes == ["E032"] and "directory of 2 files" in str(info.value)
    assert a.read_bytes() == KEEP and capfdbinary.readouterr().out == b""


def test_writer_puts_back_what_a_failed_rename_replaced(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    a.write_bytes(KEEP)
    real_replace = os.replace

    def failing_replace(src: str, dst: str) -> None:
        if str(dst) == str(c):
            raise OSError(5, "Input/output error")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(CmxError):
        write_outputs([Output(a, "1"), Output(b, "2"), Output(c, "3")])
    assert a.read_bytes() == KEEP and not b.exists() and not c.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


def test_writer_keeps_the_mode_of_the_file_it_replaces(tmp_path: Path) -> None:
    target = tmp_path / "t"
    target.write_bytes(KEEP)
    target.chmod(0o640)
    (tmp_path / "l").symlink_to("t")
    write_outputs([Output(tmp_path / "l", b"new")])
    assert target.read_bytes() == b"new" and (tmp_path / "l").is_symlink()
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


def test_writer_finds_an_input_behind_another_name(tmp_path: Path) -> None:
    src = tmp_path / "in.cmx"
    src.write_bytes(KEEP)
    os.link(src, tmp_path / "hard")
    (tmp_path / "soft").symlink_to("in.cmx")
    for alias in ("hard", "soft", "./in.cmx"):
        with pytest.raises(OutputConflict):
            write_outputs([Output(tmp_path / alias, "x")], [src])
    assert src.read_bytes() == KEEP


_NAMES = st.sampled_from(["a", "b", "sub/c", "link", "missing/d", "-", "in"])


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(_NAMES, min_size=1, max_size=4))
def test_writer_property_all_or_nothing(names: list[str], tmp_path_factory:
                                        pytest.TempPathFactory,
                                        capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    """Any set of outputs: either every output holds its new data, or the command fails
    and no file in the folder has changed."""
    d = tmp_path_factory.mktemp("w")
    (d / "sub").mkdir()
    for n in ("a", "in"):
        (d / n).write_bytes(KEEP)
    (d / "link").symlink_to("a")
    before = {p: p.read_bytes() for p in d.rglob("*") if p.is_file()}
    outs = [Output(n if n == "-" else d / n, f"data {i}") for i, n in enumerate(names)]
    try:
        write_outputs(outs, [d / "in"])
    except (OutputConflict, CmxError):
        after = {p: p.read_bytes() for p in d.rglob("*") if p.is_file()}
        assert after == before
        return
    for out in outs:
        if out.path != "-":
            assert Path(out.path).read_bytes() == out.payload
    assert not list(d.rglob(".*.tmp*"))


@settings(max_examples=60, deadline=None)
@given(digits=st.text("0123456789_", min_size=1, max_size=450).filter(lambda s: s[0] != "_"),
       unit=st.sampled_from(["", " GB", " Gbps", " us"]),
       exponent=st.sampled_from(["", "e5", "e308", "e400", ".5"]))
def test_number_literals_are_values_or_located_errors(digits: str, unit: str,
                                                      exponent: str) -> None:
    """A number literal of any length is a value or a located E014, never an exception."""
    text = f"param p = {digits}{exponent}{unit}\ndie D {{ hbm = 64 GB }}\ninstance d: D\n"
    try:
        cmx.compile_string(text)
    except CmxError as err:
        assert {d.code for d in err.diagnostics} <= {"E001", "E014"}, str(err)
        assert all(d.span is not None for d in err.diagnostics)
