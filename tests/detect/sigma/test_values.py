"""Value semantics of the Sigma engine against the specification (rules and modifiers appendix).

Each case compiles a tiny rule and evaluates it on a positive and a benign event; through
``RuleFactory.check`` the engine's candidate index is checked to agree with the rule itself.
"""

from __future__ import annotations

import base64
import itertools
from typing import Any

import pytest

from tests.detect.sigma.conftest import RuleFactory, rule_yaml


def sel(body: str) -> str:
    """A one-selection detection with the given selection body (YAML, one line or block)."""
    lines = body.strip("\n").splitlines()
    return "sel:\n" + "\n".join("  " + line for line in lines) + "\ncondition: sel\n"


Case = tuple[str, dict[str, Any], bool]


def run_cases(rules: RuleFactory, detection: str, cases: list[tuple[dict[str, Any], bool]]) -> None:
    rule = rules.compile(detection)
    for fields, expected in cases:
        assert rules.check(rule, fields) is expected, (detection, fields)


# --------------------------------------------------------------------------- plain strings


@pytest.mark.parametrize(
    ("body", "fields", "expected"),
    [
        # Case-insensitive by default, whole-value equality.
        (r"Image: 'C:\Windows\System32\CMD.EXE'", {"Image": r"c:\windows\system32\cmd.exe"}, True),
        (r"Image: 'cmd.exe'", {"Image": "CMD.EXE"}, True),
        (r"Image: 'cmd.exe'", {"Image": r"C:\Windows\cmd.exe"}, False),  # not a substring search
        ("Name: 'ÄRGER'", {"Name": "ärger"}, True),
        ("Name: 'ärger'", {"Name": "ÄRGER"}, True),
        ("Name: 'abc'", {"Name": "abd"}, False),
        ("Name: 'abc'", {}, False),
        ("Name: 'abc'", {"Other": "abc"}, False),
        # `?` is exactly one character.
        ("Image: 'prog?.exe'", {"Image": "progA.exe"}, True),
        ("Image: 'prog?.exe'", {"Image": "PROGb.EXE"}, True),
        ("Image: 'prog?.exe'", {"Image": "prog.exe"}, False),
        ("Image: 'prog?.exe'", {"Image": "progAB.exe"}, False),
        # `*` is any number of characters, including none and newlines.
        ("Image: 'antivirus_V*.exe'", {"Image": "antivirus_V1.exe"}, True),
        ("Image: 'antivirus_V*.exe'", {"Image": "antivirus_V21.2.1.exe"}, True),
        ("Image: 'antivirus_V*.exe'", {"Image": "antivirus_V.exe"}, True),
        ("Image: 'antivirus_V*.exe'", {"Image": "antivirus_V1.dll"}, False),
        ("Image: 'antivirus_V*.exe'", {"Image": "my_antivirus_V1.exe"}, False),
        ("Text: 'a*b'", {"Text": "a\nline\nb"}, True),
        ("Text: 'a?b'", {"Text": "a\nb"}, True),
        ("Text: '*'", {"Text": ""}, True),
        ("Text: '*'", {"Text": "anything"}, True),
        ("Text: '*'", {}, False),
        ("Text: 'a*b*c'", {"Text": "AxxBxxC"}, True),
        ("Text: 'a*b*c'", {"Text": "axxcxxb"}, False),
        # Regex metacharacters in plain values are plain.
        ("Text: 'a.c'", {"Text": "abc"}, False),
        ("Text: 'a.c'", {"Text": "a.c"}, True),
        ("Text: '(x)[y]+'", {"Text": "(X)[Y]+"}, True),
    ],
)
def test_strings_and_wildcards(
    rules: RuleFactory, body: str, fields: dict[str, Any], expected: bool
) -> None:
    assert rules.matches(sel(body), fields) is expected


@pytest.mark.parametrize(
    ("body", "fields", "expected"),
    [
        # Plain backslash not followed by a wildcard: single or double notation.
        (r"P: 'a\b'", {"P": "a\\b"}, True),
        (r"P: 'a\\b'", {"P": "a\\b"}, True),
        (r"P: 'a\\b'", {"P": "a\\\\b"}, False),
        # Escaped wildcards are plain characters.
        (r"P: 'a\*b'", {"P": "a*b"}, True),
        (r"P: 'a\*b'", {"P": "axxb"}, False),
        (r"P: 'a\*b'", {"P": "ab"}, False),
        (r"P: 'a\?b'", {"P": "a?b"}, True),
        (r"P: 'a\?b'", {"P": "axb"}, False),
        # `\\*`: a backslash followed by a wildcard.
        (r"P: 'dir\\*'", {"P": "dir\\file.txt"}, True),
        (r"P: 'dir\\*'", {"P": "dir\\"}, True),
        (r"P: 'dir\\*'", {"P": "dirfile.txt"}, False),
        (r"P: 'dir\\*'", {"P": "dir*"}, False),
        (r"P: 'dir\\?'", {"P": "dir\\x"}, True),
        (r"P: 'dir\\?'", {"P": "dir\\xy"}, False),
        # `\\\*`: a backslash and a plain asterisk.
        (r"P: 'dir\\\*'", {"P": "dir\\*"}, True),
        (r"P: 'dir\\\*'", {"P": "dir\\file"}, False),
        # Three or four backslashes (not before a wildcard) are a double backslash.
        (r"P: 'a\\\\b'", {"P": "a\\\\b"}, True),
        (r"P: 'a\\\\b'", {"P": "a\\b"}, False),
        (r"P: 'a\\\b'", {"P": "a\\\\b"}, True),
        (r"P: 'a\\\b'", {"P": "a\\b"}, False),
        # Escapes survive modifiers.
        (r"P|contains: '\*'", {"P": "x*y"}, True),
        (r"P|contains: '\*'", {"P": "xy"}, False),
        (r"P|endswith: '\?'", {"P": "why?"}, True),
        (r"P|endswith: '\?'", {"P": "whyz"}, False),
    ],
)
def test_escaping(rules: RuleFactory, body: str, fields: dict[str, Any], expected: bool) -> None:
    assert rules.matches(sel(body), fields) is expected


# --------------------------------------------------------------------------- lists and maps


def test_map_is_and_list_is_or(rules: RuleFactory) -> None:
    run_cases(
        rules,
        sel("EventLog: Security\nEventID:\n  - 517\n  - 1102"),
        [
            ({"EventLog": "Security", "EventID": 517}, True),
            ({"EventLog": "security", "EventID": 1102}, True),
            ({"EventLog": "Security", "EventID": 4624}, False),
            ({"EventLog": "System", "EventID": 517}, False),
            ({"EventID": 517}, False),
        ],
    )


def test_list_of_maps_is_or_of_ands(rules: RuleFactory) -> None:
    detection = """
    sel:
      - Image|endswith: '\\example.exe'
        User: admin
      - Description|contains: 'Test executable'
    condition: sel
    """
    run_cases(
        rules,
        detection,
        [
            ({"Image": r"C:\x\EXAMPLE.exe", "User": "Admin"}, True),
            ({"Image": r"C:\x\example.exe", "User": "guest"}, False),
            ({"Description": "a test executable here"}, True),
            ({"Description": "benign", "Image": r"C:\x\other.exe"}, False),
        ],
    )


def test_field_list_of_strings_or(rules: RuleFactory) -> None:
    run_cases(
        rules,
        sel("Image|endswith:\n  - '\\a.exe'\n  - '\\b.exe'"),
        [
            ({"Image": r"C:\A.exe"}, True),
            ({"Image": r"C:\b.EXE"}, True),
            ({"Image": r"C:\c.exe"}, False),
        ],
    )


# --------------------------------------------------------------------------- keywords


def test_keywords_list_is_or_substring_over_all_values(rules: RuleFactory) -> None:
    detection = """
    keywords:
      - 'event::clear'
      - 'svchost.exe -n evil'
    condition: keywords
    """
    run_cases(
        rules,
        detection,
        [
            ({"CommandLine": "mimikatz EVENT::Clear exit"}, True),
            ({"A": "x", "B": "run svchost.exe -n evil now"}, True),
            ({"A": ["x", "event::clear"]}, True),
            ({"CommandLine": "event::drop"}, False),
            # Field names are not searched, only values.
            ({"event::clear": "nothing"}, False),
            ({}, False),
        ],
    )


def test_keywords_all_modifier(rules: RuleFactory) -> None:
    detection = """
    keywords:
      '|all':
        - 'OabVirtualDirectory'
        - ' -ExternalUrl '
    condition: keywords
    """
    run_cases(
        rules,
        detection,
        [
            ({"Payload": "Set-OabVirtualDirectory -ExternalUrl http://x"}, True),
            ({"A": "oabvirtualdirectory", "B": "x -externalurl y"}, True),
            ({"Payload": "Set-OabVirtualDirectory -InternalUrl http://x"}, False),
            ({"Payload": "x -ExternalUrl y"}, False),
        ],
    )


def test_keyword_numbers_and_non_string_values(rules: RuleFactory) -> None:
    run_cases(
        rules,
        "keywords:\n  - 1102\ncondition: keywords",
        [
            ({"EventID": 1102}, True),
            ({"Message": "log cleared (1102)"}, True),
            ({"EventID": 1103}, False),
        ],
    )
    run_cases(
        rules,
        "keywords:\n  - 'true'\ncondition: keywords",
        [({"Flag": True}, True), ({"Flag": False}, False)],
    )


def test_keywords_and_fields_combined(rules: RuleFactory) -> None:
    detection = """
    keywords:
      - 'evil'
    sel:
      EventID: 4104
    condition: sel and keywords
    """
    run_cases(
        rules,
        detection,
        [
            ({"EventID": 4104, "ScriptBlockText": "do Evil things"}, True),
            ({"EventID": 4104, "ScriptBlockText": "benign"}, False),
            ({"EventID": 4103, "ScriptBlockText": "evil"}, False),
        ],
    )


def test_keyword_with_wildcard(rules: RuleFactory) -> None:
    run_cases(
        rules,
        "keywords:\n  - 'foo*bar'\ncondition: keywords",
        [({"A": "fooXXbar"}, True), ({"A": "FOObar"}, True), ({"A": "foo-baz"}, False)],
    )


# --------------------------------------------------------------------------- null and empty


def test_null_means_absent_or_null(rules: RuleFactory) -> None:
    run_cases(
        rules,
        sel("EventID: 4738\nPasswordLastSet: null"),
        [
            ({"EventID": 4738}, True),
            ({"EventID": 4738, "PasswordLastSet": None}, True),
            ({"EventID": 4738, "PasswordLastSet": ""}, False),
            ({"EventID": 4738, "PasswordLastSet": "2024-01-01"}, False),
        ],
    )


def test_empty_string_is_not_null(rules: RuleFactory) -> None:
    run_cases(
        rules,
        sel("FieldB: ''"),
        [
            ({"FieldB": ""}, True),
            ({"FieldB": None}, False),
            ({}, False),
            ({"FieldB": " "}, False),
            ({"FieldB": "x"}, False),
        ],
    )


def test_not_null_via_negated_selection(rules: RuleFactory) -> None:
    detection = """
    selection:
      EventID: 4738
    filter:
      PasswordLastSet: null
    condition: selection and not filter
    """
    run_cases(
        rules,
        detection,
        [
            ({"EventID": 4738, "PasswordLastSet": "x"}, True),
            ({"EventID": 4738, "PasswordLastSet": ""}, True),
            ({"EventID": 4738, "PasswordLastSet": None}, False),
            ({"EventID": 4738}, False),
        ],
    )


def test_null_or_empty_with_one_of(rules: RuleFactory) -> None:
    detection = """
    selection_main:
      FieldA: 'something'
    selection_empty1:
      FieldB: ''
    selection_empty2:
      FieldB: null
    condition: selection_main and 1 of selection_empty*
    """
    run_cases(
        rules,
        detection,
        [
            ({"FieldA": "something", "FieldB": ""}, True),
            ({"FieldA": "something"}, True),
            ({"FieldA": "something", "FieldB": "x"}, False),
            ({"FieldA": "other", "FieldB": ""}, False),
        ],
    )


# --------------------------------------------------------------------------- generic modifiers


@pytest.mark.parametrize(
    ("body", "fields", "expected"),
    [
        ("C|contains: 'WhoAmI'", {"C": "cmd /c whoami /all"}, True),
        ("C|contains: 'whoami'", {"C": "who ami"}, False),
        ("C|contains: 'a*c'", {"C": "xxabbbcxx"}, True),
        ("C|contains: 'a?c'", {"C": "xxabcxx"}, True),
        ("C|contains: 'a?c'", {"C": "xxacxx"}, False),
        ("C|startswith: 'ADM_'", {"C": "adm_smith"}, True),
        ("C|startswith: 'adm_'", {"C": "x_adm_smith"}, False),
        ("C|endswith: '\\CMD.exe'", {"C": r"C:\Windows\cmd.exe"}, True),
        ("C|endswith: '\\cmd.exe'", {"C": r"C:\Windows\cmd.exe.bak"}, False),
        ("C|endswith: '\\cmd.exe'", {"C": r"C:\Windows\xcmd.exe"}, False),
        ("C|startswith: 'a*z'", {"C": "abcz-tail"}, True),
        # cased: case-sensitive
        ("C|cased: 'CmD'", {"C": "CmD"}, True),
        ("C|cased: 'CmD'", {"C": "cmd"}, False),
        ("C|cased|contains: 'EvIl'", {"C": "xxEvIlxx"}, True),
        ("C|cased|contains: 'EvIl'", {"C": "xxevilxx"}, False),
        ("C|contains|cased: 'EvIl'", {"C": "xxEvIlxx"}, True),
        ("C|contains|cased: 'EvIl'", {"C": "xxEVILxx"}, False),
        ("C|cased|startswith: 'Ab?'", {"C": "AbXyz"}, True),
        ("C|cased|startswith: 'Ab?'", {"C": "aBXyz"}, False),
    ],
)
def test_contains_startswith_endswith_cased(
    rules: RuleFactory, body: str, fields: dict[str, Any], expected: bool
) -> None:
    assert rules.matches(sel(body), fields) is expected


def test_contains_all(rules: RuleFactory) -> None:
    run_cases(
        rules,
        sel("CommandLine|contains|all:\n  - ' -enc '\n  - ' -nop '"),
        [
            ({"CommandLine": "powershell -NoP -Enc AAA"}, True),
            ({"CommandLine": "powershell -nop -w hidden -enc AAA"}, True),
            ({"CommandLine": "powershell -ENC aaa -NOP x"}, True),
            ({"CommandLine": "powershell -enc AAA"}, False),
            ({"CommandLine": "powershell -nop AAA"}, False),
        ],
    )


def test_all_on_equality_and_on_list_values(rules: RuleFactory) -> None:
    run_cases(
        rules,
        sel("Groups|all:\n  - admins\n  - users"),
        [
            ({"Groups": ["Users", "x", "ADMINS"]}, True),
            ({"Groups": ["users"]}, False),
            ({"Groups": "admins"}, False),
        ],
    )


def test_all_in_map_with_other_fields(rules: RuleFactory) -> None:
    run_cases(
        rules,
        sel("Image|endswith: '\\net.exe'\nCommandLine|contains|all:\n  - user\n  - /add"),
        [
            ({"Image": r"C:\net.exe", "CommandLine": "net user bob pw /ADD"}, True),
            ({"Image": r"C:\net.exe", "CommandLine": "net user bob"}, False),
            ({"Image": r"C:\cmd.exe", "CommandLine": "net user bob /add"}, False),
        ],
    )


# --------------------------------------------------------------------------- encodings


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_base64_whole_value_and_contains(rules: RuleFactory) -> None:
    run_cases(
        rules,
        sel("V|base64: 'http://'"),
        [
            ({"V": b64(b"http://")}, True),
            ({"V": b64(b"http://") + "x"}, False),
            ({"V": b64(b"https://")}, False),
        ],
    )
    run_cases(
        rules,
        sel("V|base64|contains: 'abc'"),
        [({"V": "prefix " + b64(b"abc") + " suffix"}, True), ({"V": b64(b"abd")}, False)],
    )


def test_base64_is_case_sensitive_per_spec_encoding(rules: RuleFactory) -> None:
    # A base64 text differs from its case-swapped form; Sigma still compares case-insensitively,
    # so this documents the engine's (spec-conform) behaviour rather than base64 decoding.
    rule = rules.compile(sel("V|base64: 'abc'"))
    assert rules.check(rule, {"V": b64(b"abc").lower()}) is True
    assert rules.check(rule, {"V": b64(b"abd")}) is False


@pytest.mark.parametrize("value", ["http://", "Invoke-Mimikatz", "IEX (New-Object", "TVqQ"])
def test_base64offset_contains_all_three_offsets(rules: RuleFactory, value: str) -> None:
    rule = rules.compile(sel(f"V|base64offset|contains: '{value}'"))
    for prefix in ("", "a", "ab", "abc", "abcd", "abcde"):
        for suffix in ("", "z", "zz", " tail"):
            encoded = b64(f"{prefix}{value}{suffix}".encode())
            assert rules.check(rule, {"V": encoded}) is True, (prefix, value, suffix, encoded)
    for benign in ("completely benign text", value[:-1] + "?", "h" + value[1:].swapcase()):
        if benign == value:
            continue
        for prefix in ("", "a", "ab"):
            encoded = b64(f"{prefix}{benign}".encode())
            assert rules.check(rule, {"V": encoded}) is False, (prefix, benign, encoded)


@pytest.mark.parametrize(
    ("modifier", "codec"),
    [("utf16le", "utf-16-le"), ("wide", "utf-16-le"), ("utf16be", "utf-16-be")],
)
def test_utf16_base64offset_contains(rules: RuleFactory, modifier: str, codec: str) -> None:
    rule = rules.compile(sel(f"CommandLine|{modifier}|base64offset|contains: 'ping'"))
    # Prefixes of 0, 1 and 2 characters put the value at byte offsets 0, 2 and 4 (mod 3: 0, 2, 1).
    for prefix in ("", "a", "ab", "abc"):
        for suffix in ("", "x", " -n 1"):
            text = f"{prefix}ping{suffix}"
            encoded = b64(text.encode(codec))
            assert rules.check(rule, {"CommandLine": encoded}) is True, (text, encoded)
    for benign in ("pong", "PiNk", "echo hello"):
        for prefix in ("", "a", "ab"):
            encoded = b64(f"{prefix}{benign}".encode(codec))
            assert rules.check(rule, {"CommandLine": encoded}) is False, (benign, encoded)
    # The same text in UTF-8 is not the UTF-16 encoding.
    if codec == "utf-16-le":
        assert rules.check(rule, {"CommandLine": b64(b"xxping")}) is False


def test_utf16_with_bom_and_base64(rules: RuleFactory) -> None:
    expected = b64(b"\xff\xfe" + "cmd".encode("utf-16-le"))
    run_cases(
        rules,
        sel("V|utf16|base64: 'cmd'"),
        [
            ({"V": expected}, True),
            ({"V": b64("cmd".encode("utf-16-le"))}, False),
            ({"V": b64(b"\xff\xfe" + "cmx".encode("utf-16-le"))}, False),
        ],
    )


@pytest.mark.parametrize(
    ("modifier", "encoded", "benign"),
    [
        ("wide", "c\x00m\x00d\x00", "cmd"),
        ("utf16le", "c\x00m\x00d\x00", "\x00c\x00m\x00d"),
        ("utf16be", "\x00c\x00m\x00d", "c\x00m\x00d\x00"),
    ],
)
def test_utf16_without_base64(rules: RuleFactory, modifier: str, encoded: str, benign: str) -> None:
    run_cases(rules, sel(f"V|{modifier}: 'cmd'"), [({"V": encoded}, True), ({"V": benign}, False)])


DASHES = ["-", "/", "\u2013", "\u2014", "\u2015"]  # hyphen, slash, en dash, em dash, horizontal bar


def test_windash_every_dash_character(rules: RuleFactory) -> None:
    rule = rules.compile(sel("CommandLine|windash|contains: ' -enc '"))
    for dash in DASHES:
        assert rules.check(rule, {"CommandLine": f"powershell {dash}enc AAA"}) is True, dash
        assert rules.check(rule, {"CommandLine": f"powershell {dash}ENC AAA"}) is True, dash
    for other in ["+", "_", "\\", "", "~", "\u2212"]:  # \u2212 is the minus sign: not a windash
        assert rules.check(rule, {"CommandLine": f"powershell {other}enc AAA"}) is False, other


def test_windash_all_permutations_of_two_flags(rules: RuleFactory) -> None:
    rule = rules.compile(sel("CommandLine|windash|contains: '-s -t'"))
    for a, b in itertools.product(DASHES, repeat=2):
        assert rules.check(rule, {"CommandLine": f"x {a}s {b}t"}) is True, (a, b)
    assert rules.check(rule, {"CommandLine": "x -s +t"}) is False


def test_windash_with_all(rules: RuleFactory) -> None:
    run_cases(
        rules,
        sel("CommandLine|windash|contains|all:\n  - ' -a '\n  - ' -b '"),
        [
            ({"CommandLine": "x /a \u2014b y"}, True),
            ({"CommandLine": "x \u2015a z"}, False),
        ],
    )


# --------------------------------------------------------------------------- regular expressions


@pytest.mark.parametrize(
    ("body", "fields", "expected"),
    [
        ("V|re: 'ab+c'", {"V": "xxabbbcxx"}, True),  # unanchored search
        ("V|re: 'ab+c'", {"V": "ABBC"}, False),  # case-sensitive by default
        ("V|re: 'ab+c'", {"V": "ac"}, False),
        ("V|re: '^ab+c$'", {"V": "abc"}, True),
        ("V|re: '^ab+c$'", {"V": "xabc"}, False),
        ("V|re|i: 'ab+c'", {"V": "xxABBCxx"}, True),
        ("V|re|i: 'ab+c'", {"V": "xxACxx"}, False),
        ("V|re|ignorecase: '^[a-z]+$'", {"V": "HeLLo"}, True),
        ("V|re: '^[a-z]+$'", {"V": "HeLLo"}, False),
        ("V|re: '^foo$'", {"V": "bar\nfoo\nbaz"}, False),
        ("V|re|m: '^foo$'", {"V": "bar\nfoo\nbaz"}, True),
        ("V|re|m: '^foo$'", {"V": "bar\nfoox\nbaz"}, False),
        ("V|re|multiline: '^foo$'", {"V": "bar\nfoo"}, True),
        ("V|re: 'a.b'", {"V": "a\nb"}, False),
        ("V|re|s: 'a.b'", {"V": "a\nb"}, True),
        ("V|re|dotall: 'a.b'", {"V": "a\nb"}, True),
        ("V|re|s: 'a.b'", {"V": "a\n\nb"}, False),
        ("V|re|i|s: 'A.B'", {"V": "a\nb"}, True),
        ("V|re: 'a|b'", {"V": "xbx"}, True),
        ("V|re: '(foo|bar)\\d{2,3}'", {"V": "BAR12 bar123"}, True),
        ("V|re: '(foo|bar)\\d{2,3}'", {"V": "bar1"}, False),
        ("V|re: '[^a-z]x'", {"V": "ax"}, False),
        ("V|re: '[^a-z]x'", {"V": "1x"}, True),
        ("V|re: '\\\\cmd\\.exe'", {"V": r"C:\cmd.exe"}, True),
        ("V|re: '\\\\cmd\\.exe'", {"V": r"C:\cmdxexe"}, False),
        ("V|re: '^\\d+$'", {"V": 12345}, True),  # non-string values are matched as text
        ("V|re: '^\\d+$'", {"V": ["x", "42"]}, True),
        ("V|re: '^\\d+$'", {"V": ["x", "4 2"]}, False),
    ],
)
def test_regex(rules: RuleFactory, body: str, fields: dict[str, Any], expected: bool) -> None:
    assert rules.matches(sel(body), fields) is expected


def test_invalid_regex_is_a_failure(rules: RuleFactory) -> None:
    result = rules.load(rule_yaml(sel("V|re: '(unclosed'")))
    assert not result.rules
    assert len(result.failures) == 1
    assert "(unclosed" in result.failures[0].reason


# --------------------------------------------------------------------------- cidr


@pytest.mark.parametrize(
    ("network", "address", "expected"),
    [
        ("10.0.0.0/8", "10.1.2.3", True),
        ("10.0.0.0/8", "10.255.255.255", True),
        ("10.0.0.0/8", "11.0.0.1", False),
        ("10.0.0.0/8", "9.255.255.255", False),
        ("192.168.1.0/24", "192.168.1.77", True),
        ("192.168.1.0/24", "192.168.2.77", False),
        ("10.0.0.0/8", "not-an-ip", False),
        ("10.0.0.0/8", "", False),
        ("10.0.0.0/8", "10.1.2", False),
        ("10.0.0.0/8", "2001:db8::1", False),
        ("2001:db8::/32", "2001:db8::1", True),
        ("2001:db8::/32", "2001:DB8:ffff::1", True),
        ("2001:db8::/32", "2001:db9::1", False),
        ("2001:db8::/32", "10.0.0.1", False),
        ("2001:db8::/32", "garbage", False),
        ("fe80::/10", "fe80::1", True),
        ("fe80::/10", "fec0::1", False),
    ],
)
def test_cidr(rules: RuleFactory, network: str, address: str, expected: bool) -> None:
    assert rules.matches(sel(f"Ip|cidr: '{network}'"), {"Ip": address}) is expected


def test_cidr_list_and_absent_field(rules: RuleFactory) -> None:
    run_cases(
        rules,
        sel("Ip|cidr:\n  - '10.0.0.0/8'\n  - '172.16.0.0/12'"),
        [
            ({"Ip": "172.20.0.1"}, True),
            ({"Ip": "10.0.0.1"}, True),
            ({"Ip": "172.32.0.1"}, False),
            ({}, False),
            ({"Ip": None}, False),
            ({"Ip": ["8.8.8.8", "10.9.9.9"]}, True),
        ],
    )


# --------------------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    ("body", "value", "expected"),
    [
        ("N|lt: 10", 9, True),
        ("N|lt: 10", 10, False),
        ("N|lt: 10", "9", True),
        ("N|lt: 10", "10", False),
        ("N|lte: 10", 10, True),
        ("N|lte: 10", "10", True),
        ("N|lte: 10", 11, False),
        ("N|gt: 10", 11, True),
        ("N|gt: 10", "11", True),
        ("N|gt: 10", 10, False),
        ("N|gt: 10", -11, False),
        ("N|gte: 10", 10, True),
        ("N|gte: 10", "10", True),
        ("N|gte: 10", 9, False),
        ("N|gt: 1.5", 2, True),
        ("N|gt: 1.5", "1.25", False),
        ("N|lt: 0", -1, True),
        ("N|gt: 10", "not a number", False),
        ("N|gt: 10", "", False),
        ("N|gt: 10", None, False),
        ("N|gt: 10", True, False),
        ("N|gt: 10", [1, 20], True),
        ("N|gt: 10", [1, 2], False),
    ],
)
def test_numeric_comparisons(rules: RuleFactory, body: str, value: Any, expected: bool) -> None:
    assert rules.matches(sel(body), {"N": value}) is expected


def test_numeric_comparison_on_absent_field(rules: RuleFactory) -> None:
    assert rules.matches(sel("N|gte: 0"), {}) is False


@pytest.mark.parametrize(
    ("body", "value", "expected"),
    [
        ("EventID: 4688", 4688, True),
        ("EventID: 4688", "4688", True),
        ("EventID: 4688", 4689, False),
        ("EventID: 4688", "4689", False),
        ("EventID: 4688", "4688x", False),
        ("EventID: 4688", "x4688", False),
        ("EventID: 4688", [1, 4688], True),
        ("EventID: 4688", ["1", "4688"], True),
        ("EventID: 4688", None, False),
        ("EventID: '4688'", 4688, True),
        ("EventID: '4688'", "4688", True),
        ("EventID: '4688'", 46880, False),
        ("EventID: 0", 0, True),
        ("EventID: 0", False, False),
        ("EventID: 1", True, False),
    ],
)
def test_number_equality(rules: RuleFactory, body: str, value: Any, expected: bool) -> None:
    assert rules.matches(sel(body), {"EventID": value}) is expected


@pytest.mark.parametrize(
    ("body", "value", "expected"),
    [
        ("Flag: true", True, True),
        ("Flag: true", "true", True),
        ("Flag: true", "True", True),
        ("Flag: true", False, False),
        ("Flag: true", "false", False),
        ("Flag: true", "yes", False),
        ("Flag: true", None, False),
        ("Flag: false", False, True),
        ("Flag: false", "FALSE", True),
        ("Flag: false", True, False),
        ("Flag: false", None, False),
        ("Flag: false", 0, False),
    ],
)
def test_boolean_values(rules: RuleFactory, body: str, value: Any, expected: bool) -> None:
    assert rules.matches(sel(body), {"Flag": value}) is expected


# --------------------------------------------------------------------------- neq, exists


def test_neq_strings(rules: RuleFactory) -> None:
    run_cases(
        rules,
        sel("EventID: 1\nUser|neq: 'SYSTEM'"),
        [
            ({"EventID": 1, "User": "alice"}, True),
            ({"EventID": 1, "User": "system"}, False),
            ({"EventID": 1, "User": "SYSTEM"}, False),
            ({"EventID": 2, "User": "alice"}, False),
        ],
    )


def test_neq_list_differs_from_every_value(rules: RuleFactory) -> None:
    run_cases(
        rules,
        sel("User|neq:\n  - alice\n  - bob"),
        [({"User": "carol"}, True), ({"User": "Alice"}, False), ({"User": "bob"}, False)],
    )


def test_neq_numbers(rules: RuleFactory) -> None:
    run_cases(
        rules,
        sel("LogonType|neq: 3"),
        [
            ({"LogonType": 2}, True),
            ({"LogonType": "10"}, True),
            ({"LogonType": 3}, False),
            ({"LogonType": "3"}, False),
        ],
    )


def test_exists(rules: RuleFactory) -> None:
    run_cases(
        rules,
        sel("EventID: 4738\nPasswordLastSet|exists: true"),
        [
            ({"EventID": 4738, "PasswordLastSet": "x"}, True),
            # exists checks presence only, be the value empty or null.
            ({"EventID": 4738, "PasswordLastSet": ""}, True),
            ({"EventID": 4738, "PasswordLastSet": None}, True),
            ({"EventID": 4738}, False),
        ],
    )
    run_cases(
        rules,
        sel("EventID: 4738\nPasswordLastSet|exists: false"),
        [
            ({"EventID": 4738}, True),
            ({"EventID": 4738, "PasswordLastSet": None}, False),
            ({"EventID": 4738, "PasswordLastSet": ""}, False),
        ],
    )


# --------------------------------------------------------------------------- fieldref


@pytest.mark.parametrize(
    ("body", "fields", "expected"),
    [
        ("A|fieldref: B", {"A": "Admin", "B": "admin"}, True),
        ("A|fieldref: B", {"A": "admin", "B": "admin2"}, False),
        ("A|fieldref: B", {"A": "admin"}, False),
        ("A|fieldref: B", {"B": "admin"}, False),
        ("A|fieldref: B", {"A": 5, "B": "5"}, True),
        # contains/startswith/endswith: A contains / starts with / ends with the value of B.
        ("A|fieldref|contains: B", {"A": "xxAdminxx", "B": "admin"}, True),
        ("A|fieldref|contains: B", {"A": "admin", "B": "xxadminxx"}, False),
        ("A|fieldref|startswith: B", {"A": "abcdef", "B": "ABC"}, True),
        ("A|fieldref|startswith: B", {"A": "abc", "B": "abcdef"}, False),
        ("A|fieldref|startswith: B", {"A": "xabcdef", "B": "abc"}, False),
        ("A|fieldref|startswith: B", {"A": "defabc", "B": "abc"}, False),
        ("A|fieldref|endswith: B", {"A": "C:\\dir\\EVIL.exe", "B": "evil.exe"}, True),
        ("A|fieldref|endswith: B", {"A": "evil.exe", "B": "C:\\dir\\evil.exe"}, False),
        ("A|fieldref|endswith: B", {"A": "evil.exe.txt", "B": "evil.exe"}, False),
        ("A|fieldref|endswith: B", {"A": "evil.exe-x", "B": "evil.exe"}, False),
        # neq: the two fields differ.
        ("A|fieldref|neq: B", {"A": "x", "B": "y"}, True),
        ("A|fieldref|neq: B", {"A": "x", "B": "X"}, False),
    ],
)
def test_fieldref(rules: RuleFactory, body: str, fields: dict[str, Any], expected: bool) -> None:
    assert rules.matches(sel(body), fields) is expected


def test_fieldref_rejects_wildcards(rules: RuleFactory) -> None:
    result = rules.load(rule_yaml(sel("A|fieldref: 'B*'")))
    assert not result.rules
    assert "wildcard" in result.failures[0].reason.lower()


# --------------------------------------------------------------------------- expand


def test_expand_with_configured_placeholder(rules: RuleFactory) -> None:
    detection = sel("User|expand: '%Administrators%'\nHost|expand: 'srv-%Site%-*'")
    rule = rules.compile(
        detection, placeholders={"Administrators": ["alice", "BOB"], "Site": ["par", "ber"]}
    )
    assert rules.check(rule, {"User": "Alice", "Host": "srv-par-01"}) is True
    assert rules.check(rule, {"User": "bob", "Host": "SRV-BER-99"}) is True
    assert rules.check(rule, {"User": "carol", "Host": "srv-par-01"}) is False
    assert rules.check(rule, {"User": "alice", "Host": "srv-lon-01"}) is False


def test_expand_placeholder_not_configured_is_a_placeholder_failure(rules: RuleFactory) -> None:
    text = rule_yaml(
        sel("User|expand: '%Administrators%'"), rule_id="5ee8a1d1-0000-4000-8000-000000000001"
    )
    result = rules.load(text, placeholders={"Other": ["x"]})
    assert not result.rules
    [failure] = result.failures
    assert failure.kind == "placeholder"
    assert failure.rule_id == "5ee8a1d1-0000-4000-8000-000000000001"
    assert "Administrators" in failure.reason


def test_percent_without_expand_is_literal(rules: RuleFactory) -> None:
    run_cases(
        rules,
        sel("User: '%Administrators%'"),
        [({"User": "%administrators%"}, True), ({"User": "alice"}, False)],
    )


@pytest.mark.xfail(
    strict=True,
    reason="pySigma 2.0.1 SigmaString.insert_placeholders treats a backslash before %name% as a "
    "literal backslash, so the spec's `\\%plain%name%` example makes %plain% a placeholder",
)
def test_escaped_percent_with_expand(rules: RuleFactory) -> None:
    rule = rules.compile(sel(r"User|expand: '\%plain%name%'"), placeholders={"name": ["x"]})
    assert rules.check(rule, {"User": "%plainx"}) is True
    assert rules.check(rule, {"User": "%plain%name%"}) is False


# --------------------------------------------------------------------------- time parts


@pytest.mark.parametrize(
    ("body", "value", "expected"),
    [
        ("T|minute: 7", "2024-03-05T14:07:09Z", True),
        ("T|minute: 7", "2024-03-05T14:08:09Z", False),
        ("T|hour: 14", "2024-03-05T14:07:09Z", True),
        ("T|hour: 14", "2024-03-05T15:07:09Z", False),
        ("T|day: 5", "2024-03-05T14:07:09Z", True),
        ("T|day: 5", "2024-03-06T14:07:09Z", False),
        ("T|week: 10", "2024-03-05T14:07:09Z", True),  # ISO week 10 of 2024
        ("T|week: 10", "2024-03-12T14:07:09Z", False),
        ("T|month: 3", "2024-03-05T14:07:09Z", True),
        ("T|month: 3", "2024-04-05T14:07:09Z", False),
        ("T|year: 2024", "2024-03-05T14:07:09Z", True),
        ("T|year: 2024", "2023-03-05T14:07:09Z", False),
        ("T|hour: 14", "2024-03-05 14:07:09.123456", True),
        ("T|hour: 14", "not a date", False),
        ("T|hour|gte: 9", "2024-03-05T10:00:00Z", True),
        ("T|hour|gte: 9", "2024-03-05T08:59:59Z", False),
        ("T|hour|lt: 6", "2024-03-05T05:00:00Z", True),
        ("T|hour|lt: 6", "2024-03-05T06:00:00Z", False),
    ],
)
def test_time_modifiers(rules: RuleFactory, body: str, value: str, expected: bool) -> None:
    assert rules.matches(sel(body), {"T": value}) is expected


# --------------------------------------------------------------------------- list-valued events


@pytest.mark.parametrize(
    ("body", "value", "expected"),
    [
        ("F: 'b'", ["a", "B"], True),
        ("F: 'b'", ["a", "c"], False),
        ("F: 'b'", [], False),
        ("F|contains: 'vil'", ["good", "EVIL"], True),
        ("F|startswith: 'ev'", ["good", "evil"], True),
        ("F|startswith: 'ev'", ["good", "devil"], False),
        ("F|endswith: 'il'", ["ilx", "evil"], True),
        ("F: 'a*'", [1, 2, "abc"], True),
        ("F|cidr: '10.0.0.0/8'", ["1.1.1.1", "10.0.0.1"], True),
        ("F|re: '^x'", ["ax", "bx"], False),
        ("F: null", [], True),
        ("F: null", ["x"], False),
    ],
)
def test_list_event_values(rules: RuleFactory, body: str, value: Any, expected: bool) -> None:
    assert rules.matches(sel(body), {"F": value}) is expected
