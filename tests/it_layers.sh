#!/usr/bin/env bash
# it_layers: the file graph of each program has no call or include cycle, and libqpc
# names neither program (tests/lib/check_layers.py explains what counts). It reads the
# object files of the build under test, so it runs after the build, like every it_ test.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
: "${QPC_BUILD:?set QPC_BUILD to the build directory}" "${QPC_SRC:?set QPC_SRC to the source directory}"
command -v nm >/dev/null || it_skip "nm (binutils) is not installed"
python3 "$QPC_SRC/tests/lib/check_layers.py" "$QPC_SRC" "$QPC_BUILD"
echo "PASS it_layers"
