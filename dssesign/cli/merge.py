"""`dssesign merge`: envelopes of one payload, signed apart, joined into one.

Identical decoded payload bytes and payloadType, or a refusal naming the input that differs;
the union of the signatures in argument order; bundles copied under the output's name. The
rules are `dssesign.sign.merge`'s; see docs/dual-control.md.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from typing import Any

from .._internal.text import escape_controls
from ..errors import ConfigError
from .common import add_json, print_json
from .countersign import SCHEMA_VERSION, planned_with, read_envelope


def register(commands: Any) -> None:
    """Add `merge`."""
    merge = commands.add_parser(
        "merge",
        help="join envelopes of one payload signed apart into one envelope",
        description="Envelopes with identical decoded payload bytes and payloadType become one "
        "with the union of their signatures, in argument order; a key's second signature "
        "(same signature bytes or same keyid) is dropped.",
    )
    merge.add_argument("envelopes", nargs="+", metavar="ENVELOPE")
    merge.add_argument("--out", required=True, metavar="FILE", help="write the envelope here")
    merge.add_argument(
        "--bundle-dir",
        metavar="DIR",
        help="copy the bundle of every kept signature here, named after --out (found beside "
        "its input envelope under that envelope's name, or in --bundles-from)",
    )
    merge.add_argument(
        "--bundles-from", metavar="DIR", help="with --bundle-dir: also look for bundles here"
    )
    add_json(merge)
    merge.set_defaults(handler=_cmd_merge)


def _cmd_merge(args: argparse.Namespace) -> int:
    from ..sign.bundles import bundle_stem, prepare_bundle_dir, write_bundles
    from ..sign.merge import merge_detailed, merged_bundles

    if len(args.envelopes) < 2:
        raise ConfigError("merge needs at least two envelopes")
    if args.bundles_from and not args.bundle_dir:
        raise ConfigError("--bundles-from needs --bundle-dir")
    with planned_with(args, [("ENVELOPE", path) for path in args.envelopes]) as outputs:
        envelopes = [read_envelope(path) for path in args.envelopes]
        result = merge_detailed(envelopes, names=args.envelopes)
        merged = result.envelope
        items: list[dict[str, Any]] = [
            {
                "keyid": merged.signatures[index].keyid,
                "from": args.envelopes[source],
                "index": position,
            }
            for index, (source, position) in enumerate(result.origins)
        ]
        missing: tuple[int, ...] = ()
        if args.bundle_dir:
            bundle_dir = prepare_bundle_dir(args.bundle_dir, outputs)
            found = merged_bundles(
                result,
                list(zip(args.envelopes, envelopes, strict=True)),
                bundle_stem(args.out),
                args.bundles_from,
            )
            for source in found.sources:
                outputs.add_input("a bundle read", source)  # never replaced by one written
            written = write_bundles(bundle_dir, found.files, outputs)
            missing = found.missing
            places = iter(written)
            for index, item in enumerate(items):
                item["bundle"] = None if index in missing else str(next(places))
        outputs.write(args.out, merged.to_json() + b"\n")
        outputs.publish()
    for index in missing:
        item = items[index]
        print(
            escape_controls(
                f"warning: no bundle found for signature {item['index'] + 1} of {item['from']} "
                f"(keyid {item['keyid'] or '(none)'}); none written for it"
            ),
            file=sys.stderr,
        )
    if args.json:
        print_json(
            {
                "schemaVersion": SCHEMA_VERSION,
                "out": args.out,
                "payloadType": merged.payload_type,
                "payloadSha256": hashlib.sha256(merged.payload).hexdigest(),
                "signatures": items,
                "dropped": [
                    {"from": args.envelopes[source], "index": position}
                    for source, position in result.dropped
                ],
            }
        )
        return 0
    print(
        f"merged {len(envelopes)} envelopes: {len(merged.signatures)} signature(s), "
        f"{len(result.dropped)} duplicate(s) dropped -> {escape_controls(args.out)}"
    )
    for item in items:
        line = f"  {item['keyid'] or '(no keyid)'}  from {item['from']} #{item['index'] + 1}"
        print(escape_controls(line))
        if item.get("bundle"):
            print(f"    bundle -> {escape_controls(item['bundle'])}")
    return 0
