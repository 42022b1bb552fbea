#!/usr/bin/env bash
# Compiler launcher of the CUDA translation units that hold suptok's kernels (tests/cuda): runs the
# compile command (which passes -Xptxas -v), writes ptxas's register, shared memory and spill
# lines of every kernel to REPORT, and fails the compile when a suptok kernel spills registers.
#   ptxas_report.sh REPORT <compiler> <arguments...>
set -uo pipefail
report=$1
shift
output=$("$@" 2>&1)
status=$?
[ -n "$output" ] && printf '%s\n' "$output" | grep -v -E '^ptxas info|bytes stack frame' >&2
[ $status -ne 0 ] && exit $status
printf '%s\n' "$output" | grep -E "Compiling entry function|spill|Used [0-9]+ registers" >"$report"
# "Compiling entry function '<mangled name>' for 'sm_90'" is followed by
# "<n> bytes stack frame, <s> bytes spill stores, <l> bytes spill loads".
awk '/Compiling entry function/ { name = $7 }
     /spill stores/ && name ~ /suptok/ && ($5 > 0 || $9 > 0) {
       print "ptxas_report: " name " spills (" $0 ")" > "/dev/stderr"; spilled = 1 }
     END { exit spilled }' "$report"
