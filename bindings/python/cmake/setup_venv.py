"""Creates (once) the virtual environment the Python binding tests run in: python -m venv + pip.

Run by the ctest fixture python.venv, never at configure time, so that configuring needs no network.
A venv that already imports numpy >= 2.1 and pytest is reused, which keeps repeated runs fast.
"""
import subprocess
import sys
from pathlib import Path

REQUIREMENTS = ["numpy>=2.1", "pytest"]
CHECK = (
    "import numpy, pytest, sys; "
    "sys.exit(0 if tuple(int(p) for p in numpy.__version__.split('.')[:2]) >= (2, 1) else 1)"
)


def main() -> int:
    venv = Path(sys.argv[1])
    python = venv / "bin" / "python"
    if python.exists() and subprocess.run([str(python), "-c", CHECK]).returncode == 0:
        print(f"reusing {venv}")
        return 0
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q",
                    *REQUIREMENTS], check=True)
    return subprocess.run([str(python), "-c", CHECK]).returncode


if __name__ == "__main__":
    sys.exit(main())
