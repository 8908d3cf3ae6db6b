"""`textclf serve`, `textclf models list | rollback | export-tflite | keygen` and
`textclf audit verify`."""

from __future__ import annotations

import argparse
import logging
import pathlib
import sys
from typing import Any, Optional

from pipeline.config import PipelineConfig
from pipeline.notifications import notify


def serve(config: PipelineConfig, store_root: str) -> int:
    """Runs the model server over `store_root` until SIGINT/SIGTERM."""
    # pylint: disable=import-outside-toplevel
    from serving.auth import AuthConfigError, Authenticator
    from serving.signing import KeyFileError
    from serving.tls import TlsConfigError, uvicorn_tls_options

    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        # Keys and certificates first: a bad one stops here, before TensorFlow loads or a port
        # is bound.
        authenticator = Authenticator.from_settings(config.serving.jwt)
        tls_options = uvicorn_tls_options(config.serving)
        from serving import server

        server.serve(store_root, config.model_name, config.serving, authenticator, tls_options,
                     lambda event, summary, details: notify(config.notifications, event, summary,
                                                            details))
    except (KeyFileError, AuthConfigError, TlsConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def models(config: PipelineConfig, store_root: str, args: argparse.Namespace) -> int:
    """Lists the versions in `store_root`, or rolls back; one line of error on failure."""
    # pylint: disable=import-outside-toplevel
    from serving.signing import KeyFileError, load_verify_key
    from serving.store import ModelStore, StoreError

    if args.action == "export-tflite":
        return _export_tflite(config, store_root, args.version)
    store = ModelStore(store_root, config.model_name)
    try:
        verify_key = load_verify_key(config.serving.verify_key_file)
        if args.action == "list":
            return _list(store, config, verify_key, args.server)
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


def _export_tflite(config: PipelineConfig, store_root: str, number: int) -> int:
    """`models export-tflite VERSION`: one line per variant, one line of error on failure."""
    # pylint: disable=import-outside-toplevel
    from lite.export import summary_line
    from lite.graph import NotConvertible
    from lite.layout import NO_EXPORT
    from lite.published import export_published
    from serving.signing import KeyFileError
    from serving.store import StoreError

    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.INFO)  # each variant's progress, as a run logs it
    try:
        version, report = export_published(config, store_root, number)
    except (StoreError, KeyFileError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except NotConvertible as error:
        print(f"error: {NO_EXPORT}: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # the store or the examples: a full disk, a permission
        print(f"error: {error}", file=sys.stderr)
        return 1
    for variant, figures in report["variants"].items():
        print(("shipped " if figures["shipped"] else "refused ") + summary_line(variant, figures))
    print(f"version {version.number}: {len(report['shipped'])} TFLite variant(s) in "
          f"{version.path}/tflite, manifest {'signed' if version.signed else 'unsigned'}")
    return 0


def audit_verify(path: str) -> int:
    """`textclf audit verify`: 0 when the chain holds (a torn last line is only a warning)."""
    from serving.audit import verify  # pylint: disable=import-outside-toplevel

    if not path:
        print("error: no audit log: pass --log or set serving.audit.path", file=sys.stderr)
        return 2
    verdict = verify(path)
    if verdict.problem:
        print(f"error: {verdict.problem} ({verdict.records} record(s) verify before it)",
              file=sys.stderr)
        return 1
    print(f"{path}: {verdict.records} record(s), chain intact"
          + ("; the last line is torn (a crash mid-write) and is cut off when the server next "
             "opens the log" if verdict.torn_tail else ""))
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


def _list(store, config: PipelineConfig, verify_key, server_url: Optional[str]) -> int:
    """Every version, newest first: the store's view, its rollout stage and traffic share, and
    with `server_url` the server's own."""
    # pylint: disable=import-outside-toplevel
    from serving.store import VersionRefused, verify_version
    from serving.status import ServerStatusError, served_versions

    versions = store.versions()
    if not versions:
        print(f"no versions in {store.model_dir}")
        return 0
    server_states: dict[int, tuple[str, str]] = {}
    if server_url:
        try:
            server_states = served_versions(server_url, config.model_name)
        except ServerStatusError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    rows = []
    for version in reversed(versions):
        if version.rejected:
            state, note = "rejected", ""
        elif version.problem:
            state, note = "unreadable", version.problem
        else:
            try:
                verify_version(version, verify_key)
                state, note = "verified", ""
            except VersionRefused as error:
                state, note = "refused", str(error)
        if version.number in server_states:
            state, note = server_states[version.number]
        rows.append((version, state, note))
    stages = _stages(store, config, [version.number for version, state, _ in rows
                                     if state in ("verified", "serving")])
    print("version\tstate\tstage\tsigned\tpublished_at\tdata_span\taccuracy\ttflite\tnote")
    for version, state, note in rows:
        manifest = version.manifest
        print(f"{version.number}\t{state}\t{stages.get(version.number, '-')}\t"
              f"{'yes' if version.signed else 'no'}\t"
              f"{_field(manifest.get('published_at'))}\t{_field(manifest.get('data_span'))}\t"
              f"{_accuracy(manifest.get('metrics'))}\t{_tflite(manifest.get('tflite'))}\t{note}")
    if not server_url:
        print("verified: its files and signature check out; only a server knows whether it "
              "loads and which version it serves: add --server URL", file=sys.stderr)
    return 0


def _stages(store, config: PipelineConfig, good: list[int]) -> dict[int, str]:
    """Each version's stage and share of requests, from the rollout state (without one, the
    newest good version takes all traffic)."""
    from serving import rollout  # pylint: disable=import-outside-toplevel

    state, problem = rollout.read_state(store.model_dir)
    if problem:
        print(f"warning: {problem}", file=sys.stderr)
    if state is None or config.serving.rollout.mode == "immediate":
        return {good[0]: "stable 100%"} if good else {}
    share = state.share(config.serving.rollout.steps)
    mode = config.serving.rollout.mode
    stages = {state.stable: f"stable {100 - share:g}%" if mode == "canary" else "stable 100%"}
    if state.candidate is not None:
        stages[state.candidate] = (f"canary {share:g}%" if mode == "canary"
                                   else f"shadow {share:g}% copied") + \
            (" (paused)" if state.paused else "")
    return stages


def _field(value: Any) -> str:
    """A manifest value on one line of the table, whatever a hand-edited manifest holds."""
    return "?" if value is None else " ".join(str(value).split())[:40]


def _tflite(entry: Any) -> str:
    """The shipped TFLite variants, comma-separated; - when the version has none."""
    shipped = entry.get("shipped") if isinstance(entry, dict) else None
    if isinstance(shipped, list) and shipped:
        return _field(",".join(str(variant) for variant in shipped))
    return "-"


def _accuracy(metrics: Any) -> str:
    accuracy = metrics.get("accuracy") if isinstance(metrics, dict) else None
    if isinstance(accuracy, (int, float)) and not isinstance(accuracy, bool):
        return f"{accuracy:.4f}"
    return "?"
