"""`textclf serve` and `textclf models list | rollback | keygen`."""

from __future__ import annotations

import argparse
import logging
import pathlib
import sys

from pipeline.config import PipelineConfig
from pipeline.notifications import notify


def serve(config: PipelineConfig, store_root: str) -> int:
    """Runs the model server over `store_root` until SIGINT/SIGTERM."""
    # pylint: disable=import-outside-toplevel
    from serving import server
    from serving.signing import KeyFileError

    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        server.serve(store_root, config.model_name, config.serving)
    except KeyFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def models(config: PipelineConfig, store_root: str, args: argparse.Namespace) -> int:
    """Lists the versions in `store_root`, or rolls back; one line of error on failure."""
    # pylint: disable=import-outside-toplevel
    from serving.signing import KeyFileError, load_verify_key
    from serving.store import ModelStore, StoreError

    store = ModelStore(store_root, config.model_name)
    try:
        verify_key = load_verify_key(config.serving.verify_key_file)
        if args.action == "list":
            return _list(store, verify_key)
        target = store.rollback(args.to, reason=args.reason, verify_key=verify_key)
    except (StoreError, KeyFileError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"version {target.number} of {config.model_name} serves again; newer versions are "
          f"marked rejected (servers pick this up at their next poll)")
    notify(config.notifications, "rollback",
           f"textclf {config.model_name}: rolled back to version {target.number}",
           {"model": config.model_name, "version": target.number, "store": store.model_dir,
            "reason": args.reason})
    return 0


def keygen(private_key: str, public_key: str) -> int:
    """Writes an Ed25519 key pair for signing pushed versions."""
    from serving.signing import generate_key_pair  # pylint: disable=import-outside-toplevel

    try:
        generate_key_pair(pathlib.Path(private_key), pathlib.Path(public_key))
    except FileExistsError:
        print(f"error: {private_key} exists; keygen never overwrites a key", file=sys.stderr)
        return 2
    print(f"private key: {private_key} (set serving.signing_key_file, or put its text in "
          f"TEXTCLF_SIGNING_KEY)\npublic key: {public_key} (set serving.verify_key_file where "
          "models are served)")
    return 0


def _list(store, verify_key) -> int:
    """Every version, newest first, with the state a server would give it."""
    from serving.store import VersionRefused, verify_version  # pylint: disable=import-outside-toplevel

    versions = store.versions()
    if not versions:
        print(f"no versions in {store.model_dir}")
        return 0
    serving_found = False
    print("version\tstate\tsigned\tpublished_at\tdata_span\taccuracy\tnote")
    for version in reversed(versions):
        state, note = "rejected", ""
        if not version.rejected:
            try:
                verify_version(version, verify_key)
                state = "good" if serving_found else "serving"
                serving_found = True
            except VersionRefused as error:
                state, note = "refused", str(error)
        accuracy = version.manifest.get("metrics", {}).get("accuracy")
        print(f"{version.number}\t{state}\t{'yes' if version.signed else 'no'}\t"
              f"{version.manifest.get('published_at', '?')}\t"
              f"{version.manifest.get('data_span', '?')}\t"
              f"{'?' if accuracy is None else f'{accuracy:.4f}'}\t{note}")
    return 0
