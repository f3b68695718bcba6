"""The soak, shortened for CI: 3 minutes of mixed calls, monitors and recordings while ctl
serve's AMI connection is cut and serve itself is restarted (SIGTERM and SIGKILL). The
hour-long run is `scripts/soak.py --minutes 60`."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO


def test_three_minutes_of_load_drops_and_restarts_lose_nothing() -> None:
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "soak.py"), "--minutes", "3"],
                            capture_output=True, text=True, timeout=600)
    summary = json.loads(result.stdout)
    assert result.returncode == 0, (summary, result.stderr[-2000:])
    assert summary["failures"] == []
    assert summary["lost_call_rows"] == 0 and summary["calls_not_ended"] == 0
    assert summary["sessions_left_active"] == 0 and summary["recordings_left_active"] == 0
    assert summary["placed"] >= 30 and summary["bridged"] >= 20
    assert summary["ami_drops"] >= 3 and summary["serve_restarts"] >= 2 and summary["serve_kills"] >= 1
    assert summary["monitors"] >= 1 and summary["recordings"] >= 10
