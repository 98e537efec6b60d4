"""Subject regular expressions (a trust root's `subjectRegExp`), matched by RE2 in linear time.

The SAN a keyless identity rule is matched against is chosen by the signer, so the matching
engine must not backtrack: with a backtracking engine (Python's `re`) an expression that looks
harmless can be made to run for minutes by a hostile SAN, whatever structural rules it passed.
RE2 (google-re2) runs in time linear in the SAN for every expression.

Expressions keep Python's syntax and meaning, matched against the whole SAN. Python's own parser
reads the expression; this module writes that parse back out in RE2 syntax, so RE2 runs what
Python read (``{,3}``, ``\\Z``, octal and ``\\N{...}`` escapes, ``(?x)`` need no RE2 reading of
their own). Refused, because RE2 lacks it or the two engines would disagree:

* back-references and conditionals (``(?(1)a|b)``), look-ahead and look-behind;
* atomic groups ``(?>...)`` and possessive repetitions ``a*+``;
* ``\\b`` and ``\\B`` (Python's are Unicode word boundaries, RE2's ASCII ones; ``\\B`` also
  differs on an empty SAN);
* ``$`` anywhere but at the end of the expression, outside ``(?m)``: Python's ``$`` also matches
  just before a final newline, RE2's only at the very end (``\\Z`` is fine anywhere);
* character-class syntax Python itself flags as ambiguous (FutureWarning): ``[[:alpha:]]`` is a
  set of characters to Python but a named class to RE2 and POSIX; ``[a--b]``, ``[a&&b]``...;
* repetition counts over MAX_REPEAT, and expressions compiling to more than MAX_PROGRAM_SIZE
  RE2 instructions.

What depends on Unicode tables, which the two engines do not share (``\\d \\D \\w \\W \\s \\S``,
and case-insensitive matching: Python's ``(?i)i`` also matches the Turkish dotless and dotted
I, U+0131 and U+0130, RE2's does not), is handed to RE2 as the exact set of ASCII characters
Python's own matcher accepts for it; an expression that uses any of it therefore matches ASCII
SANs only (email and URI SANs are ASCII anyway).
"""

from __future__ import annotations

import functools
import re
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import re2

__all__ = ["MAX_PROGRAM_SIZE", "MAX_REPEAT", "SubjectPattern", "compile_subject_regexp"]

#: RE2 instructions an expression may compile to: a match costs at most about (SAN length x
#: program size) steps; at this size and a 512-character SAN, milliseconds.
MAX_PROGRAM_SIZE: Final = 20_000
#: RE2's own bound on a repetition count (``{n}``, ``{n,m}``).
MAX_REPEAT: Final = 1000
#: Memory RE2 may use for one expression (program and DFA cache); beyond it RE2 refuses to
#: compile, or falls back from its DFA to its (still linear) NFA while matching.
_MAX_MEM: Final = 2 << 20
#: Highest code point of the ASCII characters Unicode-dependent parts are reduced to.
_ASCII: Final = 0x7F


@dataclass(frozen=True, eq=False)
class SubjectPattern:
    """A compiled subjectRegExp: `matches(san)` matches the whole SAN without backtracking."""

    #: The expression as written in the trust root.
    pattern: str
    #: What RE2 runs: Python's parse of `pattern`, in RE2 syntax.
    translated: str
    #: Parts depend on Unicode tables (\\d, \\w, \\s, (?i)...): only ASCII SANs can match.
    ascii_only: bool
    regexp: re2._Regexp[str]

    def matches(self, text: str) -> bool:
        """Does the whole of `text` match? (False for text that is not valid Unicode.)"""
        if self.ascii_only and not text.isascii():
            return False
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: no certificate decodes to them
            return False
        return self.regexp.fullmatch(data) is not None

    @property
    def program_size(self) -> int:
        return self.regexp.programsize


@functools.lru_cache(maxsize=128)
def compile_subject_regexp(text: str) -> SubjectPattern:
    """Compile a subjectRegExp for RE2 (cached), or raise ValueError saying why it is refused."""
    from re import _compiler, _constants, _parser  # type: ignore[attr-defined]  # noqa: PLC0415 - on first use

    import re2  # noqa: PLC0415 - only trust roots with a subjectRegExp pay for loading RE2

    try:
        with warnings.catch_warnings():
            # Python warns about class syntax whose meaning will change ([[:alpha:]], [a--b]).
            warnings.simplefilter("error", FutureWarning)
            parsed = _parser.parse(text)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression ({exc})") from None
    except RecursionError:
        raise ValueError("groups are nested too deeply") from None
    except FutureWarning as exc:
        raise ValueError(
            f"ambiguous character class ({exc}): escape the '[' (or the doubled '-', '&', '~', "
            "'|') that Python warns about"
        ) from None
    writer = _Writer(_constants, _parser, _compiler)
    try:
        translated = writer.sequence(list(parsed.data), parsed.state.flags, tail=True)
    except RecursionError:
        raise ValueError("groups are nested too deeply") from None
    options = re2.Options()
    options.max_mem = _MAX_MEM
    options.log_errors = False
    options.never_capture = True
    try:
        regexp = re2.compile(translated, options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise ValueError(f"RE2 cannot compile it ({reason})") from None
    if regexp.programsize > MAX_PROGRAM_SIZE:
        raise ValueError(
            f"compiles to {regexp.programsize} RE2 instructions, more than the "
            f"{MAX_PROGRAM_SIZE} allowed (use smaller repetition counts)"
        )
    return SubjectPattern(
        pattern=text, translated=translated, ascii_only=writer.ascii_only, regexp=regexp
    )


def _char(code: int) -> str:
    """One character as an RE2 literal (letters and digits as themselves, for readability)."""
    if code < 0x80 and chr(code).isalnum():
        return chr(code)
    return f"\\x{{{code:x}}}"


def _ranges(codes: list[int]) -> str:
    """An RE2 character class matching exactly `codes` (sorted), or nothing when empty."""
    if not codes:
        return "[^\\x{0}-\\x{10ffff}]"
    spans: list[list[int]] = []
    for code in codes:
        if spans and spans[-1][1] == code - 1:
            spans[-1][1] = code
        else:
            spans.append([code, code])
    return "[" + "".join(_char(a) if a == b else f"{_char(a)}-{_char(b)}" for a, b in spans) + "]"


class _Writer:
    """Writes a Python parse tree (re._parser) in RE2 syntax, refusing what RE2 reads otherwise."""

    def __init__(self, constants: Any, parser: Any, compiler: Any) -> None:
        self.c = constants
        self.parser = parser
        self.compiler = compiler
        self.ascii_only = False

    def sequence(self, items: list[tuple[Any, Any]], flags: int, *, tail: bool) -> str:
        """`tail`: nothing follows the sequence but the end of the SAN."""
        last = len(items) - 1
        parts = []
        for index, (op, value) in enumerate(items):  # a loop: one stack frame less per group
            parts.append(self.item(op, value, flags, tail=tail and index == last))
        return "".join(parts)

    def item(self, op: Any, value: Any, flags: int, *, tail: bool) -> str:
        c = self.c
        if op is c.LITERAL or op is c.NOT_LITERAL or op is c.IN:
            if flags & c.SRE_FLAG_IGNORECASE or (
                op is c.IN and any(entry is c.CATEGORY for entry, _ in value)
            ):
                return self._ascii_set(op, value, flags)
            if op is c.LITERAL:
                return _char(value)
            if op is c.NOT_LITERAL:
                return f"[^{_char(value)}]"
            return self._set(value)
        if op is c.ANY:
            return "(?s:.)" if flags & c.SRE_FLAG_DOTALL else "[^\\n]"
        if op is c.AT:
            return self._at(value, flags, tail=tail)
        if op is c.BRANCH:
            alternatives = [self.sequence(list(alt), flags, tail=tail) for alt in value[1]]
            return "(?:" + "|".join(alternatives) + ")"
        if op is c.SUBPATTERN:
            _group, add_flags, del_flags, sub = value
            scoped = (flags | add_flags) & ~del_flags
            return "(?:" + self.sequence(list(sub), scoped, tail=tail) + ")"
        if op is c.MAX_REPEAT or op is c.MIN_REPEAT:
            # Greedy or lazy makes no difference to whether the whole SAN matches.
            low, high, sub = value
            open_ended = high is c.MAXREPEAT
            if low > MAX_REPEAT or (not open_ended and high > MAX_REPEAT):
                raise ValueError(f"repetition counts above {MAX_REPEAT} are not supported")
            body = self.sequence(list(sub), flags, tail=tail and not open_ended and high <= 1)
            return f"(?:{body}){{{low},{'' if open_ended else high}}}"
        if op is c.GROUPREF or op is c.GROUPREF_EXISTS:
            raise ValueError("back-references are not allowed")
        if op is c.ASSERT or op is c.ASSERT_NOT:
            raise ValueError("look-ahead/look-behind assertions are not allowed")
        if op is c.ATOMIC_GROUP or op is c.POSSESSIVE_REPEAT:
            raise ValueError("atomic groups and possessive repetitions are not supported")
        raise ValueError(f"{op} is not supported")  # pragma: no cover - no other opcode exists

    def _at(self, code: Any, flags: int, *, tail: bool) -> str:
        c = self.c
        multiline = bool(flags & c.SRE_FLAG_MULTILINE)
        if code is c.AT_BEGINNING_STRING:
            return "\\A"
        if code is c.AT_END_STRING:
            return "\\z"
        if code is c.AT_BEGINNING:
            return "(?m:^)" if multiline else "\\A"
        if code is c.AT_END:
            if multiline:
                return "(?m:$)"
            if not tail:
                raise ValueError(
                    "'$' is only allowed at the end of the expression (use \\Z, or (?m) for "
                    "line ends): Python also lets '$' match before a final newline, RE2 does not"
                )
            return "\\z"
        raise ValueError(
            "\\b and \\B are not supported (Python's word boundaries are Unicode, RE2's ASCII)"
        )

    def _set(self, entries: list[tuple[Any, Any]]) -> str:
        c = self.c
        parts: list[str] = []
        for op, value in entries:
            if op is c.NEGATE:
                parts.insert(0, "^")
            elif op is c.LITERAL:
                parts.append(_char(value))
            elif op is c.RANGE:
                parts.append(f"{_char(value[0])}-{_char(value[1])}")
            else:  # pragma: no cover - categories go to _ascii_set; nothing else exists
                raise ValueError(f"{op} in a character class is not supported")
        return "[" + "".join(parts) + "]"

    def _ascii_set(self, op: Any, value: Any, flags: int) -> str:
        """The ASCII characters Python's matcher accepts for this one-character item."""
        self.ascii_only = True
        state = self.parser.State()
        state.flags = flags
        single = self.compiler.compile(self.parser.SubPattern(state, [(op, value)]), flags)
        return _ranges([code for code in range(_ASCII + 1) if single.fullmatch(chr(code))])
