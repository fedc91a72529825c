"""The ``faster-rcnn`` program before its command line has loaded: ``import faster_rcnn``
loads no PyTorch, so the program's :func:`~faster_rcnn.__main__.main` runs while PyTorch
loads, and Ctrl-C then is one line, as it is later, not Python's traceback."""

import importlib.abc
import signal
import subprocess
import sys

import pytest

import faster_rcnn
from faster_rcnn import __main__ as program


def test_importing_the_package_loads_torch_only_when_a_name_is_used():
    code = "import sys, faster_rcnn\n"
    code += "print('torch' in sys.modules)\n"
    code += "faster_rcnn.FasterRCNN\n"
    code += "print('torch' in sys.modules)\n"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.split() == ["False", "True"]


def test_the_command_line_loads_what_only_some_commands_use_in_those_commands():
    """matplotlib (a fifth of ``faster-rcnn --help``'s start) and the ONNX export's graph
    operators were loaded by every command, imported with the command line; they load
    in the commands that draw and export. The evaluation package loads matplotlib only
    for its plots' names."""
    loaded = "[name for name in ('matplotlib', 'faster_rcnn.export') if name in sys.modules]"
    code = "import contextlib, io, sys\n"
    code += "from faster_rcnn.cli import main\n"
    code += "for argv in (['--help'], ['train', '--help'], ['data', '--data', 'synthetic:2']):\n"
    code += "    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
    code += "        main(argv)\n"
    code += f"print({loaded})\n"
    code += "import faster_rcnn.evaluate\n"
    code += f"print({loaded})\n"
    code += "faster_rcnn.evaluate.write_recall_plots\n"
    code += f"print({loaded})\n"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.splitlines() == ["[]", "[]", "['matplotlib']"]


def test_every_public_name_is_found_and_an_unknown_one_is_an_attribute_error():
    for name in faster_rcnn.__all__:
        assert getattr(faster_rcnn, name).__name__ == name
    assert set(faster_rcnn.__all__) <= set(dir(faster_rcnn))
    with pytest.raises(AttributeError, match="module 'faster_rcnn' has no attribute 'Nope'"):
        faster_rcnn.Nope  # noqa: B018


def test_dir_lists_the_public_names_and_submodules_not_the_file_s_own_helpers():
    import faster_rcnn.config  # a submodule: listed once imported

    listed = set(dir(faster_rcnn))
    assert set(faster_rcnn.__all__) | {"config", "__name__", "__all__"} <= listed
    assert (
        not {"import_module", "Any", "TYPE_CHECKING", "ModuleType", "annotations", "_HOMES"}
        & listed
    )


class InterruptedImport(importlib.abc.MetaPathFinder):
    """A finder that is interrupted, as by Ctrl-C, when asked for ``name``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def find_spec(self, name, path, target=None):
        if name == self.name:
            raise KeyboardInterrupt
        return None


def test_ctrl_c_while_the_command_line_imports_is_one_line(monkeypatch, capsys):
    monkeypatch.delitem(sys.modules, "faster_rcnn.cli", raising=False)
    monkeypatch.setattr(sys, "meta_path", [InterruptedImport("faster_rcnn.cli"), *sys.meta_path])
    assert program.main() == 130
    assert capsys.readouterr().err == "faster-rcnn: interrupted by SIGINT\n"


# A real SIGINT the moment NumPy is first imported, where PyTorch's extension imported it
# and swallowed the KeyboardInterrupt, leaving NumPy half-imported: the command ran on
# (here: its help). With torch 2.13 NumPy comes first from our own imports, so the hook
# below swallows it as the extension did.
# The child first takes Ctrl-C as a terminal's program has it: an ignored or blocked SIGINT
# is inherited across exec, and a test process that passed one on (seen once, under load,
# in a pytest worker) left the child deaf to its own signal: the help, status 0.
CTRL_C_IN_NUMPY_IMPORT = """
import importlib.abc, signal, sys

signal.signal(signal.SIGINT, signal.default_int_handler)
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})

class CtrlC(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "numpy":
            sys.meta_path.remove(self)
            try:
                signal.raise_signal(signal.SIGINT)
            except KeyboardInterrupt:
                pass  # swallowed, as PyTorch's extension does (NumPy may come first elsewhere)

sys.meta_path.insert(0, CtrlC())
sys.argv = ["faster-rcnn", "--help"]
from faster_rcnn.__main__ import main
sys.exit(main())
"""


def test_ctrl_c_while_pytorch_imports_numpy_is_held_and_ends_the_program_in_one_line():
    run = subprocess.run(
        [sys.executable, "-c", CTRL_C_IN_NUMPY_IMPORT], capture_output=True, text=True
    )
    assert (run.returncode, run.stdout, run.stderr) == (
        130,
        "",
        "faster-rcnn: interrupted by SIGINT\n",
    )


def test_output_piped_to_a_reader_that_stops_early_ends_quietly_as_cat_does():
    # `faster-rcnn data ... | head -1`: the reader closes the pipe before the command
    # writes; Python raises a broken pipe (it ignores SIGPIPE) in the command or at exit.
    command = [sys.executable, "-m", "faster_rcnn", "data", "--data", "synthetic:4"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()
    _, err = process.communicate(timeout=300)
    assert err.decode() == ""
    assert process.returncode == 128 + signal.SIGPIPE


# A hang-up (the terminal closing) while a command other than training runs; with
# "closed", stderr is that terminal, closed: the command's last line fails there (EIO).
HANG_UP_IN_A_COMMAND = """
import os, pty, signal, sys
from faster_rcnn import cli
from faster_rcnn.cli import data

if sys.argv[1] == "closed":
    master, slave = pty.openpty()
    os.dup2(slave, 2)
    os.close(master)
data.run = lambda args: signal.raise_signal(signal.SIGHUP)
sys.exit(cli.main(["data", "--data", "synthetic:4"]))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="no SIGHUP")
@pytest.mark.parametrize("terminal", ["open", "closed"])
def test_a_hang_up_outside_training_ends_the_command_in_one_line(terminal):
    command = [sys.executable, "-c", HANG_UP_IN_A_COMMAND, terminal]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300)
    said = "faster-rcnn: interrupted by SIGHUP\n" if terminal == "open" else ""
    assert (run.returncode, run.stdout, run.stderr) == (128 + signal.SIGHUP, "", said)
