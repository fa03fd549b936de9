#!/usr/bin/env bash
# Tests of the sshfsd-image command-line tool: every command's output and
# exit status, the error messages, and that a failed command leaves the
# image byte for byte unchanged.  Run by tests/run.sh with BUILD and TMPDIR.
set -u

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/lib.sh"

TOOL="$BUILD/sshfsd-image"
FIXTURES="$ROOT/tests/fixtures/littlefs"
WORK="$TMPDIR/image-tool"
mkdir -p "$WORK"
cd "$WORK" || exit 1

# A 32-hex-digit AES-128 key for the encryption option checks.
KEY=000102030405060708090a0b0c0d0e0f

# run_image ARGS...: run the tool with stdin from /dev/null; sets STATUS,
# OUT and ERR (command substitution drops trailing newlines).
run_image() {
    run_image_stdin /dev/null "$@"
}

# run_image_stdin FILE ARGS...: the same, with stdin from FILE.
run_image_stdin() {
    local input=$1
    shift
    STATUS=0
    "$TOOL" "$@" <"$input" >"$WORK/stdout" 2>"$WORK/stderr" || STATUS=$?
    OUT=$(cat "$WORK/stdout")
    ERR=$(cat "$WORK/stderr")
}

sha() {
    sha256sum "$1" | cut -d' ' -f1
}

# expect_failure NAME STATUS STDERR IMAGE ARGS...: the command exits with
# STATUS, prints exactly STDERR, prints nothing on stdout and leaves IMAGE
# unchanged.
expect_failure() {
    local name=$1 status=$2 message=$3 image=$4 before
    shift 4
    before=$(sha "$image")
    run_image "$@"
    check_eq "$name exit status" "$status" "$STATUS"
    check_eq "$name message" "$message" "$ERR"
    check_eq "$name prints nothing" "" "$OUT"
    check_eq "$name image unchanged" "$before" "$(sha "$image")"
}

# new_image NAME [FORMAT ARGS...]: a freshly formatted 256 KiB image.
new_image() {
    local image=$1
    shift
    rm -f "$image"
    "$TOOL" format --size 256K "$@" "$image" >/dev/null 2>&1 ||
        echo "setup: format of $image failed" >&2
}

# ---------------------------------------------------------------------------
# The original workflow: dd, format, then write a public key.

test_original_workflow() {
    local pub="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHXnBy1xX2kqJm6S0Bsbdd2cdrpTB9T7mF0hcYhU6aPJ mirage_sshfs"

    printf '%s\n' "$pub" >username.pub
    dd if=/dev/zero of=disk.img bs=1M count=32 status=none

    run_image format disk.img 512
    check_eq "workflow format exit status" 0 "$STATUS"
    check_eq "workflow format prints nothing" "" "$OUT$ERR"

    run_image write ./disk.img 512 /username.pub "$(cat username.pub)"
    check_eq "workflow write exit status" 0 "$STATUS"
    check_eq "workflow write prints nothing" "" "$OUT$ERR"

    # "$(cat username.pub)" drops the trailing newline, so the image stores
    # the key line without it.
    printf '%s' "$pub" >expected.pub
    "$TOOL" read disk.img /username.pub >stored.pub
    check_eq "workflow read is byte exact" "$(sha expected.pub)" \
        "$(sha stored.pub)"
    check_eq "workflow stored size" 93 "$(stat -c %s stored.pub)"

    run_image ls disk.img
    check_eq "workflow ls" "username.pub" "$OUT"

    run_image info disk.img
    check_eq "workflow info" "disk_version: 2.0
block_size: 512
block_count: 65536
used_blocks: 3
name_max: 255
file_max: 2147483647
attr_max: 1022" "$OUT"

    run_image check disk.img
    check_eq "workflow check exit status" 0 "$STATUS"
    check_eq "workflow check report" "3 of 65536 blocks in use, 0 problems" \
        "$OUT"
}

# ---------------------------------------------------------------------------
# format

test_format() {
    run_image format --size 1M sized.img 4096
    check_eq "format --size exit status" 0 "$STATUS"
    check_eq "format --size file size" 1048576 "$(stat -c %s sized.img)"
    run_image info sized.img
    check_eq "format --size info" "disk_version: 2.0
block_size: 4096
block_count: 256
used_blocks: 2
name_max: 255
file_max: 2147483647
attr_max: 1022" "$OUT"

    head -c 100 /dev/zero >resized.img
    run_image format --size=64K resized.img
    check_eq "format --size resizes exit status" 0 "$STATUS"
    check_eq "format --size resizes file" 65536 "$(stat -c %s resized.img)"
    run_image info resized.img
    check_contains "format default block size" "block_size: 512" "$OUT"
    check_contains "format default block count" "block_count: 128" "$OUT"

    run_image format --size 2k small.img 256
    check_eq "format lowercase suffix file size" 2048 \
        "$(stat -c %s small.img)"

    run_image format --size 2M --disk-version 2.1 --name-max 32 v21.img
    check_eq "format 2.1 exit status" 0 "$STATUS"
    run_image info v21.img
    check_eq "format 2.1 info" "disk_version: 2.1
block_size: 512
block_count: 4096
used_blocks: 2
name_max: 32
file_max: 2147483647
attr_max: 1022" "$OUT"

    run_image format --size 64K --disk-version 2.0 v20.img
    run_image info v20.img
    check_contains "format explicit 2.0" "disk_version: 2.0" "$OUT"

    # An existing image of the right size is formatted in place, without
    # --size; everything on it is gone afterwards.
    new_image reformat.img
    "$TOOL" write reformat.img /old "old" >/dev/null 2>&1
    run_image format reformat.img
    check_eq "format in place exit status" 0 "$STATUS"
    run_image ls reformat.img
    check_eq "format in place empties image" "" "$OUT"
}

test_format_errors() {
    local bs
    new_image keep.img

    for bs in 500 64 131072 0 12ab; do
        expect_failure "format block size $bs" 2 \
            "sshfsd-image: keep.img: invalid block size '$bs': expected a power of two from 128 to 65536" \
            keep.img format keep.img "$bs"
    done

    expect_failure "format name max too large" 2 \
        "sshfsd-image: keep.img: invalid --name-max '1023': expected a number from 1 to 1022" \
        keep.img format --name-max 1023 keep.img
    expect_failure "format name max zero" 2 \
        "sshfsd-image: keep.img: invalid --name-max '0': expected a number from 1 to 1022" \
        keep.img format --name-max 0 keep.img
    expect_failure "format disk version" 2 \
        "sshfsd-image: keep.img: invalid --disk-version '2.2': expected 2.0 or 2.1" \
        keep.img format --disk-version 2.2 keep.img
    expect_failure "format size suffix" 2 \
        "sshfsd-image: keep.img: invalid --size '12X': expected a number of bytes with an optional K, M or G suffix" \
        keep.img format --size 12X keep.img
    expect_failure "format size not block multiple" 2 \
        "sshfsd-image: keep.img: image size 1000 is not a multiple of the block size 512" \
        keep.img format --size 1000 keep.img
    expect_failure "format size one block" 2 \
        "sshfsd-image: keep.img: image size 512 is too small: littlefs needs at least 2 blocks of 512 bytes" \
        keep.img format --size 512 keep.img

    head -c 1000 /dev/zero >odd.img
    expect_failure "format file not block multiple" 1 \
        "sshfsd-image: odd.img: image size 1000 is not a multiple of the block size 512" \
        odd.img format odd.img

    run_image format missing.img 512
    check_eq "format missing file exit status" 1 "$STATUS"
    check_eq "format missing file message" \
        "sshfsd-image: missing.img: opening missing.img failed: No such file or directory" \
        "$ERR"
    check_eq "format missing file not created" no \
        "$([ -e missing.img ] && echo yes || echo no)"

    run_image format --size 12X never.img
    check_eq "format invalid size creates nothing" no \
        "$([ -e never.img ] && echo yes || echo no)"
}

# ---------------------------------------------------------------------------
# ls

test_ls() {
    new_image ls.img
    "$TOOL" mkdir ls.img /docs
    "$TOOL" write ls.img /b.txt "bee"
    "$TOOL" write ls.img /a.txt "a"
    "$TOOL" write ls.img /docs/inner.txt "inside"

    run_image ls ls.img
    check_eq "ls root sorted" "a.txt
b.txt
docs" "$OUT"
    check_eq "ls exit status" 0 "$STATUS"

    run_image ls ls.img /
    check_eq "ls explicit root" "a.txt
b.txt
docs" "$OUT"

    run_image ls ls.img /docs
    check_eq "ls subdirectory" "inner.txt" "$OUT"

    run_image ls ls.img /docs/inner.txt
    check_eq "ls file shows given path" "/docs/inner.txt" "$OUT"

    run_image ls ls.img 512 /docs
    check_eq "ls with block size" "inner.txt" "$OUT"

    # Files written by the tool carry a modification time; a directory
    # made by mkdir has none.
    local time='[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z'
    run_image ls -l ls.img
    check_eq "ls -l exit status" 0 "$STATUS"
    check_eq "ls -l line count" 3 "$(printf '%s\n' "$OUT" | wc -l)"
    check_eq "ls -l file a.txt" yes "$(printf '%s\n' "$OUT" | sed -n 1p |
        grep -Eq "^-          1 $time a\.txt$" && echo yes || echo no)"
    check_eq "ls -l file b.txt" yes "$(printf '%s\n' "$OUT" | sed -n 2p |
        grep -Eq "^-          3 $time b\.txt$" && echo yes || echo no)"
    check_eq "ls -l directory" \
        "d          0 -                    docs" \
        "$(printf '%s\n' "$OUT" | sed -n 3p)"

    run_image ls -l ls.img /docs/inner.txt
    check_eq "ls -l file path" yes "$(printf '%s\n' "$OUT" |
        grep -Eq "^-          6 $time /docs/inner\.txt$" && echo yes || echo no)"

    run_image ls --long ls.img /docs
    check_eq "ls --long" yes "$(printf '%s\n' "$OUT" |
        grep -Eq "^-          6 $time inner\.txt$" && echo yes || echo no)"

    new_image empty.img
    run_image ls empty.img
    check_eq "ls empty image exit status" 0 "$STATUS"
    check_eq "ls empty image prints nothing" "" "$OUT$ERR"

    expect_failure "ls missing path" 1 \
        "sshfsd-image: ls.img: /nope: no such file or directory" \
        ls.img ls ls.img /nope
    expect_failure "ls below a file" 1 \
        "sshfsd-image: ls.img: /a.txt/x: not a directory" \
        ls.img ls ls.img /a.txt/x
}

# ---------------------------------------------------------------------------
# read and write

test_read_write() {
    new_image rw.img

    printf 'line one\nline two\n' >two-lines.txt
    run_image_stdin two-lines.txt write rw.img /stdin.txt
    check_eq "write stdin exit status" 0 "$STATUS"
    "$TOOL" read rw.img /stdin.txt >got.txt
    check_eq "write stdin keeps newlines" "$(sha two-lines.txt)" \
        "$(sha got.txt)"

    run_image_stdin two-lines.txt write rw.img /dash.txt -
    check_eq "write dash exit status" 0 "$STATUS"
    "$TOOL" read rw.img /dash.txt >got.txt
    check_eq "write dash reads stdin" "$(sha two-lines.txt)" "$(sha got.txt)"

    run_image write rw.img /arg.txt "hello"
    run_image read rw.img /arg.txt
    check_eq "write argument" "hello" "$OUT"
    check_eq "read exit status" 0 "$STATUS"

    run_image write rw.img /arg.txt "hi"
    run_image read rw.img /arg.txt
    check_eq "write replaces and truncates" "hi" "$OUT"

    run_image write rw.img /empty.txt ""
    check_eq "write empty exit status" 0 "$STATUS"
    "$TOOL" read rw.img /empty.txt >got.txt
    check_eq "write empty file size" 0 "$(stat -c %s got.txt)"

    run_image write rw.img -- /dash-data.txt "-not-an-option"
    run_image read rw.img /dash-data.txt
    check_eq "write data after --" "-not-an-option" "$OUT"

    run_image write rw.img 512 /bs.txt "with block size"
    run_image read rw.img 512 /bs.txt
    check_eq "read write with block size" "with block size" "$OUT"

    run_image write rw.img /123 "digits"
    run_image read rw.img /123
    check_eq "write digit name with slash" "digits" "$OUT"

    # Contents that span several blocks of a 512-byte image.
    head -c 5000 /dev/urandom >multi.bin
    run_image_stdin multi.bin write rw.img /multi.bin
    "$TOOL" read rw.img /multi.bin >got.bin
    check_eq "write multi-block round trip" "$(sha multi.bin)" \
        "$(sha got.bin)"

    expect_failure "read missing file" 1 \
        "sshfsd-image: rw.img: /nope: no such file or directory" \
        rw.img read rw.img /nope
    "$TOOL" mkdir rw.img /dir
    expect_failure "read directory" 1 \
        "sshfsd-image: rw.img: /dir: is a directory" \
        rw.img read rw.img /dir
    expect_failure "write missing parent" 1 \
        "sshfsd-image: rw.img: /no/such/file: no such file or directory" \
        rw.img write rw.img /no/such/file "x"
    expect_failure "write over directory" 1 \
        "sshfsd-image: rw.img: /dir: is a directory" \
        rw.img write rw.img /dir "x"

    # A stdin that cannot be read (a directory) leaves the old contents.
    local before
    before=$(sha rw.img)
    run_image_stdin "$WORK" write rw.img /arg.txt
    check_eq "write unreadable stdin exit status" 1 "$STATUS"
    check_eq "write unreadable stdin message" \
        "sshfsd-image: rw.img: /arg.txt: cannot read stdin: Is a directory" \
        "$ERR"
    run_image read rw.img /arg.txt
    check_eq "write unreadable stdin keeps contents" "hi" "$OUT"
}

test_write_no_space() {
    new_image full.img
    "$TOOL" write full.img /keep.txt "precious"

    # 256 KiB of data cannot fit on a 256 KiB image next to its metadata.
    head -c 262144 /dev/urandom >too-big.bin
    run_image_stdin too-big.bin write full.img /keep.txt
    check_eq "write no space exit status" 1 "$STATUS"
    check_eq "write no space message" \
        "sshfsd-image: full.img: /keep.txt: no space left on the image (all 512 blocks are in use)" "$ERR"
    run_image read full.img /keep.txt
    check_eq "write no space keeps old contents" "precious" "$OUT"
}

test_large_file() {
    run_image format --size 32M big.img 4096
    check_eq "large image format exit status" 0 "$STATUS"
    head -c 20971520 /dev/urandom >large.bin

    run_image_stdin large.bin write big.img /large.bin
    check_eq "large write exit status" 0 "$STATUS"
    "$TOOL" read big.img /large.bin >large-read.bin
    check_eq "large round trip" "$(sha large.bin)" "$(sha large-read.bin)"

    run_image ls -l big.img /large.bin
    check_eq "large ls size" 20971520 "$(printf '%s\n' "$OUT" |
        awk '{ print $2 }')"

    run_image check big.img
    check_eq "large check exit status" 0 "$STATUS"
}

# ---------------------------------------------------------------------------
# mkdir, rm, mv

test_mkdir() {
    new_image dirs.img

    run_image mkdir dirs.img /a
    check_eq "mkdir exit status" 0 "$STATUS"
    run_image mkdir -p dirs.img /a/b/c
    check_eq "mkdir -p exit status" 0 "$STATUS"
    run_image ls dirs.img /a/b
    check_eq "mkdir -p creates chain" "c" "$OUT"

    run_image mkdir -p dirs.img /a/b/c
    check_eq "mkdir -p existing is fine" 0 "$STATUS"
    run_image mkdir --parents dirs.img /a//d/
    check_eq "mkdir --parents double slash" 0 "$STATUS"
    run_image ls dirs.img /a
    check_eq "mkdir --parents created d" "b
d" "$OUT"

    "$TOOL" write dirs.img /file "x"
    expect_failure "mkdir existing" 1 \
        "sshfsd-image: dirs.img: /a: file exists" \
        dirs.img mkdir dirs.img /a
    expect_failure "mkdir -p through file" 1 \
        "sshfsd-image: dirs.img: /file/sub: file exists" \
        dirs.img mkdir -p dirs.img /file/sub
    expect_failure "mkdir missing parent" 1 \
        "sshfsd-image: dirs.img: /x/y: no such file or directory" \
        dirs.img mkdir dirs.img /x/y
}

test_rm() {
    new_image rm.img
    "$TOOL" mkdir -p rm.img /tree/sub/deeper
    "$TOOL" write rm.img /tree/one "1"
    "$TOOL" write rm.img /tree/sub/two "2"
    "$TOOL" write rm.img /tree/sub/deeper/three "3"
    "$TOOL" mkdir rm.img /emptydir
    "$TOOL" write rm.img /file "f"

    expect_failure "rm non-empty directory" 1 \
        "sshfsd-image: rm.img: /tree: directory not empty" \
        rm.img rm rm.img /tree
    expect_failure "rm missing" 1 \
        "sshfsd-image: rm.img: /nope: no such file or directory" \
        rm.img rm rm.img /nope
    expect_failure "rm root" 1 \
        "sshfsd-image: rm.img: /: cannot remove the root directory" \
        rm.img rm -r rm.img /
    expect_failure "rm root through dotdot" 1 \
        "sshfsd-image: rm.img: /tree/..: cannot remove the root directory" \
        rm.img rm -r rm.img /tree/..

    run_image rm rm.img /file
    check_eq "rm file exit status" 0 "$STATUS"
    run_image rm rm.img /emptydir
    check_eq "rm empty directory exit status" 0 "$STATUS"
    run_image rm -r rm.img /tree
    check_eq "rm -r exit status" 0 "$STATUS"
    run_image ls rm.img
    check_eq "rm leaves empty root" "" "$OUT"

    "$TOOL" write rm.img /solo "s"
    run_image rm -r rm.img /solo
    check_eq "rm -r file exit status" 0 "$STATUS"

    run_image check rm.img
    check_eq "rm then check exit status" 0 "$STATUS"
}

test_mv() {
    new_image mv.img
    "$TOOL" write mv.img /a "apple"
    "$TOOL" write mv.img /b "banana"
    "$TOOL" mkdir -p mv.img /full/inside
    "$TOOL" mkdir mv.img /hollow

    run_image mv mv.img /a /c
    check_eq "mv exit status" 0 "$STATUS"
    run_image read mv.img /c
    check_eq "mv keeps contents" "apple" "$OUT"
    run_image ls mv.img
    check_eq "mv renames" "b
c
full
hollow" "$OUT"

    run_image mv mv.img /c /b
    run_image read mv.img /b
    check_eq "mv replaces file" "apple" "$OUT"

    run_image mv mv.img /b /full/inside/b
    run_image read mv.img /full/inside/b
    check_eq "mv across directories" "apple" "$OUT"

    "$TOOL" mkdir mv.img /src
    run_image mv mv.img /src /hollow
    check_eq "mv replaces empty directory" 0 "$STATUS"

    "$TOOL" mkdir mv.img /other
    expect_failure "mv onto non-empty directory" 1 \
        "sshfsd-image: mv.img: /full: directory not empty" \
        mv.img mv mv.img /other /full
    expect_failure "mv missing source" 1 \
        "sshfsd-image: mv.img: /nope: no such file or directory" \
        mv.img mv mv.img /nope /x
    expect_failure "mv missing target parent" 1 \
        "sshfsd-image: mv.img: /no/dir/x: no such file or directory" \
        mv.img mv mv.img /other /no/dir/x
}

# ---------------------------------------------------------------------------
# check, info, block size, encryption options, usage

test_check() {
    new_image check.img
    run_image check check.img
    check_eq "check fresh exit status" 0 "$STATUS"
    check_eq "check fresh report" "2 of 512 blocks in use, 0 problems" "$OUT"
    check_eq "check fresh no errors" "" "$ERR"

    "$TOOL" mkdir check.img /d
    "$TOOL" write check.img /d/f "content"
    run_image check check.img
    check_eq "check written exit status" 0 "$STATUS"
    check_eq "check written report" "4 of 512 blocks in use, 0 problems" \
        "$OUT"

    # A 5000-byte file is a CTZ skip-list in blocks past the superblock
    # pair {0,1}.  Pointing every skip pointer at block 0 makes the file
    # claim a metadata block, which check reports as a problem.
    local block before
    rm -f problem.img
    "$TOOL" format --size 64K problem.img
    head -c 5000 /dev/urandom >five-k.bin
    "$TOOL" write problem.img /f <five-k.bin
    for block in $(seq 2 127); do
        printf '\000\000\000\000' |
            dd of=problem.img bs=1 seek=$((block * 512)) conv=notrunc \
                status=none
    done
    before=$(sha problem.img)
    run_image check problem.img
    check_eq "check problem exit status" 1 "$STATUS"
    check_eq "check problem report" "file /f: block 0 is already used by metadata
2 of 128 blocks in use, 1 problem" "$OUT"
    check_eq "check problem image unchanged" "$before" "$(sha problem.img)"

    head -c 65536 /dev/zero >zeros.img
    expect_failure "check not littlefs" 2 \
        "sshfsd-image: zeros.img: not a littlefs image (no littlefs superblock in block 0 or 1)" \
        zeros.img check zeros.img
}

test_block_size_mismatch() {
    new_image bs.img
    "$TOOL" write bs.img /f "data"

    expect_failure "ls wrong block size" 1 \
        "sshfsd-image: bs.img: block size 4096 does not match the image's block size 512" \
        bs.img ls bs.img 4096
    expect_failure "write wrong block size" 1 \
        "sshfsd-image: bs.img: block size 1024 does not match the image's block size 512" \
        bs.img write bs.img 1024 /f "other"
    expect_failure "info invalid block size" 2 \
        "sshfsd-image: bs.img: invalid block size '1000': expected a power of two from 128 to 65536" \
        bs.img info bs.img 1000
    expect_failure "info non-numeric block size" 2 \
        "sshfsd-image: bs.img: invalid block size 'abc': expected a power of two from 128 to 65536" \
        bs.img info bs.img abc

    run_image info bs.img 512
    check_eq "info matching block size" 0 "$STATUS"
}

test_missing_image() {
    local cmd
    for cmd in ls info check; do
        run_image "$cmd" nothing.img
        check_eq "$cmd missing image message" \
            "sshfsd-image: nothing.img: opening nothing.img failed: No such file or directory" \
            "$ERR"
    done
    run_image ls nothing.img
    check_eq "ls missing image exit status" 1 "$STATUS"
    run_image check nothing.img
    check_eq "check missing image exit status" 2 "$STATUS"
}

test_encryption_options() {
    new_image plain.img
    printf '%s\n' "$KEY" >key.hex
    printf 'not hex\n' >bad.hex

    expect_failure "key not supported" 1 \
        "sshfsd-image: plain.img: encrypted images are not supported yet" \
        plain.img ls --key "$KEY" plain.img
    expect_failure "blockkey not supported" 1 \
        "sshfsd-image: plain.img: encrypted images are not supported yet" \
        plain.img write --blockkey=0x$KEY plain.img /f "x"
    expect_failure "key file not supported" 1 \
        "sshfsd-image: plain.img: encrypted images are not supported yet" \
        plain.img info --key-file key.hex plain.img
    expect_failure "format with key not supported" 1 \
        "sshfsd-image: plain.img: encrypted images are not supported yet" \
        plain.img format --key "$KEY" plain.img
    expect_failure "invalid key" 2 \
        "sshfsd-image: invalid key: expected 32, 48 or 64 hex digits (an AES key of 16, 24 or 32 bytes)" \
        plain.img ls --key 0011 plain.img
    expect_failure "invalid key file" 2 \
        "sshfsd-image: bad.hex: invalid key: expected 32, 48 or 64 hex digits (an AES key of 16, 24 or 32 bytes)" \
        plain.img ls --key-file bad.hex plain.img
    expect_failure "missing key file" 1 \
        "sshfsd-image: none.hex: cannot open key file: No such file or directory" \
        plain.img ls --key-file none.hex plain.img
    expect_failure "key and key file" 2 \
        "sshfsd-image: give the key with --key or with --key-file, not both" \
        plain.img ls --key "$KEY" --key-file key.hex plain.img

    expect_failure "encrypt not supported" 1 \
        "sshfsd-image: plain.img: encrypted images are not supported yet" \
        plain.img encrypt --in plain.img --out enc.img --key "$KEY"
    expect_failure "enc equals forms" 1 \
        "sshfsd-image: plain.img: encrypted images are not supported yet" \
        plain.img enc --in=plain.img --out=enc.img --key=$KEY
    expect_failure "dec not supported" 1 \
        "sshfsd-image: plain.img: encrypted images are not supported yet" \
        plain.img dec -i plain.img -o dec.img -k "$KEY"
    expect_failure "decrypt needs out" 2 \
        "sshfsd-image: plain.img: command 'decrypt' needs --out IMAGE" \
        plain.img decrypt --in plain.img --key "$KEY"
    expect_failure "encrypt needs key" 2 \
        "sshfsd-image: plain.img: command 'encrypt' needs --key HEX or --key-file FILE" \
        plain.img encrypt --in plain.img --out enc.img
    check_eq "encrypt creates no output" no \
        "$([ -e enc.img ] && echo yes || echo no)"
}

test_usage() {
    local option
    for option in help -h --help; do
        run_image $option
        check_eq "$option exit status" 0 "$STATUS"
        check_eq "$option first line" \
            "Usage: sshfsd-image COMMAND [OPTIONS] IMAGE [BLOCK_SIZE] [ARGUMENTS]" \
            "$(printf '%s\n' "$OUT" | head -n 1)"
        check_eq "$option stderr empty" "" "$ERR"
    done
    run_image ls --help
    check_eq "command --help exit status" 0 "$STATUS"

    run_image help
    local command
    for command in format ls read write mkdir rm mv check info encrypt \
        decrypt; do
        check_contains "usage lists $command" "  $command" "$OUT"
    done

    run_image frobnicate disk.img
    check_eq "unknown command exit status" 2 "$STATUS"
    check_eq "unknown command first line" \
        "sshfsd-image: unknown command 'frobnicate'" \
        "$(printf '%s\n' "$ERR" | head -n 1)"
    check_contains "unknown command prints usage" "Usage: sshfsd-image" "$ERR"
    check_eq "unknown command stdout empty" "" "$OUT"

    run_image
    check_eq "no command exit status" 2 "$STATUS"
    check_eq "no command first line" "sshfsd-image: no command given" \
        "$(printf '%s\n' "$ERR" | head -n 1)"

    new_image usage.img
    local cases=(
        "read -l usage.img /x|option '-l' is not valid for command 'read'"
        "ls --frob usage.img|unknown option '--frob'"
        "read usage.img|command 'read' is missing an argument"
        "ls|command 'ls' needs an IMAGE argument"
        "mv usage.img /a /b /c|too many arguments for command 'mv'"
        "format usage.img --size|option '--size' needs a value"
        "ls -l=1 usage.img|unknown option '-l=1'"
        "ls --long=yes usage.img|option '--long=yes' takes no value"
        "mkdir -p -p usage.img /a|option '-p' is given twice"
    )
    local entry args message
    for entry in "${cases[@]}"; do
        args=${entry%%|*}
        message=${entry#*|}
        # shellcheck disable=SC2086
        run_image $args
        check_eq "usage '$args' exit status" 2 "$STATUS"
        check_eq "usage '$args' message" "sshfsd-image: $message" \
            "$(printf '%s\n' "$ERR" | head -n 1)"
    done
}

# ---------------------------------------------------------------------------
# Fixture images made by the reference littlefs

# manifest_header MANIFEST KEY: the value of a "# KEY: value" header line.
manifest_header() {
    sed -n "s/^# $2: //p" "$1"
}

# walk_image IMAGE DIR: one manifest-style line per entry below DIR.
walk_image() {
    local image=$1 dir=$2 listing type size mtime name path
    listing=$("$TOOL" ls -l "$image" "$dir") || {
        echo "ls of $dir failed"
        return
    }
    [ -n "$listing" ] || return
    while read -r type size mtime name; do
        path="${dir%/}/$name"
        if [ "$type" = d ]; then
            echo "d $path - -"
            walk_image "$image" "$path"
        else
            echo "f $path $size $("$TOOL" read "$image" "$path" | sha256sum |
                cut -d' ' -f1)"
        fi
    done <<<"$listing"
}

test_fixtures() {
    local manifest image name before version
    for manifest in "$FIXTURES"/*.manifest; do
        image=${manifest%.manifest}.img
        name=$(basename "$image")
        before=$(sha "$image")

        check_eq "fixture $name tree" \
            "$(grep -E '^[fd] ' "$manifest" | LC_ALL=C sort)" \
            "$(walk_image "$image" / | LC_ALL=C sort)"

        version=$(manifest_header "$manifest" disk_version | cut -d' ' -f1)
        run_image info "$image"
        check_eq "fixture $name info" "disk_version: $version
block_size: $(manifest_header "$manifest" block_size)
block_count: $(manifest_header "$manifest" block_count)
used_blocks: $(manifest_header "$manifest" 'used_blocks (lfs_fs_size)')
name_max: 255
file_max: 2147483647
attr_max: 1022" "$OUT"

        run_image check "$image"
        check_eq "fixture $name check exit status" 0 "$STATUS"
        check_eq "fixture $name unchanged by reads" "$before" "$(sha "$image")"
    done

    run_image ls "$FIXTURES/small-512-v20.img"
    check_eq "fixture small ls in byte order" "café.txt
docs
empty
hello.txt
username.pub
€uro.txt" "$OUT"

    run_image read "$FIXTURES/small-512-v21.img" /hello.txt
    check_eq "fixture small read hello" "hello world" "$OUT"

    for name in attrs-512-v20.img attrs-512-v21.img; do
        run_image ls -l "$FIXTURES/$name" /stamped.txt
        check_eq "fixture $name mtime attribute" \
            "-         51 2021-09-25T20:33:16Z /stamped.txt" "$OUT"
        run_image ls -l "$FIXTURES/$name"
        check_eq "fixture $name listing" \
            "-         28 -                    plain.txt
-         51 2021-09-25T20:33:16Z stamped.txt" "$OUT"
    done

    run_image ls "$FIXTURES/big-4096-v20.img" /many
    check_eq "fixture big many count" 199 "$(printf '%s\n' "$OUT" | wc -l)"
}

test_fixture_copy_writable() {
    # A 2.0 image written by this tool stays readable and checks clean.
    cp "$FIXTURES/small-512-v20.img" copy.img
    chmod u+w copy.img
    run_image write copy.img /docs/new.txt "new file"
    check_eq "fixture copy write exit status" 0 "$STATUS"
    run_image read copy.img /docs/new.txt
    check_eq "fixture copy read back" "new file" "$OUT"
    run_image read copy.img /hello.txt
    check_eq "fixture copy keeps old file" "hello world" "$OUT"
    run_image check copy.img
    check_eq "fixture copy check exit status" 0 "$STATUS"
}

test_original_workflow
test_format
test_format_errors
test_ls
test_read_write
test_write_no_space
test_large_file
test_mkdir
test_rm
test_mv
test_check
test_block_size_mismatch
test_missing_image
test_encryption_options
test_usage
test_fixtures
test_fixture_copy_writable

check_finish
