# pike A/B boot script (U-Boot; image/build.sh compiles it to boot.scr with mkimage). The
# same script on qemu's virt machine (u-boot-qemu) and on the Raspberry Pi (u-boot-rpi,
# which the Pi firmware starts as config.txt's kernel=).
# Picks slot A (partition 2) or B (partition 3) with the counters of RAUC's uboot backend:
# BOOT_ORDER lists the slots by priority, BOOT_x_LEFT the tries a slot has left. Each try
# costs one; `rauc status mark-good` (pike-mark-good.service) gives a good slot its tries
# back; an installed slot goes first with one try. The counters live in pikeboot.env on
# this FAT partition (the kernel reaches it with fw_setenv through /etc/fw_env.config).
# Not uboot.env: U-Boot for the Pi loads that file as its whole environment, and these
# three variables would replace its defaults (bootcmd too).
setenv BOOT_ORDER
setenv BOOT_A_LEFT
setenv BOOT_B_LEFT
if load ${devtype} ${devnum}:1 ${ramdisk_addr_r} pikeboot.env; then
  env import -c ${ramdisk_addr_r} 0x4000 BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT
fi
test -n "${BOOT_ORDER}" || setenv BOOT_ORDER "A B"
test -n "${BOOT_A_LEFT}" || setenv BOOT_A_LEFT 3
test -n "${BOOT_B_LEFT}" || setenv BOOT_B_LEFT 3

setenv pike_slot
for BOOT_SLOT in "${BOOT_ORDER}"; do
  if test "x${pike_slot}" != "x"; then
    true
  elif test "x${BOOT_SLOT}" = "xA"; then
    if test ${BOOT_A_LEFT} -gt 0; then
      setexpr BOOT_A_LEFT ${BOOT_A_LEFT} - 1
      setenv pike_slot A
      setenv pike_part 2
    fi
  elif test "x${BOOT_SLOT}" = "xB"; then
    if test ${BOOT_B_LEFT} -gt 0; then
      setexpr BOOT_B_LEFT ${BOOT_B_LEFT} - 1
      setenv pike_slot B
      setenv pike_part 3
    fi
  fi
done

if test "x${pike_slot}" = "x"; then
  # Every slot spent its tries (a power cut loop, or both broken): start over rather than
  # stop here; the counters count again from three.
  echo "pike-boot: no slot has tries left, resetting the counters"
  setenv BOOT_A_LEFT 3
  setenv BOOT_B_LEFT 3
  env export -c -s 0x4000 ${ramdisk_addr_r} BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT
  fatwrite ${devtype} ${devnum}:1 ${ramdisk_addr_r} pikeboot.env 0x4000
  reset
fi

env export -c -s 0x4000 ${ramdisk_addr_r} BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT
fatwrite ${devtype} ${devnum}:1 ${ramdisk_addr_r} pikeboot.env 0x4000
echo "pike-boot: slot ${pike_slot} (order ${BOOT_ORDER}, tries left A=${BOOT_A_LEFT} B=${BOOT_B_LEFT})"

# The board's own kernel arguments: on the Pi the firmware hands U-Boot cmdline.txt (its
# serial0 made the board's UART) in the device tree's /chosen/bootargs; qemu's has none.
setenv pike_board_args "console=ttyAMA0"
if fdt addr ${fdtcontroladdr}; then
  fdt get value pike_board_args /chosen bootargs
fi
if load ${devtype} ${devnum}:${pike_part} ${kernel_addr_r} /boot/vmlinuz; then
  # The initrd 64 MiB above the kernel's end (whole MiB): the Pi's default ramdisk_addr_r
  # is 38 MiB up, 4 MiB beside Debian's 32 MiB kernel once booti aligns it to 2 MiB.
  setexpr pike_rd ${filesize} / 0x100000
  setexpr pike_rd ${pike_rd} * 0x100000
  setexpr pike_rd ${pike_rd} + ${kernel_addr_r}
  setexpr pike_rd ${pike_rd} + 0x4100000
  if load ${devtype} ${devnum}:${pike_part} ${pike_rd} /boot/initrd.img; then
    setenv bootargs "${pike_board_args} root=PARTUUID=70696b65-0${pike_part} rootfstype=ext4 rootwait ro rauc.slot=${pike_slot} ${pike_args}"
    booti ${kernel_addr_r} ${pike_rd}:${filesize} ${fdtcontroladdr}
  fi
fi
echo "pike-boot: slot ${pike_slot} has no bootable kernel, trying again"
reset
