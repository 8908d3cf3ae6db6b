"""`textclf rollout status | promote | pause | resume | abort`: a person overrides a rollout.

Every command changes `rollout.json` in the store under its writer lock; the servers (all
replicas) follow at their next poll. No TensorFlow: these are the commands of an incident.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from typing import Optional

from pipeline.config import PipelineConfig
from pipeline.notifications import notify
from serving import rollout
from serving.rollout import RolloutError, RolloutState
from serving.signing import KeyFileError, load_verify_key
from serving.store import ModelStore, StoreError


def run(config: PipelineConfig, store_root: str, args: argparse.Namespace) -> int:
    """One rollout command; one line of error (exit 2) when it cannot be done."""
    store = ModelStore(store_root, config.model_name)
    try:
        if args.action == "status":
            return _status(config, store, args.server)
        _change(config, store, args.action, args.reason)
    except (RolloutError, StoreError, KeyFileError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def _running(store: ModelStore) -> RolloutState:
    state, problem = rollout.read_state(store.model_dir)
    if problem:
        raise RolloutError(problem)
    if state is None or state.candidate is None:
        raise RolloutError(f"no rollout runs for {store.model_dir} (`textclf rollout status`)")
    return state


def _change(config: PipelineConfig, store: ModelStore, action: str, reason: str) -> None:
    running = _running(store)
    candidate, stable = running.candidate, running.stable
    now = time.time()
    decision = f"{action} by hand: {reason}"
    if action == "abort":
        # The store first: from then on no server loads the candidate, whatever the state says.
        store.rollback(stable, reason=f"rollout aborted by hand: {reason}",
                       verify_key=load_verify_key(config.serving.verify_key_file))

    def change(fresh: Optional[RolloutState]) -> Optional[RolloutState]:
        if fresh is None or fresh.candidate != candidate or fresh.stable != stable:
            raise RolloutError("the rollout changed meanwhile; run `textclf rollout status`")
        if action == "pause":
            return dataclasses.replace(fresh, paused=True, last_decision=decision)
        if action == "resume":
            # A new window: what happened while paused does not count.
            return dataclasses.replace(fresh, paused=False, step_started=now,
                                       last_decision=decision)
        if action == "promote":
            return dataclasses.replace(fresh, stable=candidate, candidate=None, step=0,
                                       step_started=now, paused=False, last_decision=decision)
        return dataclasses.replace(fresh, candidate=None, step=0, step_started=now,
                                   paused=False, last_decision=decision)

    rollout.update_state(store.model_dir, change)
    if action == "promote":
        store.note({"event": "promoted", "version": candidate, "replaced": stable,
                    "reason": decision})
        notify(config.notifications, "promoted", f"textclf {config.model_name}: version "
               f"{candidate} promoted by hand", {"model": config.model_name,
                                                 "version": candidate, "reason": reason})
    elif action == "abort":
        notify(config.notifications, "rollback", f"textclf {config.model_name}: rollout of "
               f"version {candidate} aborted by hand", {
                   "model": config.model_name, "version": stable, "rejected": candidate,
                   "reason": reason})
    done = {"pause": f"the rollout of version {candidate} is paused at its step",
            "resume": f"the rollout of version {candidate} goes on (a new step window)",
            "promote": f"version {candidate} is the stable version",
            "abort": f"version {candidate} is rejected; version {stable} takes all traffic"}
    print(f"{done[action]} (servers follow at their next poll)")


def _status(config: PipelineConfig, store: ModelStore, server_url: Optional[str]) -> int:
    # pylint: disable=import-outside-toplevel
    from serving.status import ServerStatusError, rollout_window

    state, problem = rollout.read_state(store.model_dir)
    if problem:
        raise RolloutError(problem)
    policy = config.serving.rollout
    if state is None:
        print(f"no rollout state in {store.model_dir} (mode {policy.mode}: a server in canary "
              "or shadow mode writes it)")
    else:
        print(f"stable version: {state.stable}")
        if state.candidate is None:
            print("candidate: none")
        else:
            share = state.share(policy.steps)
            print(f"candidate: version {state.candidate}, {policy.mode} at step {state.step + 1} "
                  f"of {len(policy.steps)} ({share:g} % of requests)"
                  + (", paused" if state.paused else ""))
            print(f"step began: {_when(state.step_started)}; passes after "
                  f"{policy.step_seconds:g} s and {policy.step_requests} candidate requests")
        leader = "none" if state.lease_until < time.time() else \
            f"{state.leader} (lease until {_when(state.lease_until)})"
        print(f"deciding server: {leader}")
        print(f"last decision: {state.last_decision or 'none'}")
    if server_url:
        try:
            answer = rollout_window(server_url)
        except ServerStatusError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        window = answer.get("window")
        print(f"server {server_url}: {answer.get('server')}, "
              f"{'deciding' if answer.get('leader') else 'following'}, "
              f"share {answer.get('share_percent')} %")
        if window:
            print("window: " + ", ".join(f"{name} {_figure(value)}"
                                         for name, value in window.items()))
    return 0


def _figure(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
