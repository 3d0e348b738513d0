#!/usr/bin/env bash
# Print the Debian changelog made from CHANGELOG.md (keep-a-changelog style),
# newest entry first, as dpkg-parsechangelog and lintian read it.
#
#   contrib/deb/changelog.sh CHANGELOG.md VERSION 'Name <address>'
#
# "## [X.Y.Z] - YYYY-MM-DD" becomes version X.Y.Z for "unstable", dated that
# day. "## [Unreleased]", when it has notes, becomes VERSION (Cargo.toml's)
# for "UNRELEASED", dated by the last commit (or SOURCE_DATE_EPOCH), so the
# same tree always gives the same file. When VERSION is already a released
# one, the unreleased notes are left out: the package is that release, and
# `--version` names the commit. "### Added" and the like become "Added:"
# lines, "- " items become "*" items; all is wrapped to 78 columns, as
# lintian wants, and link definitions are dropped.
set -euo pipefail

changelog=$1 version=$2 maintainer=$3
package=mpd-scrobbler

# RFC 2822 date of a YYYY-MM-DD day, or of the build's time for "now".
date_of() {
    if [[ $1 == now ]]; then
        local epoch=${SOURCE_DATE_EPOCH:-$(git -C "$(dirname "$changelog")" log -1 --format=%ct 2>/dev/null || date +%s)}
        LC_ALL=C date -u -R -d "@$epoch"
    else
        LC_ALL=C date -u -R -d "$1 12:00"
    fi
}

released=$(sed -n 's/^## \[\([0-9][^]]*\)\].*/\1/p' "$changelog")
if grep -qxF -- "$version" <<<"$released"; then
    skip_unreleased=1
else
    skip_unreleased=0
fi

entries=0
# Items gather their continuation lines in $item until the next item,
# heading or blank line, then go out wrapped.
item="" in_entry=0 skipping=0 wrote_body=0 date=""
flush_item() {
    [[ -n $item ]] || return 0
    # An item's later lines line up under its text; a paragraph's under it.
    local indent="  "
    [[ $item == '* '* ]] && indent="    "
    fold -s -w 74 <<<"$item" | sed -e 's/ *$//' -e '1s/^/  /' -e "2,\$s/^/$indent/"
    item="" wrote_body=1
}
close_entry() {
    flush_item
    if ((in_entry)); then
        # An entry with no notes still needs one line (dpkg refuses none).
        ((wrote_body)) || echo "  * No notes."
        printf '\n -- %s  %s\n' "$maintainer" "$date"
        in_entry=0
    fi
}
while IFS= read -r line || [[ -n $line ]]; do
    if [[ $line =~ ^##\ \[([^]]+)\](\ -\ ([0-9]{4}-[0-9]{2}-[0-9]{2}))? ]]; then
        close_entry
        name=${BASH_REMATCH[1]} day=${BASH_REMATCH[3]}
        if [[ $name == Unreleased ]]; then
            if ((skip_unreleased)); then skipping=1; continue; fi
            entry_version=$version dist=UNRELEASED date=$(date_of now)
        else
            [[ -n $day ]] || { echo "changelog.sh: $name has no date" >&2; exit 1; }
            entry_version=$name dist=unstable date=$(date_of "$day")
        fi
        skipping=0
        ((entries++ == 0)) || echo
        printf '%s (%s) %s; urgency=medium\n\n' "$package" "$entry_version" "$dist"
        in_entry=1 wrote_body=0
        continue
    fi
    ((in_entry)) && ((!skipping)) || continue
    case $line in
    '### '*)
        flush_item
        ((wrote_body)) && echo
        echo "  ${line#'### '}:"
        wrote_body=1
        ;;
    '- '*) flush_item; item="* ${line#- }" ;;
    '['*']: '*) ;;
    '') flush_item ;;
    *)
        line=${line#"${line%%[![:space:]]*}"}
        if [[ -n $item ]]; then item+=" $line"; else item=$line; fi
        ;;
    esac
done <"$changelog"
close_entry

if ((entries == 0)); then
    # A package needs a changelog entry for its own version.
    printf '%s (%s) UNRELEASED; urgency=medium\n\n  * No notes.\n\n -- %s  %s\n' \
        "$package" "$version" "$maintainer" "$(date_of now)"
fi
