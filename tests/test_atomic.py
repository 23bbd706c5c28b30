import os
import stat

import pytest

from dpcl.atomic import write_json, write_text


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_atomic_files_honour_the_umask(tmp_path, umask, mode):
    # A temporary file is created 0600 whatever the umask; the renamed result must read like any
    # file the user writes, so a team's other accounts can read reports/metrics.json.
    old = os.umask(umask)
    try:
        write_json(tmp_path / "metrics.json", {"sdri": 1.0})
        write_text(tmp_path / "scores.csv", "a,b\n")
    finally:
        os.umask(old)
    for name in ("metrics.json", "scores.csv"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "scores.csv"]  # no leftovers
