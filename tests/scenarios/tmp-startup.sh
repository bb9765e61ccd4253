. /scenarios/lib.sh
rvvmm --kernel "$GK" --initrd "$GI" --cores 2 --memory 512M --cmdline "console=ttyS0 rvvmm.poweroff" --log-level debug </dev/null >out 2>err
echo "rc=$?"
grep -v "^\[.*TRACE" err | head -60
