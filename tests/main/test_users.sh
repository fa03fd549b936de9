#!/usr/bin/env bash
# Users and keys with real OpenSSH clients: /NAME.pub files and
# /authorized_keys in the image, --user/--key precedence, a key uploaded
# over SFTP working for the next connection, and rejected lines logged
# with their file and line number.
set -uo pipefail
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../ssh/ssh_lib.sh"

cd "$TMPDIR"
make_image disk.img 32 512
for name in alice bob carol mirage other newuser; do
    make_key "$name" ed25519
done

# sftp_as USER KEY: run the batch on stdin as USER with KEY.
sftp_as() {
    timeout 60 sftp -b - -P "$PORT" -i "$2" "${SSH_OPTS[@]}" \
        "$1@127.0.0.1"
}

# lists_root NAME USER KEY: USER logs in with KEY and lists /.
lists_root() {
    local out
    out=$(echo "ls /" | sftp_as "$2" "$3" 2>&1)
    check_contains "$1" "alice.pub" "$out"
}

"$IMAGE_TOOL" write disk.img /alice.pub "$(cat alice.pub)" >/dev/null
# mirage.pub contains "other": the --key given for mirage below wins.
"$IMAGE_TOOL" write disk.img /mirage.pub "$(cat other.pub)" >/dev/null
{
    echo "# users of the test image"
    echo
    echo "$(cut -d' ' -f1,2 bob.pub) bob"
    echo "restrict,from=\"127.0.0.1\" $(cut -d' ' -f1,2 carol.pub) carol"
    echo "this is not a key"
    echo "$(cut -d' ' -f1,2 other.pub) mirage"
} >authorized_keys
"$IMAGE_TOOL" write disk.img /authorized_keys - <authorized_keys >/dev/null

start_server server.log --key "$(cat mirage.pub)" disk.img || exit 1

lists_root "user from NAME.pub logs in" alice alice
lists_root "user from authorized_keys logs in" bob bob
lists_root "command-line user logs in with --key" mirage mirage
check_rejected "command-line key wins over mirage.pub" \
    "Permission denied" sftp_as mirage other
check_rejected "options line does not grant a login" \
    "Permission denied" sftp_as carol carol
check_rejected "key of another user is rejected" \
    "Permission denied" sftp_as alice bob

check_contains "options line logged with file and line" \
    "/authorized_keys line 4 skipped: key options are not supported" \
    "$(cat server.log)"
check_contains "malformed line logged with file and line" \
    "/authorized_keys line 5 skipped: not an OpenSSH public-key line" \
    "$(cat server.log)"
check_eq "rejected lines are warnings" 0 \
    "$(grep '/authorized_keys line [45] skipped:' server.log | grep -vc 'warning:')"

# A key uploaded over SFTP counts for the next connection.
check_rejected "newuser rejected before its key exists" \
    "Permission denied" sftp_as newuser newuser
check_ok "alice uploads /newuser.pub" \
    sftp_as alice alice <<<"put newuser.pub /newuser.pub"
lists_root "newuser logs in after the upload" newuser newuser
check_ok "alice removes /newuser.pub" \
    sftp_as alice alice <<<"rm /newuser.pub"
check_rejected "newuser rejected after the key is removed" \
    "Permission denied" sftp_as newuser newuser

# Every connection re-reads the files, but the same warnings are logged
# only once; a changed file logs its warnings again.
check_eq "unchanged warnings are not repeated" "1 1" \
    "$(grep -c '/authorized_keys line 4 skipped' server.log) $(grep -c \
    '/authorized_keys line 5 skipped' server.log)"
echo "another bad line" >>authorized_keys
check_ok "alice uploads a changed /authorized_keys" \
    sftp_as alice alice <<<"put authorized_keys /authorized_keys"
lists_root "bob still logs in after the change" bob bob
check_eq "changed file logs its warnings again" "2 2 1" \
    "$(grep -c '/authorized_keys line 4 skipped' server.log) $(grep -c \
    '/authorized_keys line 5 skipped' server.log) $(grep -c \
    '/authorized_keys line 7 skipped' server.log)"
check_stopped "server stops cleanly"

# Without --key, the --user user takes its keys from the image too.
start_server nokey.log --user alice disk.img || exit 1
lists_root "--user without --key takes NAME.pub keys" alice alice
lists_root "other users still log in" bob bob
check_stopped "server without --key stops cleanly"

check_finish
