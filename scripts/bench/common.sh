# Shared by scripts/bench/cache and scripts/bench/mount (source it; needs $root set).
# Loopback only: an emulator and link proxies on 127.0.0.1; every process and mount made here
# is recorded and undone by bench_cleanup (by PID / by mountpoint, never by name).

bench_pids=()
bench_mounts=()
py="$root/.venv/bin/python"

bench_prepare() {  # installs what is missing, builds release binaries, makes $work
  if [ -n "${BUNDLE:-}" ]; then bench_prepare_bundle; return; fi
  "$root/scripts/setup"
  local missing=()
  [ -x /usr/bin/time ] || missing+=(time)
  command -v rclone >/dev/null || missing+=(rclone)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "bench: installing ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  # BENCH_NO_BUILD=1 uses the release binaries already built (e.g. while someone else's edits
  # do not compile); either way the run uses its own copies, so a rebuild meanwhile changes nothing.
  if [ -z "${BENCH_NO_BUILD:-}" ]; then
    (cd "$root" && swift build -c release --product weightfs >&2 && swift build -c release --product weightfs-bench >&2)
  fi
  local built
  built="$(cd "$root" && swift build -c release --show-bin-path)"
  work=$(mktemp -d /tmp/weightfs-bench.XXXXXX)
  mkdir -p "$work/bin"
  cp "$built/weightfs" "$built/weightfs-bench" "$work/bin/"
  weightfs="$work/bin/weightfs"
  bench="$work/bin/weightfs-bench"
  echo "# binaries: $(cd "$root" && git rev-parse --short HEAD)$(cd "$root" && git diff --quiet HEAD -- Sources Package.swift || echo ' + uncommitted changes'), built $(date -u -r "$built/weightfs" +%FT%TZ)" >&2
  export RCLONE_CONFIG=/dev/null  # every rclone setting is on the command line
}

# On the device machine (scripts/device/mount-bench): the binaries of the unpacked bundle
# ($BUNDLE, from scripts/device/unpack), the system's python3, nothing installed or built.
# Without weightfs-bench in the bundle, the raw Fetcher row is `weightfs cp` (the same Fetcher).
bench_prepare_bundle() {
  py=python3
  work=$(mktemp -d /tmp/weightfs-bench.XXXXXX)
  weightfs="$BUNDLE/bin/weightfs"
  bench="$BUNDLE/bin/weightfs-bench"
  [ -x "$bench" ] || bench=""
  [ -n "${BENCH_NO_RCLONE:-}" ] || command -v rclone >/dev/null || { echo "bench: no rclone (bundle the rclone part)" >&2; return 1; }
  echo "# binaries: bundle $(cat "$BUNDLE/COMMIT" 2>/dev/null)" >&2
  export RCLONE_CONFIG=/dev/null
}

# raw_fetch ENDPOINT gs://B/OBJECT DEST: the Fetcher alone into DEST; one JSON line (bytes,
# seconds, MBps) from weightfs-bench fetch, else from `weightfs cp -v`.
raw_fetch() {
  if [ -n "$bench" ]; then
    STORAGE_EMULATOR_HOST=$1 "$bench" fetch "$2" --dest "$3"
    return
  fi
  local t0 t1 bytes
  t0=$(now)
  STORAGE_EMULATOR_HOST=$1 "$weightfs" cp --concurrency 16 "$2" "$3"
  t1=$(now)
  bytes=$(stat -c %s "$3")
  json bytes="$bytes" seconds="$(calc "$t1 - $t0")" MBps="$(calc "$bytes / ($t1 - $t0) / 1e6")"
}

bench_cleanup() {
  local m p
  for m in "${bench_mounts[@]}"; do
    if mountpoint -q "$m" 2>/dev/null; then fusermount3 -u -z "$m" 2>/dev/null || true; fi
  done
  for p in "${bench_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${bench_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  "$root/scripts/emulator" stop "$emu_dir" >/dev/null 2>&1 || true
  [ "$emu_dir" = "$work/emu" ] || rm -rf "$emu_dir"
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$work"
}

# The emulator's objects live on tmpfs (EMU_ROOT, default /dev/shm) when it exists: a cold run
# drops the page cache, and an emulator reading its objects back from this machine's disk measured
# the disk (raw Fetcher 300-600 MB/s from run to run), not the tools. EMU_ROOT= keeps them in $work.
emu_dir=""
start_emulator() {  # sets $emu
  local i root_dir=${EMU_ROOT-/dev/shm}
  if [ -n "$root_dir" ] && [ -d "$root_dir" ]; then emu_dir=$(mktemp -d "$root_dir/weightfs-bench-emu.XXXXXX"); else emu_dir="$work/emu"; fi
  echo "# emulator objects on $(df --output=fstype "$emu_dir" | tail -1) ($emu_dir)" >&2
  for i in 1 2 3; do
    emu=$("$root/scripts/emulator" start "$emu_dir" | sed -n 's/^STORAGE_EMULATOR_HOST=//p') && [ -n "$emu" ] && return 0
    echo "bench: emulator did not start (attempt $i), retrying" >&2
  done
  return 1
}

start_proxy() {  # start_proxy VAR ARGS...: URL into VAR
  local var=$1; shift
  local pf="$work/proxy.$var"
  "$py" "$root/scripts/linkproxy.py" --listen 127.0.0.1:0 --upstream "$emu" --port-file "$pf" "$@" >/dev/null 2>>"$work/proxy.log" &
  bench_pids+=($!)
  local i
  for i in $(seq 200); do [ -s "$pf" ] && break; sleep 0.1; done
  [ -s "$pf" ] || { echo "bench: proxy $var did not start" >&2; return 1; }
  printf -v "$var" 'http://127.0.0.1:%s' "$(cat "$pf")"
}

proxy_bytes() {  # proxy_bytes URL: response-body bytes the proxy sent since its last reset
  curl -fsS "$1/__proxy/stats" | "$py" -c 'import json,sys; print(json.load(sys.stdin)["bytes_down"])'
}
proxy_reset() { curl -fsS -X POST "$1/__proxy/reset-stats" >/dev/null; }

make_bucket() { curl -fsS -X POST -H 'Content-Type: application/json' -d "{\"name\":\"$1\"}" "$emu/storage/v1/b" >/dev/null; }

upload() {  # upload BUCKET NAME FILE (streams: curl -T)
  curl -fsS -X POST -T "$3" -H 'Content-Type: application/octet-stream' \
    "$emu/upload/storage/v1/b/$1/o?uploadType=media&name=$2" >/dev/null
}

# Where /proc/sys is read-only (a container), the drop is skipped and said once: with the
# emulator's objects and the caches on tmpfs, only a mount's own page cache would be dropped,
# and every run unmounts before the next.
drop_caches() {
  sync
  if ! { echo 3 > /proc/sys/vm/drop_caches; } 2>/dev/null; then
    [ -n "${drop_warned:-}" ] || echo "# bench: cannot drop the page cache here (read-only /proc/sys); runs unmount between reads" >&2
    drop_warned=1
  fi
}

now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }  # calc EXPR: floating point

# wait_mounted MNT PID: until MNT is a mount point (or PID died / 60 s).
wait_mounted() {
  local i
  for i in $(seq 600); do
    mountpoint -q "$1" && return 0
    kill -0 "$2" 2>/dev/null || { echo "bench: mount process $2 for $1 exited" >&2; return 1; }
    sleep 0.1
  done
  echo "bench: $1 not mounted after 60 s" >&2
  return 1
}

# unmount MNT PID: fusermount3 -u, then wait for the daemon to exit.
unmount() {
  local i
  fusermount3 -u "$1" 2>/dev/null || { sleep 1; fusermount3 -u -z "$1" 2>/dev/null || true; }
  for i in $(seq 300); do kill -0 "$2" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$2" 2>/dev/null; then kill "$2" 2>/dev/null || true; fi
  wait "$2" 2>/dev/null || true
}

# mount_weightfs ENDPOINT gs://B/P MNT CACHE [ARGS...]: mounts in the foreground (background job); pid in $mount_pid.
mount_weightfs() {
  local endpoint=$1 url=$2 mnt=$3 cache=$4; shift 4
  mkdir -p "$mnt"
  bench_mounts+=("$mnt")
  STORAGE_EMULATOR_HOST=$endpoint LD_PRELOAD=${diag_preload:-} "$weightfs" mount "$url" "$mnt" --cache-dir "$cache" --foreground "$@" 2>>"$work/mount.log" &
  mount_pid=$!
  bench_pids+=($mount_pid)
  wait_mounted "$mnt" "$mount_pid"
}

# mount_rclone ENDPOINT BUCKET/PATH MNT CACHE [ARGS...]: rclone mount --vfs-cache-mode full; pid in $mount_pid.
mount_rclone() {
  local endpoint=$1 path=$2 mnt=$3 cache=$4; shift 4
  mkdir -p "$mnt"
  bench_mounts+=("$mnt")
  rclone mount ":gcs:$path" "$mnt" --read-only --vfs-cache-mode full --cache-dir "$cache" \
    --gcs-endpoint "$endpoint/storage/v1/" --gcs-anonymous --gcs-no-check-bucket "$@" 2>>"$work/rclone.log" &
  mount_pid=$!
  bench_pids+=($mount_pid)
  wait_mounted "$mnt" "$mount_pid"
}

# dd_read FILE: sequential read with dd bs=1M; prints "bytes seconds".
dd_read() {
  LC_ALL=C dd if="$1" of=/dev/null bs=1M 2>&1 | awk '/copied/ { for (i = 1; i <= NF; i++) if ($i ~ /^s,?$/) print $1, $(i-1) }'
}

# build_nofsync: $work/nofsync.so (see scripts/bench/nofsync.c), for diagnostic rows only.
build_nofsync() { cc -shared -fPIC -O2 -o "$work/nofsync.so" "$root/scripts/bench/nofsync.c"; }

# json KEY=VALUE...: one JSON line (numbers stay numbers).
json() { "$py" "$root/scripts/bench/jsonline.py" "$@"; }
