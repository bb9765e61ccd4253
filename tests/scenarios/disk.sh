# virtio-blk: data written by L1 before boot reads back identically in the guest; data the guest writes is
# in the file after rvvmm exits; readonly=on refuses writes; several disks are vda, vdb, ... in order; an
# ext2 filesystem made by busybox in the guest mounts and survives a remount cycle.
. /scenarios/lib.sh
set -e
dd if=/dev/urandom of=a.img bs=1M count=8 2>/dev/null       # vda: L1 -> guest
dd if=/dev/zero of=b.img bs=1M count=16 2>/dev/null         # vdb: guest -> L1
dd if=/dev/urandom of=ro.img bs=1M count=4 2>/dev/null      # vdc: read-only
dd if=/dev/zero of=fs.img bs=1M count=32 2>/dev/null        # vdd: ext2, made in the guest
a_sum=$(sha256sum a.img | cut -d' ' -f1)
ro_sum=$(sha256sum ro.img | cut -d' ' -f1)
echo "L1-A-SUM $a_sum"
set +e
start_guest --cores 2 --memory 512M --disk path=a.img --disk path=b.img,id=second-disk \
  --disk path=ro.img,readonly=on --disk path=fs.img
wait_for out 'RVVMM-L2-BOOTED' 240 || exit 1
sleep 1
guest_cmd 'for d in vda vdb vdc vdd; do echo "GDISK $d $(cat /sys/block/$d/size) ro=$(cat /sys/block/$d/ro)"; done; echo LIST-$((1+1))' 'LIST-2' 60 || exit 1
guest_cmd 'echo "GSUM-A $(sha256sum /dev/vda)"' 'GSUM-A [0-9a-f]{64}' 120 || exit 1
guest_cmd 'dd if=/dev/urandom of=/tmp/data bs=1M count=6 2>/dev/null; echo "GSUM-B $(sha256sum /tmp/data)"' 'GSUM-B [0-9a-f]{64}' 120 || exit 1
guest_cmd 'dd if=/tmp/data of=/dev/vdb bs=1M conv=fsync 2>/dev/null; echo WROTE-$((2+2))-rc=$?' 'WROTE-4-rc=' 120 || exit 1
guest_cmd 'dd if=/dev/zero of=/dev/vdc bs=4096 count=1 oflag=direct 2>&1; echo RO-WRITE-$((3+3))-rc=$?' 'RO-WRITE-6-rc=' 60 || exit 1
guest_cmd 'mke2fs -q /dev/vdd; mkdir -p /mnt && mount -t ext2 /dev/vdd /mnt && echo persistent-data >/mnt/file && umount /mnt && mount -t ext2 /dev/vdd /mnt && echo "FS-READ-$((4+4)) $(cat /mnt/file)" && umount /mnt' 'FS-READ-8' 120
guest_cmd 'echo "GSERIAL-$((5+5)) $(cat /sys/block/vdb/serial 2>/dev/null)"' 'GSERIAL-10' 30
echo 'poweroff -f' >&3
finish_guest
rc=$?
tr -d '\r' <out | grep -E '^(GDISK|GSUM|WROTE|RO-WRITE|FS-READ|GSERIAL|dd:)' | tee results
b_sum=$(head -c 6291456 b.img | sha256sum | cut -d' ' -f1)
echo "L1-B-SUM $b_sum"
echo "L1-RO-SUM-AFTER $(sha256sum ro.img | cut -d' ' -f1) before $ro_sum"
fails=0
grep -q "^GSUM-A $a_sum" results && echo "DISK-READ-MATCH" || fails=$((fails + 1))
grep -q "^GSUM-B $b_sum" results && echo "DISK-WRITE-MATCH" || fails=$((fails + 1))
[ "$(sha256sum ro.img | cut -d' ' -f1)" = "$ro_sum" ] && echo "DISK-RO-UNCHANGED" || fails=$((fails + 1))
grep -q '^RO-WRITE-6-rc=0' results && fails=$((fails + 1))
grep -q '^GDISK vdc .* ro=1' results && echo "DISK-RO-FLAG" || fails=$((fails + 1))
grep -q '^GDISK vda 16384 ' results && grep -q '^GDISK vdb 32768 ' results && grep -q '^GDISK vdd 65536 ' results \
  && echo "DISK-ORDER-OK" || fails=$((fails + 1))
grep -q '^FS-READ-8 persistent-data' results && echo "DISK-FS-OK" || fails=$((fails + 1))
grep -q '^GSERIAL-10 second-disk' results && echo "DISK-ID-OK" || fails=$((fails + 1))
echo "DISK-FAILS $fails rc=$rc"
cat err | tail -5
[ "$fails" -eq 0 ] && [ "$rc" -eq 0 ]
