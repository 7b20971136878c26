# Shared set-up for tests/run and tests/lab/run (source it; bash only).
#
#   ROOT=/path/to/repo; . "$ROOT/tests/lib/setup.sh"
#   install_apt      # Debian packages the tests and the lab need (skipped when present)
#   install_venv     # $ROOT/.venv with `pip install -e '.[test]'` (skipped when up to date)
#
# Expects ROOT (the repository) to be set; sets VENV and APT_PACKAGES if unset.
# Environment: PIKE_FORCE_PIP=1 forces the pip install.

: "${ROOT:?set ROOT to the repository before sourcing tests/lib/setup.sh}"
VENV=${VENV:-$ROOT/.venv}

if [[ -z ${APT_PACKAGES+x} ]]; then
  APT_PACKAGES=(
    python3 python3-venv ca-certificates git
    strongswan-charon strongswan-swanctl strongswan-pki
    libcharon-extra-plugins libstrongswan-extra-plugins libstrongswan-standard-plugins
    user-mode-linux
    tshark prometheus openssl
    softhsm2 swtpm swtpm-tools tpm2-tools libtpm2-pkcs11-1 libtpm2-pkcs11-tools tpm2-abrmd
    libtss2-tcti-tabrmd0 dbus
    nftables iproute2 iputils-ping kmod procps socat util-linux mount
    qemu-system-arm qemu-utils mtools fdisk e2fsprogs
    rauc squashfs-tools u-boot-qemu u-boot-tools libubootenv-tool
    gcc libc6-dev linux-libc-dev systemd strace
    groff-base
    autoconf automake libtool gperf bison flex pkg-config libgmp-dev libssl-dev make
    frr
  )
fi

need_root_for_apt() {
  if [[ $(id -u) -ne 0 ]]; then
    echo "missing packages and not root; run as root or install: $*" >&2
    exit 1
  fi
}

install_apt() {
  local missing=() pkg
  for pkg in "${APT_PACKAGES[@]}"; do
    if [[ $(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null) != "install ok installed" ]]; then
      missing+=("$pkg")
    fi
  done
  if ((${#missing[@]} == 0)); then
    echo "    all ${#APT_PACKAGES[@]} Debian packages present"
    return
  fi
  need_root_for_apt "${missing[@]}"
  echo "    installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

install_venv() {
  if [[ ! -x $VENV/bin/python ]]; then
    echo "    creating $VENV"
    python3 -m venv "$VENV"
  fi
  local stamp=$VENV/.pike-install-stamp want
  want=$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)
  if [[ -z ${PIKE_FORCE_PIP:-} && -f $stamp && $(cat "$stamp") == "$want" ]] &&
    [[ -x $VENV/bin/pytest && -x $VENV/bin/ruff && -x $VENV/bin/mypy ]]; then
    echo "    .venv up to date with pyproject.toml"
    return
  fi
  export PIP_DISABLE_PIP_VERSION_CHECK=1
  "$VENV/bin/python" -m pip install -q --upgrade pip
  (cd "$ROOT" && "$VENV/bin/python" -m pip install -q -e '.[test]')
  echo "$want" >"$stamp"
}
