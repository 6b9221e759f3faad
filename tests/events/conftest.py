"""Shared fixtures: the SigmaHQ regression data that sits beside the repository."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
REGRESSION_DATA = REPO_ROOT.parent / "shared" / "sigma" / "regression_data"

#: A Sysmon process-creation sample with 6 records in one EVTX chunk, and its JSON export.
MULTI_EVTX = (
    "rules-emerging-threats/2025/Malware/Shai-Hulud/"
    "proc_creation_win_mal_shai_hulud_malicious_node_bun_execution/"
    "5299fadf-f228-4526-8274-251db1960be9.evtx"
)
#: The WMI-Activity sample whose event carries UserData instead of EventData.
USERDATA_JSON = (
    "rules/windows/builtin/wmi/win_wmi_activity_nteventlogfile_cleareventlog/"
    "d4f1a2b3-7c8e-4d5f-b6a9-1e0c2d3f4e5b.json"
)


@pytest.fixture(scope="session")
def regression_data() -> Path:
    if not REGRESSION_DATA.is_dir():
        pytest.skip(f"SigmaHQ regression data not found at {REGRESSION_DATA}")
    return REGRESSION_DATA


@pytest.fixture(scope="session")
def multi_evtx(regression_data: Path) -> Path:
    path = regression_data / MULTI_EVTX
    if not path.is_file():
        pytest.skip(f"regression sample missing: {path}")
    return path
