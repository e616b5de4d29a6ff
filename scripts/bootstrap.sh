#!/usr/bin/env bash
# Idempotent setup for a fresh Debian 12 machine (run as root): Debian packages,
# the user/groups libvirt's QEMU driver insists on, and a virtualenv with jobtui
# installed editable with its test extras. Fast when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

DEB_PKGS=(libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86
          qemu-utils libvirt-dev pkg-config tmux gcc binutils make util-linux procps
          python3-venv python3-dev
          # The lab's remote transports: a real sshd on loopback (the client side, and
          # netcat-openbsd for libvirt's `nc -U SOCKET` on the remote end), and certtool
          # for the TLS lab's CA and certificates.
          openssh-server openssh-client netcat-openbsd gnutls-bin
          # zsh: the completion script for it is syntax-checked by the tests.
          zsh
          # promtool, which checks docs/alerts.yml in the tests; Debian ships it only
          # with the Prometheus server, installed below without starting or enabling it.
          prometheus)

missing=()
for p in "${DEB_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "bootstrap: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || apt-get update
    no_start=""
    if [[ " ${missing[*]} " == *" prometheus "* ]] && [ ! -e /usr/sbin/policy-rc.d ]; then
        # 101: "not now" for every service a package would start while installing.
        no_start=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' >"$no_start" && chmod 755 "$no_start"
        trap 'rm -f "$no_start"' EXIT
    fi
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    if [ -n "$no_start" ]; then
        rm -f "$no_start"
        # Only promtool is wanted: the server must not come up at the next boot either.
        systemctl disable prometheus.service >/dev/null 2>&1 || true
    fi
fi

# The QEMU driver refuses to start without these (LIBVIRT_FACTS §1).
getent group kvm >/dev/null || groupadd --system kvm
getent group libvirt-qemu >/dev/null || groupadd --system libvirt-qemu
id -u libvirt-qemu >/dev/null 2>&1 || useradd --system --no-create-home \
    --gid libvirt-qemu --groups kvm --shell /usr/sbin/nologin libvirt-qemu
if [ -e /dev/kvm ]; then
    # No udev rule here: without this, QEMU as libvirt-qemu cannot use KVM and
    # every domain start pays a ~40 s capability re-probe.
    chgrp kvm /dev/kvm 2>/dev/null || true
    chmod 0660 /dev/kvm 2>/dev/null || true
fi
mkdir -p /var/log/libvirt /var/run/libvirt /var/lib/libvirt

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
stamp=.venv/.jobtui-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "bootstrap: installing Python packages into .venv"
    .venv/bin/python -m pip install -q --upgrade pip
    # libvirt-python has no wheels: it compiles against Debian's libvirt-dev headers.
    .venv/bin/python -m pip install -q -e '.[test]'
    touch "$stamp"
fi
# An editable install leaves jobtui's own modules uncompiled, and a shell that sets
# PYTHONDONTWRITEBYTECODE never writes their bytecode: every launch would compile ~50
# modules again (~0.1 s of the TUI's first frame). Reading bytecode needs no write.
.venv/bin/python -m compileall -q jobtui >/dev/null
