"""Tests for Vigil's logsource mapping (vigil.detect.sigma.mapping and logsources.yml).

The coverage and thor.yml tests read SigmaHQ's repository from ``../shared/sigma`` relative to
the repository root (never copied into this repository) and are skipped when it is absent.

Run as a script to list every distinct logsource of the SigmaHQ rule folders with its rule
count and what it resolves to::

    .venv/bin/python tests/detect/sigma/test_mapping.py
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from vigil.detect.sigma.errors import MappingError
from vigil.detect.sigma.mapping import (
    LOGSOURCE_KEYS,
    LogsourceEntry,
    LogsourceMapping,
    LogsourceSource,
    SourceCondition,
    default_mapping_path,
    hint_compatible,
    load_mapping,
    load_mapping_file,
)
from vigil.errors import VigilError

REPO_ROOT = Path(__file__).resolve().parents[3]
SIGMA_DIR = REPO_ROOT.parent / "shared" / "sigma"
RULE_FOLDERS = ("rules", "rules-emerging-threats", "rules-threat-hunting")
THOR_YML = SIGMA_DIR / "tests" / "thor.yml"
LOGSOURCE_JSON = SIGMA_DIR / "tests" / "logsource.json"

SYSMON = "Microsoft-Windows-Sysmon/Operational"

needs_sigma = pytest.mark.skipif(
    not (SIGMA_DIR / "rules").is_dir(),
    reason=f"SigmaHQ repository not found at {SIGMA_DIR} (coverage tests need ../shared/sigma)",
)
needs_thor = pytest.mark.skipif(
    not THOR_YML.is_file(), reason=f"SigmaHQ thor.yml not found at {THOR_YML}"
)

#: SigmaHQ logsources allowed not to resolve to any source, with the reason. Empty today:
#: every logsource used by the three rule folders resolves (many only through a hint).
UNRESOLVED_ALLOWLIST: dict[tuple[tuple[str, str], ...], str] = {}

#: Deliberate differences from thor.yml: (product, category) -> condition field -> extra values.
THOR_EXTRAS: dict[tuple[str | None, str], dict[str, set[Any]]] = {
    # Sysmon 26 (FileDeleteDetected) logs the same deletions as 23 without archiving the file.
    ("windows", "file_delete"): {"EventID": {26}},
}


@pytest.fixture(scope="module")
def mapping() -> LogsourceMapping:
    return load_mapping()


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------
# Loading the shipped file
# ------------------------------------------------------------------------------------------


def test_default_file_ships_next_to_the_module() -> None:
    path = default_mapping_path()
    assert path.name == "logsources.yml"
    assert path.is_file()


def test_default_mapping_loads(mapping: LogsourceMapping) -> None:
    assert len(mapping) > 100
    names = [e.name for e in mapping]
    assert len(names) == len(set(names))
    for entry in mapping:
        assert entry.logsource, entry.name
        assert set(entry.logsource) <= set(LOGSOURCE_KEYS)
        assert all(v == v.lower() for v in entry.logsource.values())
        assert entry.sources, f"{entry.name} is disabled in the shipped file"
        assert entry.origin == default_mapping_path()
        for source in entry.sources:
            assert source.conditions or source.hint, entry.name


def test_process_creation_entry(mapping: LogsourceMapping) -> None:
    entry = mapping["windows-process-creation"]
    assert dict(entry.logsource) == {"product": "windows", "category": "process_creation"}
    sysmon, security = entry.sources
    assert dict(sysmon.conditions) == {"Channel": (SYSMON,), "EventID": (1,)}
    assert not sysmon.fieldmappings
    assert not sysmon.hint
    assert dict(security.conditions) == {"Channel": ("Security",), "EventID": (4688,)}
    assert security.fieldmappings["Image"] == ("NewProcessName",)
    assert security.fieldmappings["ParentImage"] == ("ParentProcessName",)
    assert security.fieldmappings["ParentProcessId"] == ("ProcessId",)
    assert security.fieldmappings["IntegrityLevel"] == ("MandatoryLabel",)
    assert security.event_fields("Image") == ("NewProcessName",)
    assert security.event_fields("CommandLine") == ("CommandLine",)
    assert security.condition_items == (
        SourceCondition("Channel", ("Security",)),
        SourceCondition("EventID", (4688,)),
    )


def test_every_sysmon_event_id_has_a_category(mapping: LogsourceMapping) -> None:
    covered: set[int] = set()
    for entry in mapping:
        if entry.logsource.get("product") != "windows" or "category" not in entry.logsource:
            continue
        for source in entry.sources:
            if SYSMON in source.conditions.get("Channel", ()):
                covered.update(v for v in source.conditions["EventID"] if isinstance(v, int))
    assert covered == {*range(1, 30), 255}


def test_windows_catch_all_lists_every_windows_channel(mapping: LogsourceMapping) -> None:
    channels: set[str | int] = set()
    for entry in mapping:
        if entry.logsource.get("product") == "windows" and entry.name != "windows":
            for source in entry.sources:
                channels.update(source.conditions.get("Channel", ()))
    (catch_all,) = mapping["windows"].sources
    assert set(catch_all.conditions["Channel"]) == channels


def test_antivirus_maps_defender_fields(mapping: LogsourceMapping) -> None:
    resolution = mapping.resolve({"category": "antivirus"})
    defender, hint_only = resolution.sources
    assert 1116 in defender.conditions["EventID"]
    assert "ThreatName" in defender.event_fields("Signature")
    assert defender.event_fields("Filename") == ("Path",)
    assert hint_only.hint and not hint_only.conditions and not hint_only.fieldmappings


def test_dataclasses_are_frozen_and_hashable(mapping: LogsourceMapping) -> None:
    entry = mapping["windows-process-creation"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.name = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        entry.sources[0].conditions["EventID"] = (2,)  # type: ignore[index]
    assert len({*entry.sources, *entry.sources}) == 2
    assert hash(entry) == hash(mapping["windows-process-creation"])
    built = LogsourceSource(conditions={"EventID": (1,)})
    assert built == LogsourceSource(conditions={"EventID": (1,)})
    assert hash(built) == hash(LogsourceSource(conditions={"EventID": (1,)}))


# ------------------------------------------------------------------------------------------
# Resolution
# ------------------------------------------------------------------------------------------


def test_resolution_keeps_only_the_most_specific_entries(mapping: LogsourceMapping) -> None:
    resolution = mapping.resolve({"product": "windows", "category": "process_creation"})
    assert [e.name for e in resolution.entries] == ["windows-process-creation"]
    assert resolution and resolution.matched and not resolution.disabled
    assert len(resolution.sources) == 2
    assert [(e.name, s) for e, s in resolution.pairs] == [
        ("windows-process-creation", s) for s in mapping["windows-process-creation"].sources
    ]
    # only `product: windows` -> the catch-all, not every Windows entry
    assert [e.name for e in mapping.resolve({"product": "windows"}).entries] == ["windows"]


def test_resolution_is_case_insensitive_and_ignores_other_keys(
    mapping: LogsourceMapping,
) -> None:
    resolution = mapping.resolve(
        {"Product": "Windows", "service": "Security", "definition": "Requirements: audit"}
    )
    assert [e.name for e in resolution.entries] == ["windows-security"]
    assert dict(resolution.logsource) == {"product": "windows", "service": "security"}


def test_more_specific_rule_logsource_uses_the_less_specific_entry(
    mapping: LogsourceMapping,
) -> None:
    resolution = mapping.resolve(
        {"product": "kubernetes", "category": "application", "service": "audit"}
    )
    assert [e.name for e in resolution.entries] == ["kubernetes-audit"]


def test_unknown_logsource_resolves_to_nothing(mapping: LogsourceMapping) -> None:
    for logsource in ({"product": "plan9"}, {}, {"product": None}, {"definition": "x"}):
        resolution = mapping.resolve(logsource)
        assert not resolution
        assert resolution.entries == ()
        assert resolution.sources == ()
        assert not resolution.matched and not resolution.disabled


def test_entries_with_equal_specificity_are_ored() -> None:
    a = LogsourceEntry("a", {"product": "x"}, (LogsourceSource({"f": ("1",)}),))
    b = LogsourceEntry("b", {"category": "c"}, (LogsourceSource({"f": ("2",)}),))
    c = LogsourceEntry("c", {"product": "x", "category": "c"}, (LogsourceSource({"f": ("3",)}),))
    d = LogsourceEntry("d", {"product": "x", "service": "s"}, (LogsourceSource({"f": ("4",)}),))
    mapping = LogsourceMapping([a, b, c, d])
    assert [e.name for e in mapping.resolve({"product": "x", "category": "c"}).entries] == ["c"]
    both = mapping.resolve({"product": "x", "category": "c", "service": "s"})
    assert [e.name for e in both.entries] == ["c", "d"]
    assert [s.conditions["f"] for s in both.sources] == [("3",), ("4",)]
    assert [e.name for e in mapping.resolve({"product": "x"}).entries] == ["a"]
    with pytest.raises(MappingError):
        LogsourceMapping([a, a])


def test_hint_compatibility(mapping: LogsourceMapping) -> None:
    entry = {"product": "aws", "service": "cloudtrail"}
    assert hint_compatible(entry, {"product": "AWS", "service": "CloudTrail"})
    assert hint_compatible(entry, {"product": "aws", "service": "cloudtrail", "category": "x"})
    assert not hint_compatible(entry, {"product": "aws"})
    assert not hint_compatible(entry, {"product": "aws", "service": "guardduty"})
    assert not hint_compatible(entry, None)
    assert not hint_compatible(entry, {})
    resolution = mapping.resolve({"product": "aws", "service": "cloudtrail"})
    assert resolution.uses_hint
    assert resolution.accepts_hint({"product": "aws", "service": "cloudtrail"})
    assert not resolution.accepts_hint({"product": "windows"})
    # Windows categories have no hint source: a hint alone never makes an event Sysmon.
    process_creation = mapping.resolve({"product": "windows", "category": "process_creation"})
    assert not process_creation.uses_hint
    assert not process_creation.accepts_hint({"product": "windows", "category": "process_creation"})


def test_hint_only_products_have_no_event_conditions(mapping: LogsourceMapping) -> None:
    for logsource in (
        {"product": "aws", "service": "cloudtrail"},
        {"product": "okta", "service": "okta"},
        {"category": "proxy"},
        {"category": "webserver"},
        {"product": "zeek", "service": "dns"},
        {"product": "macos", "category": "process_creation"},
    ):
        (source,) = mapping.resolve(logsource).sources
        assert source.hint and not source.conditions, logsource


def test_linux_sysmon_and_auditd(mapping: LogsourceMapping) -> None:
    sources = mapping.resolve({"product": "linux", "category": "process_creation"}).sources
    assert dict(sources[0].conditions) == {
        "Channel": ("Linux-Sysmon/Operational",),
        "EventID": (1,),
    }
    assert sources[1].hint
    auditd = mapping.resolve({"product": "linux", "service": "auditd"}).sources
    assert {"SYSCALL", "EXECVE", "PATH", "PROCTITLE", "USER_CMD"} <= set(
        auditd[0].conditions["type"]
    )
    assert auditd[1].hint


# ------------------------------------------------------------------------------------------
# User files: extension, override, disabling
# ------------------------------------------------------------------------------------------


def test_user_file_overrides_adds_and_disables(tmp_path: Path) -> None:
    user = write(
        tmp_path,
        "mine.yml",
        """
version: 1
logsources:
  windows-process-creation:          # replaces the shipped entry
    logsource: {product: windows, category: process_creation}
    sources:
      - conditions: {Channel: Microsoft-Windows-Sysmon/Operational, EventID: 1}
  my-edr-process-creation:           # same logsource, new name: OR-ed with it
    description: EDR export
    logsource: {product: windows, category: process_creation}
    sources:
      - conditions: {source: edr, event_type: [process_start, ProcessStart]}
        fieldmappings: {Image: [process.path, process.executable], CommandLine: process.cmd}
  windows-registry-set:              # disabled
    logsource: {product: windows, category: registry_set}
    sources: []
  acme-vpn:                          # a new product
    logsource: {product: acme, service: vpn}
    sources: [{hint: true}]
""",
    )
    mapping = load_mapping([user])
    default = load_mapping()
    assert len(mapping) == len(default) + 2
    assert [e.name for e in mapping][: len(default)] == [e.name for e in default]

    replaced = mapping["windows-process-creation"]
    assert len(replaced.sources) == 1 and replaced.origin == user

    resolution = mapping.resolve({"product": "windows", "category": "process_creation"})
    assert [e.name for e in resolution.entries] == [
        "windows-process-creation",
        "my-edr-process-creation",
    ]
    edr = resolution.sources[1]
    assert edr.conditions["event_type"] == ("process_start", "ProcessStart")
    assert edr.event_fields("Image") == ("process.path", "process.executable")
    assert edr.event_fields("CommandLine") == ("process.cmd",)
    assert mapping["my-edr-process-creation"].description == "EDR export"

    disabled = mapping.resolve({"product": "windows", "category": "registry_set"})
    assert not disabled and disabled.matched and disabled.disabled
    # the disabled entry still wins over the less specific `windows` catch-all
    assert [e.name for e in disabled.entries] == ["windows-registry-set"]

    assert mapping.resolve({"product": "ACME", "service": "vpn"}).accepts_hint(
        {"product": "acme", "service": "vpn"}
    )


def test_later_user_files_win(tmp_path: Path) -> None:
    template = """
version: 1
logsources:
  acme:
    logsource: {{product: acme}}
    sources: [{{conditions: {{vendor: {value}}}}}]
"""
    first = write(tmp_path, "1.yml", template.format(value="one"))
    second = write(tmp_path, "2.yml", template.format(value="two"))
    mapping = load_mapping([first, second])
    assert mapping["acme"].sources[0].conditions["vendor"] == ("two",)
    assert mapping["acme"].origin == second


def test_empty_user_file_logsources_is_allowed(tmp_path: Path) -> None:
    path = write(tmp_path, "empty.yml", "version: 1\nlogsources: {}\n")
    assert len(load_mapping([path])) == len(load_mapping())
    assert load_mapping_file(path) == []


# ------------------------------------------------------------------------------------------
# Validation errors: all collected, with the file path and the entry name
# ------------------------------------------------------------------------------------------


def test_errors_are_collected_with_path_and_entry(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "bad.yml",
        """
version: 1
extra: 1
logsources:
  unknown-key:
    logsource: {product: windows}
    sources: [{conditions: {EventID: 1}}]
    priority: 3
  bad-logsource:
    logsource: {product: windows, vendor: microsoft}
    sources: [{conditions: {EventID: 1}}]
  empty-logsource:
    logsource: {}
    sources: [{hint: true}]
  no-sources:
    logsource: {product: x}
  match-everything:
    logsource: {product: x}
    sources: [{conditions: {}}]
  bad-values:
    logsource: {product: x}
    sources:
      - conditions: {Initiated: true, Ratio: 1.5, Empty: [], Nested: {a: 1}}
        fieldmappings: {Image: 3, User: []}
        hint: "yes"
        filter: x
  "bad name!":
    logsource: {product: x}
    sources: [{hint: true}]
  sources-not-a-list:
    logsource: {product: x}
    sources: {hint: true}
  fine:
    logsource: {product: x}
    sources: [{hint: true}]
""",
    )
    with pytest.raises(MappingError) as caught:
        load_mapping([path])
    error = caught.value
    assert isinstance(error, VigilError)
    message = str(error)
    expected = [
        "unknown top-level key 'extra'",
        "entry 'unknown-key': unknown key 'priority'",
        "entry 'bad-logsource': logsource: unknown key 'vendor'",
        "entry 'empty-logsource': 'logsource' must be a non-empty mapping",
        "entry 'no-sources': missing 'sources'",
        "entry 'match-everything': sources[0]: needs non-empty 'conditions' or 'hint: true'",
        "entry 'bad-values': sources[0].conditions.Initiated: expected a string or integer, "
        "got bool (quote it",
        "entry 'bad-values': sources[0].conditions.Ratio: expected a string or integer, got float",
        "entry 'bad-values': sources[0].conditions.Empty: empty list",
        "entry 'bad-values': sources[0].conditions.Nested: expected a string or integer",
        "entry 'bad-values': sources[0].fieldmappings.Image: expected an event field name",
        "entry 'bad-values': sources[0].fieldmappings.User: expected an event field name",
        "entry 'bad-values': sources[0].hint: expected true or false, got str",
        "entry 'bad-values': sources[0]: unknown key 'filter'",
        "entry 'bad name!': invalid entry name",
        "entry 'sources-not-a-list': 'sources' must be a list, got dict",
    ]
    for fragment in expected:
        assert fragment in message, fragment
    assert len(error.errors) == len(expected)
    assert all(e.startswith(f"{path}: ") for e in error.errors)
    assert "'fine'" not in message
    assert message.startswith(f"invalid logsource mapping ({len(expected)} errors):")


def test_errors_from_several_files_are_reported_together(tmp_path: Path) -> None:
    missing_version = write(tmp_path, "a.yml", "logsources: {}\n")
    bad_yaml = write(tmp_path, "b.yml", "version: 1\nlogsources: {a: [\n")
    duplicate = write(
        tmp_path,
        "c.yml",
        "version: 1\nlogsources:\n"
        "  a: {logsource: {product: x}, sources: [{hint: true}]}\n"
        "  a: {logsource: {product: y}, sources: [{hint: true}]}\n",
    )
    wrong_version = write(tmp_path, "d.yml", "version: 2\nlogsources: {}\n")
    not_a_mapping = write(tmp_path, "e.yml", "- 1\n- 2\n")
    absent = tmp_path / "absent.yml"
    with pytest.raises(MappingError) as caught:
        load_mapping([missing_version, bad_yaml, duplicate, wrong_version, not_a_mapping, absent])
    errors = caught.value.errors
    assert len(errors) == 6
    assert errors[0] == f"{missing_version}: missing 'version' (expected 1)"
    assert errors[1].startswith(f"{bad_yaml}: invalid YAML:")
    assert errors[2].startswith(f"{duplicate}: invalid YAML:") and "duplicate key 'a'" in errors[2]
    assert errors[3] == f"{wrong_version}: unsupported version 2 (expected 1)"
    assert errors[4].startswith(f"{not_a_mapping}: expected a mapping")
    assert errors[5].startswith(f"{absent}: cannot read:")


def test_load_mapping_file_raises_for_one_file(tmp_path: Path) -> None:
    path = write(tmp_path, "x.yml", "version: 1\nlogsources: {a: {logsource: {product: x}}}\n")
    with pytest.raises(MappingError, match="entry 'a': missing 'sources'"):
        load_mapping_file(path)


# ------------------------------------------------------------------------------------------
# Coverage against the SigmaHQ rule folders
# ------------------------------------------------------------------------------------------

LogsourceKey = tuple[tuple[str, str], ...]


def _iter_rule_logsources(sigma_dir: Path) -> Iterator[Mapping[str, Any]]:
    loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for folder in RULE_FOLDERS:
        for path in sorted((sigma_dir / folder).rglob("*.yml")):
            with path.open(encoding="utf-8") as handle:
                for document in yaml.load_all(handle, Loader=loader):
                    if isinstance(document, dict) and isinstance(document.get("logsource"), dict):
                        yield document["logsource"]


def sigma_logsources(sigma_dir: Path = SIGMA_DIR) -> Counter[LogsourceKey]:
    """Every distinct (product, category, service) of the SigmaHQ rules, with rule counts."""
    counts: Counter[LogsourceKey] = Counter()
    for logsource in _iter_rule_logsources(sigma_dir):
        counts[
            tuple((k, str(logsource[k]).lower()) for k in LOGSOURCE_KEYS if logsource.get(k))
        ] += 1
    return counts


@pytest.fixture(scope="module")
def rule_logsources() -> Counter[LogsourceKey]:
    return sigma_logsources()


@needs_sigma
def test_every_sigmahq_logsource_resolves(
    mapping: LogsourceMapping, rule_logsources: Counter[LogsourceKey]
) -> None:
    assert len(rule_logsources) > 100
    unresolved = {
        key: count
        for key, count in rule_logsources.items()
        if not mapping.resolve(dict(key)) and key not in UNRESOLVED_ALLOWLIST
    }
    for key, count in sorted(unresolved.items()):
        print(f"unresolved: {dict(key)} ({count} rules)")
    assert not unresolved


@needs_sigma
def test_sigmahq_windows_logsources_use_event_conditions(
    mapping: LogsourceMapping, rule_logsources: Counter[LogsourceKey]
) -> None:
    """Windows rules must match EVTX events by their fields, not only through a hint."""
    hint_only = [
        dict(key)
        for key in rule_logsources
        if dict(key).get("product") == "windows"
        and not any(s.conditions for s in mapping.resolve(dict(key)).sources)
    ]
    assert hint_only == []


@needs_sigma
def test_sigmahq_logsource_json_windows_categories_and_services(
    mapping: LogsourceMapping,
) -> None:
    import json

    data = json.loads(LOGSOURCE_JSON.read_text(encoding="utf-8"))
    # `iis` is IIS's W3C text log, not an event log channel: rules for it use category webserver.
    allow = {("service", "iis")}
    missing = []
    for product in ("windows", "linux"):
        for kind in ("category", "service"):
            for name in data["legit"][product][kind]:
                if (kind, name) in allow:
                    continue
                if not mapping.resolve({"product": product, kind: name}):
                    missing.append((product, kind, name))
    assert missing == []


# ------------------------------------------------------------------------------------------
# Agreement with SigmaHQ's thor.yml
# ------------------------------------------------------------------------------------------


def _thor() -> dict[str, Any]:
    data = yaml.safe_load(THOR_YML.read_text(encoding="utf-8"))
    logsources: dict[str, Any] = data["logsources"]
    return logsources


def _thor_service_channels(thor: Mapping[str, Any]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for spec in thor.values():
        if "service" in spec and "sources" in spec:
            channels = {
                s.removeprefix("WinEventLog:")
                for s in spec["sources"]
                if s.startswith("WinEventLog:")
            }
            if channels:
                out[(spec["product"], spec["service"])] = channels
    return out


def _as_set(value: Any) -> set[Any]:
    return set(value) if isinstance(value, list) else {value}


@needs_thor
def test_thor_conditions_agree(mapping: LogsourceMapping) -> None:
    """For every thor.yml logsource with conditions: the sources on the same channel have the
    same condition values (EventIDs, EventType), the same channels and thor's field mappings."""
    thor = _thor()
    channels_of = _thor_service_channels(thor)
    groups: dict[tuple[str | None, str, frozenset[str]], dict[str, set[Any]]] = {}
    fieldmaps: dict[tuple[str | None, str, frozenset[str]], dict[str, str]] = {}
    for spec in thor.values():
        if "conditions" not in spec:
            continue
        rewrite = spec["rewrite"]
        channels = frozenset(channels_of[(rewrite["product"], rewrite["service"])])
        key = (spec.get("product"), spec["category"], channels)
        for cond_field, value in spec["conditions"].items():
            groups.setdefault(key, {}).setdefault(cond_field, set()).update(_as_set(value))
        fieldmaps.setdefault(key, {}).update(spec.get("fieldmappings", {}))

    assert len(groups) > 30
    for (product, category, channels), expected in groups.items():
        logsource = {"category": category, **({"product": product} if product else {})}
        sources = [
            s
            for s in mapping.resolve(logsource).sources
            if channels & set(s.conditions.get("Channel", ()))
        ]
        where = f"{logsource} on {sorted(channels)}"
        assert sources, f"no source for {where}"
        ours: dict[str, set[Any]] = {}
        for source in sources:
            assert channels <= set(source.conditions["Channel"]), where
            for cond_field, values in source.conditions.items():
                if cond_field != "Channel":
                    ours.setdefault(cond_field, set()).update(values)
            for sigma_field, event_field in fieldmaps[(product, category, channels)].items():
                assert event_field in source.event_fields(sigma_field), (where, sigma_field)
        extras = THOR_EXTRAS.get((product, category), {})
        want = {f: v | extras.get(f, set()) for f, v in expected.items()}
        assert ours == want, where


@needs_thor
def test_thor_windows_services_agree(mapping: LogsourceMapping) -> None:
    for (product, service), channels in _thor_service_channels(_thor()).items():
        ours: set[str | int] = set()
        for source in mapping.resolve({"product": product, "service": service}).sources:
            ours.update(source.conditions.get("Channel", ()))
        assert channels <= ours, (product, service)


@needs_thor
def test_thor_file_logsources_resolve(mapping: LogsourceMapping) -> None:
    for name, spec in _thor().items():
        if "conditions" in spec or "rewrite" in spec:
            continue
        logsource = {k: spec[k] for k in LOGSOURCE_KEYS if k in spec}
        assert mapping.resolve(logsource), name


def _report() -> None:  # pragma: no cover - manual helper
    mapping = load_mapping()
    counts = sigma_logsources()
    unresolved = 0
    for key, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        resolution = mapping.resolve(dict(key))
        how = ", ".join(e.name for e in resolution.entries) or "-"
        kinds = {"conditions" if s.conditions else "hint" for s in resolution.sources}
        if not resolution:
            unresolved += 1
        print(f"{count:5d}  {dict(key)!s:70}  {how}  [{'+'.join(sorted(kinds)) or 'NONE'}]")
    print(f"{len(counts)} distinct logsources, {unresolved} unresolved")


if __name__ == "__main__":  # pragma: no cover
    _report()
