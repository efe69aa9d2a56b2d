# shellcheck shell=bash
# Sourced by .ci/run (under `set -euo pipefail`, venv active, repo root as cwd) before the
# tests: sets up a real container engine so the sandbox's container tests run, not skip.
#
#   1. apt: podman + runc (crun refuses the hybrid cgroup layout here), debootstrap,
#      bubblewrap (the local backend);
#   2. a containers.conf: runtime runc, explicit ulimits at or below ours (no
#      CAP_SYS_RESOURCE to raise them);
#   3. the sandbox image, built offline from a debootstrap rootfs; reused when its
#      content-hash tag already exists (the rootfs is cached in /var/cache/mmw);
#   4. `podman system service` on a unix socket, detached; DOCKER_HOST points at it;
#   5. MMW_REQUIRE_CONTAINER=1: container tests fail (not skip) if anything is missing.

_mmw_log() { echo "[container-setup] $*" >&2; }

_mmw_container_setup() {
  local t0=$SECONDS
  local need=()
  command -v podman >/dev/null || need+=(podman)
  command -v runc >/dev/null || need+=(runc)
  command -v debootstrap >/dev/null || need+=(debootstrap)
  command -v bwrap >/dev/null || need+=(bubblewrap)
  [ -x /usr/libexec/podman/catatonit ] || need+=(catatonit)  # the containers' init
  if [ "${#need[@]}" -gt 0 ]; then
    _mmw_log "installing ${need[*]} (apt)"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
      podman runc catatonit debootstrap bubblewrap uidmap fuse-overlayfs slirp4netns \
      >/dev/null
  fi

  python -c 'import docker' 2>/dev/null || pip install -q 'docker>=7'

  mkdir -p /etc/mmw /run/mmw
  cat > /etc/mmw/containers.conf <<'CONF'
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1000:1000"]
CONF
  export CONTAINERS_CONF=/etc/mmw/containers.conf

  local sock=/run/mmw/podman.sock
  export DOCKER_HOST="unix://$sock"
  if ! python - <<'PY' 2>/dev/null
import docker, os
docker.DockerClient(base_url=os.environ["DOCKER_HOST"], timeout=3).ping()
PY
  then
    rm -f "$sock"
    _mmw_log "starting podman system service on $sock"
    # Started from /run/mmw: conmon leaves an "oom" marker in the service's working
    # directory when a container is OOM-killed (the memory-bomb tests), not in the checkout.
    pushd /run/mmw >/dev/null
    setsid nohup podman system service --time=0 "unix://$sock" \
      </dev/null >/tmp/mmw-podman-service.log 2>&1 &
    popd >/dev/null
    local i
    for i in $(seq 1 60); do
      [ -S "$sock" ] && python - <<'PY' 2>/dev/null && break
import docker, os
docker.DockerClient(base_url=os.environ["DOCKER_HOST"], timeout=3).ping()
PY
      sleep 0.5
    done
  fi

  _mmw_log "building (or reusing) the sandbox image"
  python -m sandbox build-image || {
    _mmw_log "image build failed; retrying once (a flaky mirror fetch?)"
    python -m sandbox build-image
  }
  export MMW_REQUIRE_CONTAINER=1
  _mmw_log "ready in $((SECONDS - t0))s: DOCKER_HOST=$DOCKER_HOST"
  python -m sandbox doctor >&2 || true
}

_mmw_container_setup
