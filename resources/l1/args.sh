# rvvmm's arguments through L1's kernel command line (sourced by resources/l1/init; POSIX sh).
# resources/run.sh passes them as one word, rvvmm.args=A,B,..., each argument encoded by rvvmm_args_encode
# (resources/common.sh): every byte outside [A-Za-z0-9._/:=+@-] as a \NNN octal escape, so that commas,
# spaces, quotes and '%' inside an argument survive the command line intact.

# rvvmm_args_quoted ENCODED: prints the arguments of ENCODED single-quoted, for
#   eval "set -- $(rvvmm_args_quoted "$enc")"
rvvmm_args_quoted() {
  _ra_ifs=$IFS
  IFS=,
  set -f
  # shellcheck disable=SC2086 # split on commas
  set -- $1
  set +f
  IFS=$_ra_ifs
  for _ra in "$@"; do
    # The encoding leaves only safe characters and \NNN escapes: a printf format with no directives
    # (an x in front, so that an argument starting with '-' is not taken for an option of printf).
    # shellcheck disable=SC2059
    _ra=$(printf "x$_ra"; echo x)
    _ra=${_ra#x}
    _ra=${_ra%x}
    printf "'%s' " "$(printf '%s' "$_ra" | sed "s/'/'\\\\''/g")"
  done
}
