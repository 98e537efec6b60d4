"""subjectRegExp matching: RE2 (linear, no backtracking) with Python's syntax and meaning.

The SAN a keyless identity rule matches is chosen by the signer. Expressions that Python's
backtracking engine runs for hours on a hostile SAN must load and match in linear time (or be
refused); expressions must mean what Python's `re.fullmatch` says they mean.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dssesign import trust as tr
from dssesign._internal import subject_regexp as sr
from dssesign.trust import IdentityRule
from tests.unit.trust.test_trust_root import ISSUER, load_doc, refused, sigstore_doc

#: Expressions that backtrack catastrophically in Python's `re` on a hostile SAN; several were
#: accepted by the structural checks RE2 replaced: (?i) makes `A` match what `a+` matches,
#: (?s) makes `.` match the newline that looked like a separator, and bounded repeats
#: (`a{0,8}`) did not count as open-ended however many followed each other.
CATASTROPHIC = [
    "(?i)" + "a+A" * 10 + "b",
    "(?i)(?:a|A)" + "(?:a|A)?" * 30 + "(?:a|A)*b",
    "(?s)" + ".*\\n" * 8 + "b",
    "(?s)(.*)+b",
    "a{0,8}" * 40 + "b",
    "(a+)+b",
    "(a*)*b",
    "(a|aa)*b",
    "(a|a)*b",
    "(.*)*b",
    "(?:[a-z]+)*@",
    ".*.*.*.*.*.*.*.*b",
    "x?" * 60 + "x" * 60,
    r"([a-zA-Z0-9])(([\-.]|[_]+)?([a-zA-Z0-9]+))*(@)[a-z0-9]+[.](([a-z]{2,3})|([a-z]{2,3}[.][a-z]{2,3}))",
]
#: SANs of the maximum length a subjectRegExp is run on, built to make backtracking engines
#: try every way of splitting them.
HOSTILE = [
    "a" * tr.MAX_SUBJECT_CHARS,
    "a" * (tr.MAX_SUBJECT_CHARS - 1) + "!",
    "aA" * (tr.MAX_SUBJECT_CHARS // 2),
    "\n" * (tr.MAX_SUBJECT_CHARS - 1) + "!",
    "x" * (tr.MAX_SUBJECT_CHARS - 1) + "!",
]


def test_catastrophic_expressions_load_and_match_in_linear_time() -> None:
    patterns = [tr.check_subject_regexp(text) for text in CATASTROPHIC]
    # Counted, not timed: RE2 does at most (SAN length x program size) steps, whatever the
    # expression, and every accepted program is bounded.
    for pattern in patterns:
        assert 0 < pattern.program_size <= sr.MAX_PROGRAM_SIZE, pattern.pattern
    # Timed as well, with a generous bound for slow CI machines: the whole loop takes
    # milliseconds with RE2, while Python's re does not finish several single cases in hours.
    start = time.monotonic()
    for pattern in patterns:
        for san in HOSTILE:
            assert not pattern.matches(san), (pattern.pattern, san[:20])
    assert time.monotonic() - start < 2.0
    # They still match what they should.
    assert patterns[0].matches("a" * 10 + "A" * 10 + "b")
    assert patterns[2].matches("\n" * 8 + "b")
    assert patterns[4].matches("a" * 320 + "b") and not patterns[4].matches("a" * 321 + "b")
    assert patterns[5].matches("a" * 500 + "b")
    assert patterns[13].matches("first.last@example.co.uk")


def test_catastrophic_expression_through_an_identity_rule() -> None:
    rule = IdentityRule(issuer=ISSUER, subject_regexp="(a+)+b")
    start = time.monotonic()
    assert not any(rule.matches_subject(san) for san in HOSTILE)
    assert time.monotonic() - start < 2.0  # generous: milliseconds with RE2
    assert rule.matches_subject("aaab") and not rule.matches_subject("aaab\n")
    # Over-long SANs never reach the engine; exact subjects are compared whatever their length.
    assert not rule.matches_subject("a" * tr.MAX_SUBJECT_CHARS + "b")
    long_subject = "a" * 2000
    assert IdentityRule(issuer=ISSUER, subject=long_subject).matches_subject(long_subject)
    # A rule built in memory with a refused expression matches nothing (the loader refuses it).
    assert not IdentityRule(issuer=ISSUER, subject_regexp="(a)\\1").matches_subject("aa")


def test_catastrophic_expressions_load_in_a_trust_root() -> None:
    identities = [{"issuer": ISSUER, "subjectRegExp": text} for text in CATASTROPHIC]
    root = load_doc(sigstore_doc(*identities))
    assert root.keyless is not None
    rules = root.keyless.identities
    assert [rule.subject_regexp for rule in rules] == CATASTROPHIC
    start = time.monotonic()
    assert not any(rule.matches_subject(san) for rule in rules for san in HOSTILE)
    assert time.monotonic() - start < 2.0  # generous: milliseconds with RE2
    assert tr.load_trust_root(tr.dump_trust_root(root)).keyless == root.keyless


def _certificate(san: str, issuer: str = ISSUER) -> x509.Certificate:
    """A self-signed certificate with a URI SAN and Fulcio's OIDC issuer extension (v1)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sigstore")])
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(minutes=10))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(san)]), critical=False
        )
        .add_extension(
            x509.UnrecognizedExtension(
                x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1"), issuer.encode()
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )


def test_verify_identity_policy_with_a_hostile_san() -> None:
    pytest.importorskip("sigstore")
    from sigstore.errors import VerificationError as SigstoreVerificationError

    from dssesign.verify import bundles as bv

    identities = [{"issuer": ISSUER, "subjectRegExp": text} for text in CATASTROPHIC]
    root = load_doc(sigstore_doc(*identities))
    assert root.keyless is not None
    policy = bv._IdentityPolicy(root.keyless.identities)
    start = time.monotonic()
    for san in ("a" * (tr.MAX_SUBJECT_CHARS - 1) + "!", "x" * (tr.MAX_SUBJECT_CHARS - 1) + "!"):
        with pytest.raises(SigstoreVerificationError):
            policy.verify(_certificate(san))
    assert time.monotonic() - start < 2.0  # generous: milliseconds with RE2
    policy.verify(_certificate("a" * 100 + "b"))
    assert "(a+)+b" in [rule.subject_regexp for rule, _ in policy.matched]


@pytest.mark.parametrize(
    ("regexp", "message"),
    [
        ("(x)\\1", "back-references are not allowed"),
        ("(?P<x>a)(?P=x)", "back-references are not allowed"),
        ("(a)?(?(1)b|c)", "back-references are not allowed"),
        ("(?=a)a", "look-ahead/look-behind"),
        ("(?!a)b", "look-ahead/look-behind"),
        ("(?<=a)b", "look-ahead/look-behind"),
        ("(?>a+)b", "atomic groups and possessive"),
        ("a*+b", "atomic groups and possessive"),
        ("\\bci\\b", "\\b and \\B are not supported"),
        ("a\\Bb", "\\b and \\B are not supported"),
        # Python's `$` also matches before a final newline: with more after it, the engines
        # would disagree (a$\n fully matches "a" and a newline in Python, never in RE2).
        ("a$\\n", "'$' is only allowed at the end"),
        ("(a$|b)c", "'$' is only allowed at the end"),
        ("(a$)+", "'$' is only allowed at the end"),
        # [[:alpha:]] is a set of characters to Python, a named class to RE2 and POSIX.
        ("[[:alpha:]]+", "ambiguous character class"),
        ("[a--z]", "ambiguous character class"),
        ("a{1001}", "repetition counts above 1000"),
        ("(?:a{100}){100}", "RE2 cannot compile it (invalid repetition size"),
        ("(?:.{0,1000})" * 4, "RE2 instructions, more than the 20000 allowed"),
        ("(unclosed", "not a valid regular expression"),
        ("(?u)a", None),  # accepted: Python's default for str patterns
        ("a" * (tr.MAX_REGEXP_CHARS + 1), "longer than 512 characters"),
    ],
)
def test_refused_expressions_say_why(regexp: str, message: str | None) -> None:
    if message is None:
        assert tr.check_subject_regexp(regexp).matches("a")
        return
    with pytest.raises(ValueError) as info:
        tr.check_subject_regexp(regexp)
    assert message in str(info.value)
    # On load, the refusal names the trust root path.
    error = refused(sigstore_doc({"issuer": ISSUER, "subjectRegExp": regexp}))
    assert error.path == "$.sigstore.identities[0].subjectRegExp", str(error)
    assert message in str(error)


@pytest.mark.parametrize(
    ("regexp", "matching", "not_matching"),
    [
        # Whole-string matching, alternation included.
        ("a|ab", ["a", "ab"], ["abc", "b", ""]),
        ("ci@example\\.com", ["ci@example.com"], ["ci@example.com\n", "xci@example.com"]),
        # `$` at the end and \Z: only the very end (never before a final newline, as fullmatch).
        ("a$", ["a"], ["a\n"]),
        ("a\\Z", ["a"], ["a\n"]),
        ("(a|b$)", ["a", "b"], ["b\n"]),
        ("^a", ["a"], ["\na"]),
        ("\\Aa\\Z", ["a"], ["a\n"]),
        # Inline flags, global and scoped.
        ("(?i)ci@example\\.com", ["CI@Example.COM", "ci@example.com"], ["ci@exampleXcom"]),
        ("(?i:ci)@x", ["Ci@x"], ["ci@X"]),
        ("(?i)ci(?-i:@X)", ["CI@X"], ["ci@x"]),
        ("(?i)[a-c]+", ["aBc", "ABC"], ["d", "abcd"]),
        ("(?i)[^a]", ["b", "!"], ["a", "A"]),
        ("a.b", ["a-b"], ["a\nb"]),
        ("(?s)a.b", ["a-b", "a\nb"], ["ab"]),
        ("(?s:.)x.", ["\nxy"], ["\nx\n"]),
        ("(?m)a$\nb", ["a\nb"], ["a\n\nb"]),
        ("(?m)a\n^b", ["a\nb"], ["ab"]),
        ("(?m)a$", ["a"], ["a\n"]),
        ("(?x) a b  # comment", ["ab"], ["a b"]),
        # Python syntax RE2 reads otherwise or not at all, handed over as Python read it.
        ("a{,2}b", ["b", "ab", "aab"], ["aaab", "a{,2}b"]),
        ("\\x41\\101\\N{DIGIT ONE}\\u0042", ["AA1B"], ["\\x41"]),
        ("[\\]]+", ["]]"], ["["]),
        ("a{2}?", ["aa"], ["a"]),
        ("é+", ["éé"], ["e"]),
        ("[^/]+", ["ü", "a b"], ["a/b"]),
        # \d \w \s: Python's Unicode classes, exact on ASCII; only ASCII SANs match.
        ("v\\d+", ["v1", "v42"], ["v", "va", "v\u0663"]),
        ("\\w+", ["a_1"], ["a-1", "\u00e9"]),
        ("a\\sb", ["a b", "a\tb", "a\x0bb", "a\x1cb"], ["ab", "a\u00a0b"]),
        ("[^\\d]", ["a"], ["1"]),
        ("[\\D]x", ["ax"], ["1x"]),
        ("[^\\W\\d]+", ["ab_"], ["a1"]),
        # (?i): Python folds i with the Turkish dotless and dotted I (U+0131, U+0130): exact
        # on ASCII text.
        ("(?i)\u0131", ["i", "I"], ["x"]),
        ("(?i)i", ["i", "I"], ["\u0131", "\u0130"]),
        ("(?i)k", ["k", "K"], ["\u212a"]),
    ],
)
def test_expressions_mean_what_python_says(
    regexp: str, matching: list[str], not_matching: list[str]
) -> None:
    pattern = tr.check_subject_regexp(regexp)
    python = re.compile(regexp)
    for san in matching:
        assert pattern.matches(san), (regexp, san)
        assert python.fullmatch(san), (regexp, san)
    for san in not_matching:
        assert not pattern.matches(san), (regexp, san)
        if san.isascii() or not pattern.ascii_only:
            assert not python.fullmatch(san), (regexp, san)


def test_unicode_table_dependent_expressions_match_ascii_sans_only() -> None:
    # Python's \d also matches Arabic-Indic digits and (?i)i the Turkish İ; RE2's tables differ,
    # so such expressions match ASCII SANs only (narrower than Python, never wider).
    for regexp, san in [("v\\d", "v\u0663"), ("(?i)i", "\u0130"), ("\\w+", "\u00e9")]:
        assert re.fullmatch(regexp, san)
        pattern = tr.check_subject_regexp(regexp)
        assert pattern.ascii_only and not pattern.matches(san)
    # Expressions without them match any SAN as Python does.
    plain = tr.check_subject_regexp("[^/]+@b\u00fccher\\.example")
    assert not plain.ascii_only and plain.matches("\u0663@b\u00fccher.example")
    # Text that is not valid Unicode (lone surrogates) never matches.
    assert not plain.matches("\ud800@b\u00fccher.example")


def test_compiled_expressions_are_cached() -> None:
    assert tr.check_subject_regexp("cached-[0-9]+") is tr.check_subject_regexp("cached-[0-9]+")
    rule = IdentityRule(issuer=ISSUER, subject_regexp="cached-[0-9]+")
    assert rule.matches_subject("cached-1")
    info = sr.compile_subject_regexp.cache_info()
    assert info.hits >= 2 and info.maxsize is not None


def test_refusals_do_not_log_to_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError):
        tr.check_subject_regexp("(?:b{100}){100}")
    assert capfd.readouterr().err == ""


# --- differential: RE2 against Python's re on generated expressions ---------------------------

_ATOMS = [
    "a", "b", "A", "i", "I", "\u0131", "\u00e9", "\n", "\\n", ".", "-", "_", "\\.",
    "[a-c]", "[^b]", "[^\\n]", "[K-k]", "[Z-a]", "\\d", "\\D", "\\w", "\\W", "\\s", "\\S",
    "[\\w-]", "[^\\d.]", "^", "$", "\\A", "\\Z", "(?i:a)", "(?-i:b)", "(?s:.)", "(?m:^)",
    "(?m:$)",
]  # fmt: skip
_QUANTIFIERS = ["", "", "", "*", "+", "?", "{2}", "{,2}", "{1,3}", "*?", "{0}"]
_TEXT = st.text(alphabet="abABcIi\u0131\u0130\u00e9\n1\u0663_-. \x0bK\u212az[`", max_size=6)


@st.composite
def _expressions(draw: st.DrawFn) -> str:
    def sequence(depth: int) -> str:
        parts = []
        for _ in range(draw(st.integers(1, 3))):
            if depth < 2 and draw(st.booleans()) and draw(st.booleans()):
                inner = sequence(depth + 1)
                if draw(st.booleans()):
                    inner += "|" + sequence(depth + 1)
                # Groups are not repeated: Python's re can take very long on some nested
                # repeats even on these short texts, which would only slow the test down.
                scope = draw(st.sampled_from(["", "?:", "?i:", "?s:", "?m:"]))
                parts.append(f"({scope}{inner})")
            else:
                parts.append(draw(st.sampled_from(_ATOMS)) + draw(st.sampled_from(_QUANTIFIERS)))
        return "".join(parts)

    flags = draw(st.sampled_from(["", "", "(?i)", "(?s)", "(?m)", "(?x)", "(?a)", "(?is)"]))
    return flags + sequence(0)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_expressions(), st.lists(_TEXT, min_size=1, max_size=12))
def test_re2_agrees_with_python(regexp: str, sans: list[str]) -> None:
    try:
        python = re.compile(regexp)
    except re.error:
        return
    try:
        pattern = tr.check_subject_regexp(regexp)
    except ValueError:
        return  # refused: documented differences only
    for san in sans:
        expected: Any = python.fullmatch(san) is not None
        if pattern.ascii_only and not san.isascii():
            expected = False  # narrower than Python, never wider
        assert pattern.matches(san) == expected, (regexp, san, pattern.translated)
