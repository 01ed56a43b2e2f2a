"""Development pins, read from the Pipfile's [dev-packages].

Used by noxfile.py and .ci/run, so that every pin has one home:
``python3 tools/pins.py nox uv`` prints ``nox==… uv==…``.
"""

import sys
import tomllib
from pathlib import Path
from typing import Dict, List

PIPFILE = Path(__file__).resolve().parent.parent / "Pipfile"


def dev_pins(pipfile: Path = PIPFILE) -> Dict[str, str]:
    """Package name -> requirement (``name==version``)."""
    with pipfile.open("rb") as handle:
        packages = tomllib.load(handle)["dev-packages"]
    return {name: f"{name}{spec}" for name, spec in packages.items()}


def requirements(*names: str) -> List[str]:
    """The pinned requirements of ``names``; an unknown name is an error."""
    pins = dev_pins()
    missing = [name for name in names if name not in pins]
    if missing:
        raise SystemExit(f"not pinned in {PIPFILE}: {', '.join(missing)}")
    return [pins[name] for name in names]


if __name__ == "__main__":
    print(" ".join(requirements(*sys.argv[1:])))
