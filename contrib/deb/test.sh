#!/usr/bin/env bash
# Check a built package as a user of it would meet it:
#
#   contrib/deb/test.sh target/debian/mpd-scrobbler_<version>_amd64.deb
#
# lintian; dpkg -i; every file the package lists in place; the units pass
# systemd-analyze verify; man finds the pages; --version runs; bash
# completes a subcommand's option from the installed completion file; the
# system service is neither enabled nor started; dpkg -r keeps the config;
# dpkg --purge leaves none of the package's files, and keeps the service's
# plays with a message saying so.
#
# It installs and purges the package, so it needs root and a machine where
# mpd-scrobbler is not installed from a package already. Without them it
# skips, saying so (MPD_SCROBBLER_SKIP_ROOT_TESTS=1 or a developer's
# machine), except in CI, where it fails instead.
set -euo pipefail

deb=$(realpath "$1")
pkg=mpd-scrobbler
ci=${CI:-}
[[ $ci == false ]] && ci=""

skip() {
    if [[ -n $ci ]]; then
        echo "deb test: FAILED: $1" >&2
        exit 1
    fi
    echo "deb test: SKIPPED: $1"
    exit 0
}
fail() {
    echo "deb test: FAILED: $*" >&2
    exit 1
}
[[ $(id -u) == 0 ]] || skip "not root (dpkg -i needs it)"
for tool in lintian systemd-analyze man bash; do
    command -v "$tool" >/dev/null || skip "$tool is not installed (.ci/run installs it)"
done
[[ -f /usr/share/bash-completion/bash_completion ]] ||
    skip "bash-completion is not installed (.ci/run installs it)"
if dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null | grep -q 'installed'; then
    skip "$pkg is installed on this machine already; not touching it"
fi

echo "deb test: lintian $(basename "$deb")"
# Every tag fails, down to info and pedantic ones, and so does an override
# that no longer matches (unused-override); each override carries its
# reason (contrib/deb/lintian-overrides).
# (-L '>=pedantic', not --info --pedantic: only the former reports unused
# overrides.)
lintian -L '>=pedantic' --fail-on error,warning,info,pedantic "$deb"

# The package's paths that exist before it is installed (shared directories
# such as /usr/share/man/man1): only the others must go with the purge.
mapfile -t listed < <(dpkg-deb --fsys-tarfile "$deb" | tar -t | sed -e 's|^\./|/|' -e 's|/$||' | grep -v '^/\?$')
preexisting=()
for path in "${listed[@]}"; do
    [[ -e $path || -L $path ]] && preexisting+=("$path")
done

echo "deb test: dpkg -i"
install=$(dpkg -i "$deb" 2>&1)
echo "$install"
! grep -Ei "not found|error|syntax" <<<"$install" || fail "the installation printed errors"

echo "deb test: files in place"
expected=(
    /usr/bin/mpd-scrobbler
    /etc/mpd-scrobbler/config.toml
    /usr/lib/systemd/system/mpd-scrobbler.service
    /usr/lib/systemd/user/mpd-scrobbler.service
    /usr/share/man/man1/mpd-scrobbler.1.gz
    /usr/share/man/man1/mpd-scrobbler-history.1.gz
    /usr/share/man/man5/mpd-scrobbler.toml.5.gz
    /usr/share/bash-completion/completions/mpd-scrobbler
    /usr/share/zsh/vendor-completions/_mpd-scrobbler
    /usr/share/fish/vendor_completions.d/mpd-scrobbler.fish
    /usr/share/doc/mpd-scrobbler/README.md.gz
    /usr/share/doc/mpd-scrobbler/examples/config.toml
    /usr/share/doc/mpd-scrobbler/copyright
    /usr/share/doc/mpd-scrobbler/changelog.gz
)
for path in "${expected[@]}"; do
    [[ -f $path ]] || fail "$path is missing"
    dpkg -S "$path" >/dev/null || fail "$path is not the package's"
done
# Every file the package lists, too (man pages of every subcommand).
for path in "${listed[@]}"; do
    [[ -e $path ]] || fail "$path (listed in the package) is missing"
done
[[ $(stat -c %a /etc/mpd-scrobbler/config.toml) == 600 ]] || fail "the config is not private (0600)"
grep -qx /etc/mpd-scrobbler/config.toml /var/lib/dpkg/info/$pkg.conffiles || fail "the config is not a conffile"
zcat /usr/share/doc/mpd-scrobbler/changelog.gz | head -n 1 | grep -q "^$pkg ($(dpkg-deb -f "$deb" Version))" ||
    fail "the changelog's first entry is not this version"

echo "deb test: systemd-analyze verify"
for unit in /usr/lib/systemd/system/$pkg.service /usr/lib/systemd/user/$pkg.service; do
    grep -q '^ExecStart=/usr/bin/mpd-scrobbler ' "$unit" || fail "$unit does not run /usr/bin/mpd-scrobbler"
    out=$(systemd-analyze verify "$unit" 2>&1) || fail "systemd-analyze verify $unit: $out"
    # verify also talks about the host's other units; any line on ours is a defect.
    ! grep "$pkg" <<<"$out" || fail "systemd-analyze verify $unit complained"
done

echo "deb test: installed, not enabled, not started"
[[ -z $(find /etc/systemd -name "$pkg.service" 2>/dev/null) ]] || fail "the system service was enabled: $(find /etc/systemd -name "$pkg.service")"
grep -q "deb-systemd-invoke stop .*$pkg.service" /var/lib/dpkg/info/$pkg.prerm || fail "prerm does not stop the service"
# An upgrade may try-restart a running service; nothing starts one.
! grep -Eq "deb-systemd-invoke (start|restart) " /var/lib/dpkg/info/$pkg.postinst ||
    fail "postinst starts the service"

echo "deb test: man"
for page in mpd-scrobbler mpd-scrobbler-history; do
    man -w "$page" | grep -q "/usr/share/man/man1/$page.1.gz" || fail "man -w $page"
done
man -w 5 mpd-scrobbler.toml | grep -q /usr/share/man/man5/mpd-scrobbler.toml.5.gz || fail "man -w 5 mpd-scrobbler.toml"

echo "deb test: --version"
version=$(/usr/bin/mpd-scrobbler --version)
echo "  $version"
[[ $version == "mpd-scrobbler $(dpkg-deb -f "$deb" Version)"* ]] || fail "--version says: $version"

echo "deb test: bash completion from the installed file"
# As an interactive bash would: bash-completion finds the file by the
# command's name in its vendor directory, and its function completes.
completions=$(bash --norc -c '
source /usr/share/bash-completion/bash_completion
complete -r mpd-scrobbler 2>/dev/null || true
_completion_loader mpd-scrobbler || true
spec=$(complete -p mpd-scrobbler) || exit 3
fn=${spec#*-F }; fn=${fn%% *}
COMP_LINE="mpd-scrobbler history --si"; COMP_POINT=${#COMP_LINE}
COMP_WORDS=(mpd-scrobbler history --si); COMP_CWORD=2
"$fn" mpd-scrobbler --si history
printf "%s\n" "${COMPREPLY[@]}"') || fail "bash found no completion for mpd-scrobbler"
[[ $completions == --since ]] || fail "bash completed 'mpd-scrobbler history --si' to: $completions"

echo "deb test: dpkg -r keeps the config, dpkg --purge removes it and the rest"
# A state directory as the system service leaves it, unless one is there
# already (a real one is never touched).
made_state=""
if [[ ! -e /var/lib/private/$pkg && ! -e /var/lib/$pkg ]]; then
    mkdir -p /var/lib/private/$pkg/queue
    echo plays >/var/lib/private/$pkg/queue/db
    ln -s private/$pkg /var/lib/$pkg
    made_state=1
fi
remove=$(dpkg -r "$pkg" 2>&1)
echo "$remove"
! grep -Ei "not found|error|syntax" <<<"$remove" || fail "the removal printed errors"
[[ ! -e /usr/bin/mpd-scrobbler ]] || fail "dpkg -r left the binary"
[[ -f /etc/mpd-scrobbler/config.toml ]] || fail "dpkg -r removed the config"
purge=$(dpkg --purge "$pkg" 2>&1)
echo "$purge"
# A maintainer script that stumbles may still exit 0.
! grep -Ei "not found|error|syntax" <<<"$purge" || fail "the purge printed errors"
left=()
for path in "${listed[@]}"; do
    printf '%s\n' "${preexisting[@]}" | grep -qxF "$path" && continue
    [[ -e $path || -L $path ]] && left+=("$path")
done
# What the maintainer scripts made: systemd's enablement and mask records.
while IFS= read -r path; do left+=("$path"); done < <(find /etc/systemd /var/lib/systemd -name "*$pkg*" 2>/dev/null)
((${#left[@]} == 0)) || fail "dpkg --purge left: ${left[*]}"
if [[ -n $made_state ]]; then
    [[ -f /var/lib/private/$pkg/queue/db ]] || fail "dpkg --purge removed the plays"
    grep -q "plays .* are kept" <<<"$purge" || fail "the purge did not say the plays are kept"
    rm -rf "/var/lib/private/$pkg" "/var/lib/$pkg"
fi

echo "deb test: passed ($(basename "$deb"))"
