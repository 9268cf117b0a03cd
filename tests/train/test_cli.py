"""The `dqnfast` console script's dispatch and its errors."""
import subprocess
import sys

from dqnfast import cli


def test_help_and_unknown_command(capsys):
    assert cli.main([]) == 2
    assert "train" in capsys.readouterr().out
    assert cli.main(["--help"]) == 0
    assert cli.main(["fly"]) == 2
    assert "unknown command 'fly'" in capsys.readouterr().err


def test_a_missing_optional_dependency_gets_a_clear_message(tmp_path):
    # torch made unimportable in a subprocess: `dqnfast train` must say what to install, not crash
    blocker = tmp_path / "torch.py"
    blocker.write_text("raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n")
    code = "import sys; from dqnfast import cli; sys.exit(cli.main(['train', '--total-steps', '10']))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={"PYTHONPATH": f"{tmp_path}:{':'.join(sys.path)}"})
    assert r.returncode == 2, r.stderr
    assert "needs torch, which is not installed" in r.stderr and "Traceback" not in r.stderr
