#!/bin/sh
# embed.sh NAME FILE: writes (on stdout) a C file that defines `const unsigned char NAME[]`, the
# bytes of FILE followed by a NUL, and `const size_t NAME_len`, their count without the NUL.
# The Makefile compiles it into the binary. Only od and sed: nothing to install.
set -eu
name=$1
file=$2
printf '/* Written from %s by scripts/embed.sh: do not edit. */\n' "$file"
printf '#include <stddef.h>\n\n'
printf 'extern const unsigned char %s[];\nextern const size_t %s_len;\n\n' "$name" "$name"
printf 'const unsigned char %s[] = {\n' "$name"
od -An -v -tx1 "$file" | sed -e 's/ *\([0-9a-f][0-9a-f]\)/0x\1,/g'
printf '0x00};\n\nconst size_t %s_len = sizeof %s - 1;\n' "$name" "$name"
