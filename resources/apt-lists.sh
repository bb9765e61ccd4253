# apt's lists for the build scripts (sourced; needs a log function).
# apt_refresh_once WHY: apt-get update, at most once per run of the script that sources this (lists older
# than the archive name files it no longer has; a suite that moved on needs the new names). Returns 1,
# doing nothing, when this run already refreshed them; a failed update is logged, not fatal (the lists
# there are may still do).
APT_REFRESHED=0
apt_refresh_once() {
  [ "$APT_REFRESHED" = 0 ] || return 1
  APT_REFRESHED=1
  log "$1: refreshing apt's lists (apt-get update)"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
  $sudo apt-get update -q -o Acquire::Retries=3 >/dev/null 2>&1 || log "apt-get update failed; going on with the lists there are"
}
