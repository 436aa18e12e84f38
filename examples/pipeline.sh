#!/usr/bin/env bash
# One experiment, unattended, as a CI job runs it: preflight, run, cleanup, verdict.
#
#   examples/pipeline.sh [EXPERIMENT] [chaos run options...]
#   examples/pipeline.sh examples/websocket-close.json --var agent_mode=naive
#
# Environment: RESULTS (folder for the journal and the log, default results/pipeline),
# DOCTOR_GROUPS (doctor check groups the experiment needs, default "platform"; e.g.
# "platform network" for network faults, which need root), CHAOSGENESYS_BIN (default .venv/bin).
#
# Exit codes: 0 the hypothesis held; 1 it deviated, or the run failed (a fault action that never
# applied, with chaosgenesys.controls.verdict) or was interrupted (the kill switch, the safeguard); 3 the preflight failed (nothing ran); 4 a fault could not be
# reverted afterwards (look at `chaosgenesys status`). See docs/pipelines.md.
set -u

experiment=${1:-examples/websocket-close.json}
[ $# -gt 0 ] && shift
bin=${CHAOSGENESYS_BIN:-.venv/bin}
results=${RESULTS:-results/pipeline}
mkdir -p "$results"

# 1. Preflight: refuse to start where the experiment's faults cannot run.
only=()
for group in ${DOCTOR_GROUPS:-platform}; do only+=(--only "$group"); done
if ! "$bin/chaosgenesys" doctor "${only[@]}"; then
    echo "pipeline: preflight failed, nothing was run" >&2
    exit 3
fi

# 2. Run. Rollbacks always play, even when the run is interrupted. An earlier run's journal is
# put away first: a run that never starts writes none, and its verdict must not be that one's.
rm -f "$results/journal.json"
"$bin/chaos" --no-version-check --log-file "$results/chaostoolkit.log" run \
    --rollback-strategy always --journal-path "$results/journal.json" "$@" "$experiment"
status=$?

# 3. Whatever happened to the run: nothing may stay applied.
if ! "$bin/chaosgenesys" cleanup; then
    echo "pipeline: a fault could not be reverted: see chaosgenesys status" >&2
    status=4
fi

# 4. The verdict, one line per fact, for the job's log.
if [ ! -f "$results/journal.json" ]; then
    echo "verdict: no journal: the run did not start (chaos exited $status; see $results/chaostoolkit.log)"
    [ "$status" -eq 0 ] && status=1
    exit $status
fi
"$bin/python" - "$results/journal.json" <<'PY'
import json, sys

journal = json.load(open(sys.argv[1]))
print(f"verdict: status={journal['status']} deviated={journal['deviated']}")
for state in ("before", "after"):
    hypothesis = (journal.get("steady_states") or {}).get(state) or {}
    for probe in hypothesis.get("probes") or []:
        if not probe.get("tolerance_met", True):
            print(f"verdict: {state} the method, {probe['activity']['name']} did not hold: "
                  f"{json.dumps(probe.get('output'))[:300]}")
for extension in journal["experiment"].get("extensions") or []:
    if extension.get("name") == "chaosgenesys-verdict":
        for action in extension.get("failed_actions") or []:
            what = "never applied" if action["phase"] == "method" else "failed to revert"
            print(f"verdict: {action['phase']} action {action['name']} {what}: {action['error']}")
        if extension.get("steady_state_before_met") is False:
            print("verdict: the steady state did not hold before the method: nothing was tested")
        for problem in extension.get("argument_problems") or []:
            print(f"verdict: refused before anything ran: {problem}")
        recovery = (extension.get("protocol") or {}).get("time_to_recover") or {}
        if recovery:
            print(f"verdict: time to recover {recovery.get('seconds')} s "
                  f"(recovered={recovery.get('recovered')})")
    if extension.get("name") == "chaosgenesys-preflight" and not extension.get("passed"):
        for row in extension.get("rows") or []:
            if row["status"] == "missing":
                print(f"verdict: preflight: {row['check']} {row['subject']}: {row['fix']}")
    if extension.get("name") == "chaosgenesys-killswitch" and extension.get("tripped"):
        print(f"verdict: {extension['reason']}")
    if extension.get("name") == "chaosgenesys-killswitch" and extension.get("refused"):
        print(f"verdict: {extension['refused']}")
    if extension.get("name") == "chaosgenesys-safeguard" and extension.get("refused"):
        print(f"verdict: {extension['refused']}")
    if extension.get("name") == "chaosgenesys-tokens":
        print(f"verdict: tokens revoked={extension['revoked']} "
              f"still_working={extension['still_working']}")
PY
exit $status
