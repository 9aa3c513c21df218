#!/usr/bin/env bash
# Press throughput alone: benchmark 1 of bench/run-all.sh (virtual-button presses into
# trigger → Mutate → StoreValue (set) → StoreValue (incr) → Debug, completed runs/s from the incr
# counter, checked against the accepted presses). Kept for its documented command.
#
#   bench/press.sh                       # c = 16 and 64, 10 s each
#   DURATION=15 CONNECTIONS="64" bench/press.sh
exec "$(dirname "${BASH_SOURCE[0]}")/run-all.sh" --only press "$@"
