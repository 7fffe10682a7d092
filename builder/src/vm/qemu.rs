//! `coreos_production_qemu.sh`: a launcher next to the qcow2 image, like CoreOS's
//! `qemu_template.sh`: serial console on the terminal, ssh forwarded to 127.0.0.1, BIOS
//! (SeaBIOS, qemu's default) or UEFI (OVMF) firmware, KVM when usable and TCG otherwise.

pub fn launcher(image_file: &str, vm_name: &str, memory_mib: u32) -> String {
    format!(
        r##"#!/bin/sh
# Boot {image_file} in qemu (made by coreos-build vm --format qemu).
# Serial console on this terminal (quit: Ctrl-a x); ssh -p $SSH_PORT core@127.0.0.1.
set -eu

SCRIPT_DIR=$(cd "$(dirname "$0")" && pwd)
VM_NAME='{vm_name}'
VM_IMAGE="${{VM_IMAGE:-$SCRIPT_DIR/{image_file}}}"
VM_MEMORY="${{VM_MEMORY:-{memory_mib}}}"
VM_NCPUS="${{VM_NCPUS:-$(nproc 2>/dev/null || echo 1)}}"
SSH_PORT="${{SSH_PORT:-2222}}"
QEMU="${{QEMU:-qemu-system-x86_64}}"
FIRMWARE=bios
SNAPSHOT=
CONFIG_DIR=

usage() {{
    cat <<USAGE
Usage: $0 [-u] [-s] [-p PORT] [-m MiB] [-c CLOUD_CONFIG] [-a AUTHORIZED_KEYS] [-- QEMU ARGS...]
  -u    boot with UEFI firmware (OVMF; set OVMF=path to choose the file)
  -s    discard writes to the image (qemu -snapshot)
  -p    host port forwarded to the guest's ssh (default $SSH_PORT, on 127.0.0.1)
  -m    memory in MiB (default $VM_MEMORY)
  -c    a cloud-config file, offered on a config-2 drive
  -a    an authorized_keys file for user core, offered the same way
Environment: VM_IMAGE, VM_NCPUS, QEMU, QEMU_ACCEL (default: kvm when /dev/kvm is usable, else tcg).
USAGE
}}

cleanup() {{ [ -z "$CONFIG_DIR" ] || rm -rf "$CONFIG_DIR"; }}
trap cleanup EXIT

config_dir() {{
    if [ -z "$CONFIG_DIR" ]; then
        CONFIG_DIR=$(mktemp -d)
        mkdir -p "$CONFIG_DIR/openstack/latest"
    fi
}}

while getopts "usp:m:c:a:h" opt; do
    case $opt in
        u) FIRMWARE=uefi ;;
        s) SNAPSHOT=-snapshot ;;
        p) SSH_PORT=$OPTARG ;;
        m) VM_MEMORY=$OPTARG ;;
        c) config_dir; cp "$OPTARG" "$CONFIG_DIR/openstack/latest/user_data" ;;
        a) config_dir
           {{ echo "#cloud-config"; echo "ssh_authorized_keys:"; sed -n 's/^\(ssh-.*\)$/  - "\1"/p' "$OPTARG"; }} \
               > "$CONFIG_DIR/openstack/latest/user_data" ;;
        h) usage; exit 0 ;;
        *) usage >&2; exit 1 ;;
    esac
done
shift $((OPTIND - 1))

if [ ! -f "$VM_IMAGE" ]; then
    echo "$0: $VM_IMAGE does not exist" >&2
    exit 1
fi

set -- -name "$VM_NAME" -m "$VM_MEMORY" -smp "$VM_NCPUS" -nographic $SNAPSHOT \
    -drive if=virtio,file="$VM_IMAGE",format=qcow2 \
    -netdev user,id=eth0,hostname="$VM_NAME",hostfwd=tcp:127.0.0.1:"$SSH_PORT"-:22 \
    -device virtio-net-pci,netdev=eth0 "$@"

if [ -n "${{QEMU_ACCEL:-}}" ]; then
    set -- -accel "$QEMU_ACCEL" "$@"
elif [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
    # qemu falls back to the next -accel when KVM cannot start.
    set -- -accel kvm -accel tcg "$@"
else
    set -- -accel tcg "$@"
fi

if [ "$FIRMWARE" = uefi ]; then
    if [ -z "${{OVMF:-}}" ]; then
        for f in /usr/share/ovmf/OVMF.fd /usr/share/OVMF/OVMF.fd /usr/share/qemu/OVMF.fd /usr/share/edk2/ovmf/OVMF.fd; do
            if [ -f "$f" ]; then OVMF=$f; break; fi
        done
    fi
    if [ -z "${{OVMF:-}}" ]; then
        echo "$0: no OVMF firmware found (install ovmf or set OVMF=path)" >&2
        exit 1
    fi
    set -- -bios "$OVMF" "$@"
fi

if [ -n "$CONFIG_DIR" ]; then
    set -- -fsdev local,id=conf,security_model=none,readonly=on,path="$CONFIG_DIR" \
        -device virtio-9p-pci,fsdev=conf,mount_tag=config-2 "$@"
    # Not exec: the config folder must outlive qemu, then the trap removes it.
    "$QEMU" "$@"
    exit $?
fi
exec "$QEMU" "$@"
"##
    )
}
