# The API socket, driven by curl (Debian's riscv64 package in L1) and by `rvvmm remote`:
# - rvvmm --api-socket alone waits; the socket is mode 0600; a second rvvmm on it is refused;
# - wrong verbs, unknown paths, malformed JSON, unknown fields and calls in the wrong state get
#   cloud-hypervisor's status codes; a boot that fails leaves nothing running (same thread count) and
#   the VM created;
# - vm.create + vm.boot start an L2 guest with a disk, virtio-rng and virtio-vsock; vm.info says Running;
#   a counter the guest prints stops while paused and goes on after resume; vm.counters counts the
#   disk's reads; the guest reads /dev/hwrng; data crosses vsock both ways (guest -> L1 and L1 -> guest);
# - vm.shutdown ends rvvmm with status 0 and removes the socket;
# - a VM from the command line with --api-socket is Running at once and vmm.shutdown ends it (status 0).
. /scenarios/lib.sh
fails=0
S=$PWD/api.sock
bad() { echo "API-FAIL $*"; fails=$((fails + 1)); }

# api METHOD NAME [JSON]: one request with curl; sets $code and $body, prints one line.
api() {
  if [ -n "${3:-}" ]; then
    code=$(curl -s -o body -w '%{http_code}' --unix-socket "$S" -X "$1" -H 'Content-Type: application/json' \
      -d "$3" "http://localhost/api/v1/$2")
  else
    code=$(curl -s -o body -w '%{http_code}' --unix-socket "$S" -X "$1" "http://localhost/api/v1/$2")
  fi
  body=$(cat body 2>/dev/null)
  echo "API $1 $2 -> $code $body"
}
# expect CODE METHOD NAME [JSON]
expect() {
  want=$1
  shift
  api "$@"
  [ "$code" = "$want" ] || bad "$1 $2: got $code, expected $want"
}

command -v curl >/dev/null || { echo "API-FAIL no curl in L1"; exit 1; }
curl --version | head -1
modprobe -q vhost_vsock 2>/dev/null
[ -c /dev/vhost-vsock ] || { echo "API-FAIL no /dev/vhost-vsock in L1"; exit 1; }

# The guest gets the vsock tool as a raw disk (vdb) holding the file, padded to 512 bytes.
cp /guests/vsock-test vt.img
size=$(stat -c %s /guests/vsock-test)
truncate -s $(((size + 511) / 512 * 512)) vt.img
dd if=/dev/urandom of=a.img bs=1M count=4 2>/dev/null

rm -f in out err "$S"
mkfifo in
rvvmm --api-socket "$S" --log-level info <in >out 2>err &
pid=$!
exec 3>in
i=0
while [ ! -S "$S" ] && [ $i -lt 50 ]; do sleep 0.2; i=$((i + 1)); done
echo "API-SOCKET mode=$(stat -c %a "$S")"
[ "$(stat -c %a "$S")" = 600 ] || bad "socket mode"

expect 200 GET vmm.ping
echo "$body" | grep -q '"version"' || bad "ping body"
rvvmm --api-socket "$S" </dev/null >second.out 2>second.err
echo "API-SECOND rc=$? $(cat second.err)"
grep -q 'rvvmm: error: .*already serves this socket' second.err || bad "second rvvmm not refused"

# Wrong verbs, paths, bodies and states, before any VM exists.
expect 400 GET vm.boot
expect 400 POST vm.create '{}'
expect 400 PUT vmm.ping
expect 404 GET vm.nothing
expect 404 GET vm.info
expect 404 PUT vm.boot
expect 404 PUT vm.pause
expect 404 GET vm.counters
expect 400 PUT vm.create '{"cpus": {"boot_vcpus": 1, "max_vcpus": 1'
expect 400 PUT vm.create '{"cpus": {"boot_vcpus": 1, "max_vcpus": 1}, "disk": []}'
echo "$body" | grep -q 'unknown field' || bad "unknown field not named"
expect 400 PUT vm.create '{"payload": {"kernel": "/guest/Image"}, "memory": {"size": 268435456, "shared": true}}'
expect 400 PUT vm.boot '{"x": 1}'

# A boot that fails leaves nothing behind: same threads, the VM still created, deletable.
threads=$(ls /proc/$pid/task | wc -l)
expect 204 PUT vm.create '{"payload": {"kernel": "/no/such/kernel"}, "cpus": {"boot_vcpus": 2, "max_vcpus": 2}}'
expect 500 PUT vm.boot
echo "$body" | grep -q 'no/such/kernel' || bad "boot error does not name the kernel"
expect 500 PUT vm.resume
expect 200 GET vm.info
echo "$body" | grep -q '"state":"Created"' || bad "state after a failed boot"
after=$(ls /proc/$pid/task | wc -l)
echo "API-THREADS before=$threads after=$after"
[ "$threads" = "$after" ] || bad "a failed boot left threads"
expect 204 PUT vm.delete
expect 404 GET vm.info

# The real VM.
cfg=$(cat <<EOF
{"cpus": {"boot_vcpus": 2, "max_vcpus": 2}, "memory": {"size": 268435456},
 "payload": {"kernel": "$GK", "initramfs": "$GI", "cmdline": "console=ttyS0"},
 "disks": [{"path": "$PWD/a.img"}, {"path": "$PWD/vt.img", "readonly": true}],
 "rng": {"src": "/dev/urandom"}, "vsock": {"cid": 42, "socket": "/unused"},
 "serial": {"mode": "Tty"}, "console": {"mode": "Off"}}
EOF
)
expect 204 PUT vm.create "$cfg"
expect 500 PUT vm.create "$cfg"
expect 204 PUT vm.boot
expect 500 PUT vm.boot
wait_for out 'RVVMM-L2-BOOTED' 240 || { tail -20 err; exit 1; }
expect 200 GET vm.info
echo "$body" | grep -q '"state":"Running"' || bad "state after boot"
echo "$body" | grep -q '"boot_vcpus":2' || bad "info config"
expect 500 PUT vm.resume
expect 500 PUT vm.reboot
expect 500 PUT vm.power-button

# Disk reads show in the counters (read through the project's client).
guest_cmd 'dd if=/dev/vda of=/dev/null bs=64k count=16 2>/dev/null; echo API-DD-$((1+1))-rc=$?' 'API-DD-2-rc=' 60 || bad "guest dd"
rvvmm remote --api-socket "$S" counters >counters.json
echo "API-COUNTERS rc=$? $(tr -d ' \n' <counters.json)"
reads=$(tr -d ' \n' <counters.json | sed -n 's/.*"_disk0":{[^}]*"read_bytes":\([0-9]*\).*/\1/p')
[ "${reads:-0}" -ge 1048576 ] || bad "disk read_bytes ${reads:-none} < 1 MiB"

# virtio-rng.
guest_cmd 'echo API-RNG-$((2+2)) $(cat /sys/class/misc/hw_random/rng_current) $(head -c 64 /dev/hwrng | od -An -tx1 | tr -d " \n" | wc -c)' 'API-RNG-4 ' 30 || bad "rng"
rng=$(tr -d '\r' <out | grep '^API-RNG-4 ')
echo "$rng"
echo "$rng" | grep -q 'virtio_rng.* 128$' || bad "guest hwrng"

# Pause and resume: a counter the guest prints every 0.2 s.
echo '(i=0; while :; do i=$((i+1)); echo TICK-$i; sleep 0.2; done) &' >&3
wait_for out '^TICK-5' 30 || bad "ticks"
ticks() { tr -d '\r' <out | grep -c '^TICK-[0-9]'; }
rvvmm remote --api-socket "$S" pause || bad "pause"
sleep 1
p1=$(ticks)
sleep 3
p2=$(ticks)
expect 200 GET vm.info
echo "$body" | grep -q '"state":"Paused"' || bad "state while paused"
expect 500 PUT vm.pause
expect 204 PUT vm.resume
sleep 3
p3=$(ticks)
echo "API-PAUSE paused=$p1..$p2 resumed=$p3"
[ "$p1" = "$p2" ] || bad "the guest made progress while paused"
[ "$p3" -gt "$((p2 + 3))" ] || bad "the guest did not go on after resume"
echo 'kill %1' >&3

# vsock, guest -> L1 and L1 -> guest.
guest_cmd 'head -c '"$size"' /dev/vdb >/tmp/vt; chmod +x /tmp/vt; echo API-VT-$((3+3))' 'API-VT-6' 30 || bad "tool copy"
/guests/vsock-test listen 5000 262144 >l1-listen.txt 2>&1 &
lpid=$!
guest_cmd '/tmp/vt connect 2 5000 262144; echo API-VS1-$((4+4))-rc=$?' 'API-VS1-8-rc=' 90 || bad "vsock guest->L1"
wait $lpid
lrc=$?
cat l1-listen.txt
echo "API-VSOCK L1-listener rc=$lrc $(grep -E 'VSOCK-(OK|FAIL)' l1-listen.txt)"
grep -q 'VSOCK-OK' l1-listen.txt || bad "L1 listener"
tr -d '\r' <out | grep -q '^API-VS1-8-rc=0' || bad "guest client"
echo '/tmp/vt listen 5001 262144 >/tmp/gl.txt 2>&1 & echo API-GL-$((5+5))' >&3
wait_for out 'API-GL-10' 30 || bad "guest listener"
/guests/vsock-test connect 42 5001 262144 >l1-connect.txt 2>&1
crc=$?
cat l1-connect.txt
echo "API-VSOCK L1-client rc=$crc $(grep -E 'VSOCK-(OK|FAIL)' l1-connect.txt)"
grep -q 'VSOCK-OK' l1-connect.txt || bad "L1 client"
guest_cmd 'wait $!; cat /tmp/gl.txt; echo API-GLR-$((6+6))' 'API-GLR-12' 30 || bad "guest listener result"
tr -d '\r' <out | grep -q '^VSOCK-OK' || bad "guest listener did not get the data"

expect 204 PUT vm.shutdown
wait $pid
rc=$?
exec 3>&-
echo "API-SHUTDOWN rc=$rc socket-left=$([ -e "$S" ] && echo yes || echo no)"
[ "$rc" = 0 ] || bad "rvvmm exit status $rc after vm.shutdown"
[ -e "$S" ] && bad "socket left behind"
grep -q 'forbidden system call\|panicked' err && bad "rvvmm error: $(grep -m1 'forbidden\|panicked' err)"

# A VM from the command line, reported and controlled through the API.
start_guest --memory 128M --api-socket "$S"
wait_for out 'RVVMM-L2-BOOTED' 240 || exit 1
expect 200 GET vm.info
echo "$body" | grep -q '"state":"Running"' || bad "command-line VM state"
echo "$body" | grep -q "\"kernel\":\"$GK\"" || bad "command-line VM kernel"
expect 500 PUT vm.create "$cfg"
expect 200 PUT vmm.shutdown
finish_guest
rc=$?
[ "$rc" = 0 ] || bad "exit status $rc after vmm.shutdown"
echo "API-FAILS $fails"
[ "$fails" -eq 0 ]
