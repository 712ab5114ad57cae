#!/usr/bin/env bash
# testbed/install.sh: installs everything the test bed needs into $PAPI_CACHE (see CONTRACT.md):
# testbed/k8s/install.sh, testbed/moto/install.sh, testbed/rie/install.sh,
# testbed/argocd-lua/install.sh, each when present.
# Each part is idempotent (stamp files), so a warm run takes about a second.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

total0=$(papi_now)
for part in k8s moto rie argocd-lua; do
    script=$PAPI_TESTBED_ROOT/$part/install.sh
    if [[ ! -f $script ]]; then
        papi_log "install: $part: no $part/install.sh yet, skipped"
        continue
    fi
    t0=$(papi_now)
    bash "$script" || papi_die "install: $part/install.sh failed"
    papi_log "install: $part: $(papi_elapsed "$t0")s"
done
papi_log "install: all done in $(papi_elapsed "$total0")s (cache: $PAPI_CACHE)"
