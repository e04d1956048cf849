# Make sure redis-server is installed (sourced by .ci/run). The gateway tests start their own
# throwaway servers on free ports; nothing runs here.

ensure_redis() {
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "installing redis-server from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
  fi
  echo "$(redis-server --version | awk '{print $1, $2, $3}') available for the gateway limit tests"
}
