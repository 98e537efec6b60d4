"""The one JSON Schema validator dssesign uses (trust roots, predicates), on jsonschema-rs.

Why jsonschema-rs rather than jsonschema: validation is linear in the document (jsonschema's
``uniqueItems`` compares every pair: 25 s for a 5,000-component SBOM), ``pattern`` runs on the
Rust regex crate (ECMA-262 ``$``, no backtracking), and the format checks are a fixed set chosen
here, never whatever optional packages happen to be importable (jsonschema's ``iri-reference``
turns into an Earley parser once ``rfc3987-syntax`` is installed, and importing jsonschema at all
then builds 38 grammars).

Errors come back as one `SchemaFailure`, picked like jsonschema's ``best_match`` (the shallowest
failure, ``anyOf``/``oneOf`` last, then the deepest branch inside them), with enough context to
name the JSON path and to honour a schema's own ``errorMessage``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import jsonschema_rs

#: A format check: True when the string is valid (non-strings never reach it).
FormatCheck = Callable[[str], bool]

_WEAK: Final = frozenset({"anyOf", "oneOf"})


@dataclass(frozen=True)
class SchemaFailure:
    """One schema failure: the keyword, its value in the schema, where, and on what."""

    keyword: str
    #: The keyword's value in the schema (the pattern, the type, the enum, ...).
    value: object
    #: Path to the failing value in the instance (member names and indexes).
    path: tuple[str | int, ...]
    instance: object
    #: jsonschema-rs's own wording.
    message: str
    #: The schema object holding the keyword, then those of the anyOf/oneOf it was found
    #: inside (innermost first), each with its instance path: where an ``errorMessage`` is
    #: looked up, as jsonschema's error lineage does.
    frames: tuple[tuple[Mapping[str, Any], tuple[str | int, ...]], ...]
    #: The failure is about a member name (``propertyNames``).
    under_property_names: bool = False

    @property
    def holder(self) -> Mapping[str, Any]:
        return self.frames[0][0] if self.frames else {}


class CompiledSchema:
    """A schema compiled once; `best_failure` validates an instance."""

    def __init__(
        self,
        schema: Mapping[str, Any],
        *,
        resources: Mapping[str, Mapping[str, Any]] | None = None,
        draft: int = 202012,
        formats: Mapping[str, FormatCheck] | None = None,
    ) -> None:
        import jsonschema_rs  # noqa: PLC0415 - a compiled extension, loaded when first needed

        self._root = schema
        self._documents: dict[str, Mapping[str, Any]] = dict(resources or {})
        own_id = schema.get("$id")
        if isinstance(own_id, str):
            self._documents.setdefault(_strip_fragment(own_id), schema)
        registry = (
            jsonschema_rs.Registry([(uri, dict(doc)) for uri, doc in self._documents.items()])
            if self._documents
            else None
        )
        validator_class = {
            202012: jsonschema_rs.Draft202012Validator,
            201909: jsonschema_rs.Draft201909Validator,
            7: jsonschema_rs.Draft7Validator,
        }[draft]
        self._validator: jsonschema_rs.Validator = validator_class(
            dict(schema),
            registry=registry,
            # With `formats` given, jsonschema-rs's compiled-in checks (a fixed set, the same on
            # every machine) run, `formats` overriding or adding names; without, none do.
            validate_formats=formats is not None,
            formats={name: check for name, check in (formats or {}).items()},
            ignore_unknown_formats=True,
            pattern_options=jsonschema_rs.RegexOptions(),
            offline=True,
        )

    def is_valid(self, instance: object) -> bool:
        return bool(self._validator.is_valid(instance))

    def best_failure(self, instance: object) -> SchemaFailure | None:
        """The failure a person should see first, or None when `instance` is valid."""
        if self._validator.is_valid(instance):
            return None
        return self._best(self._validator.iter_errors(instance))

    # --- picking and describing a failure ------------------------------------------------------

    def _best(self, errors: Iterable[jsonschema_rs.ValidationError]) -> SchemaFailure | None:
        best: jsonschema_rs.ValidationError | None = None
        rank: tuple[int, bool] | None = None
        for error in errors:
            mine = (-len(error.instance_path), _keyword(error) not in _WEAK)
            if rank is None or mine > rank:
                best, rank = error, mine
        if best is None:
            return None
        # anyOf / oneOf: descend into the branch that got furthest, unless that is a tie (then
        # the combinator itself is the clearest thing to say), as jsonschema's best_match does.
        wrappers: list[jsonschema_rs.ValidationError] = []
        while True:
            context = [e for branch in _context(best) for e in branch]
            if not context:
                break
            ranked = sorted(context, key=_depth_key)
            deepest = ranked[-1]
            if len(ranked) > 1 and _depth_key(ranked[-2]) == _depth_key(deepest):
                break
            wrappers.insert(0, best)
            best = deepest
        failure = self._describe(best)
        frames = list(failure.frames)
        for wrapper in wrappers:
            frames.extend(self._describe(wrapper).frames[:1])
        return SchemaFailure(
            keyword=failure.keyword,
            value=failure.value,
            path=failure.path,
            instance=failure.instance,
            message=failure.message,
            frames=tuple(frames),
            under_property_names=failure.under_property_names,
        )

    def _describe(self, error: jsonschema_rs.ValidationError) -> SchemaFailure:
        kind = error.kind
        path = tuple(error.instance_path)
        if kind.name == "propertyNames":
            inner = getattr(kind, "error", None)
            if inner is not None:
                described = self._describe(inner)
                return SchemaFailure(
                    keyword=described.keyword,
                    value=described.value,
                    path=path,
                    instance=described.instance,
                    message=described.message,
                    frames=described.frames,
                    under_property_names=True,
                )
        document, pointer = self._location(error)
        nodes = _walk(document, pointer)
        keyword = str(pointer[-1]) if pointer else kind.name
        complete = len(nodes) == len(pointer) + 1
        value = nodes[-1] if complete else None
        holder = nodes[-2] if complete and len(nodes) > 1 else None
        return SchemaFailure(
            keyword=keyword,
            value=value,
            path=path,
            instance=error.instance,
            message=error.message,
            frames=((holder, path),) if isinstance(holder, Mapping) else (),
        )

    def _location(
        self, error: jsonschema_rs.ValidationError
    ) -> tuple[Mapping[str, Any], list[str | int]]:
        """The schema document and JSON pointer of the failing keyword (resolved refs)."""
        absolute = error.absolute_keyword_location
        if isinstance(absolute, str) and "#" in absolute:
            base, fragment = absolute.split("#", 1)
            document = self._documents.get(base)
            if document is not None:
                return document, _pointer(fragment)
        return self._root, list(error.schema_path)


def _keyword(error: jsonschema_rs.ValidationError) -> str:
    path = error.schema_path
    return str(path[-1]) if path else str(error.kind.name)


def _depth_key(error: jsonschema_rs.ValidationError) -> tuple[int, bool]:
    return (-len(error.instance_path), _keyword(error) in _WEAK)


def _context(error: jsonschema_rs.ValidationError) -> Sequence[Sequence[Any]]:
    context = getattr(error.kind, "context", None)
    return context if isinstance(context, list) else []


def _strip_fragment(uri: str) -> str:
    return uri.split("#", 1)[0]


@functools.lru_cache(maxsize=4096)
def _pointer_cached(fragment: str) -> tuple[str | int, ...]:
    parts: list[str | int] = []
    for raw in fragment.split("/")[1:] if fragment.startswith("/") else []:
        token = raw.replace("~1", "/").replace("~0", "~")
        parts.append(int(token) if token.isascii() and token.isdigit() else token)
    return tuple(parts)


def _pointer(fragment: str) -> list[str | int]:
    return list(_pointer_cached(fragment))


def _walk(document: object, pointer: Sequence[str | int]) -> list[object]:
    """The nodes from the document root along `pointer` (shorter if the pointer breaks off)."""
    nodes: list[object] = [document]
    node = document
    for element in pointer:
        if isinstance(node, Mapping) and str(element) in node:
            node = node[str(element)]
        elif isinstance(node, list) and isinstance(element, int) and 0 <= element < len(node):
            node = node[element]
        else:
            break
        nodes.append(node)
    return nodes
