#!/usr/bin/env bash
# Tests of the sshfsd-image command-line tool: every command's output and
# exit status, the error messages, and that a failed command leaves the
# image byte for byte unchanged.  Run by tests/run.sh with BUILD and TMPDIR.
set -u

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/lib.sh"

TOOL="$BUILD/sshfsd-image"
FIXTURES="$ROOT/tests/fixtures/littlefs"
CCM_FIXTURES="$ROOT/tests/fixtures/ccm"
WORK="$TMPDIR/image-tool"
mkdir -p "$WORK"
cd "$WORK" || exit 1

# A 32-hex-digit AES-128 key for the encryption checks.
KEY=000102030405060708090a0b0c0d0e0f

# The key of the encrypted fixtures, and of the walkthrough that the
# original system's documentation gives.
CCM_KEY=1234567890ABCDEF1234567890ABCDEF

# A key of the right length that opens none of the images.
WRONG_KEY=00000000000000000000000000000000

# The environment variable the tool reads the key from.
unset SSHFSD_BLOCKKEY

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
        "sshfsd-image: opening missing.img failed: No such file or directory" \
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
            "sshfsd-image: opening nothing.img failed: No such file or directory" \
            "$ERR"
    done
    run_image ls nothing.img
    check_eq "ls missing image exit status" 1 "$STATUS"
    run_image check nothing.img
    check_eq "check missing image exit status" 2 "$STATUS"
}

test_key_options() {
    new_image plain.img
    printf '%s\n' "$KEY" >key.hex

    expect_failure "key and key file" 2 \
        "sshfsd-image: give the key with --key or with --key-file, not both" \
        plain.img ls --key "$KEY" --key-file key.hex plain.img
    expect_failure "blockkey and key file" 2 \
        "sshfsd-image: give the key with --key or with --key-file, not both" \
        plain.img ls --blockkey "$KEY" --key-file key.hex plain.img
    expect_failure "missing key file" 1 \
        "sshfsd-image: none.hex: cannot open key file: No such file or directory" \
        plain.img ls --key-file none.hex plain.img

    head -c 1024 /dev/zero | tr '\0' 'a' >long.hex
    expect_failure "key file too long" 1 \
        "sshfsd-image: long.hex: key file is longer than 1023 bytes" \
        plain.img ls --key-file long.hex plain.img

    # An empty variable counts as unset.
    SSHFSD_BLOCKKEY='' run_image ls plain.img
    check_eq "empty key variable is no key" 0 "$STATUS"

    expect_failure "decrypt needs in" 2 \
        "sshfsd-image: command 'decrypt' needs --in IMAGE" \
        plain.img decrypt --out dec.img --key "$KEY"
    expect_failure "decrypt needs out" 2 \
        "sshfsd-image: plain.img: command 'decrypt' needs --out IMAGE" \
        plain.img decrypt --in plain.img --key "$KEY"
    expect_failure "encrypt needs key" 2 \
        "sshfsd-image: plain.img: command 'encrypt' needs --key HEX, --key-file FILE or \$SSHFSD_BLOCKKEY" \
        plain.img encrypt --in plain.img --out enc.img
    check_eq "encrypt without key creates no output" no \
        "$([ -e enc.img ] && echo yes || echo no)"

    # The output must not be the input under another name: creating it
    # would truncate the input before a byte of it is read.
    ln -f plain.img plain-link.img
    local out
    for out in plain.img ./plain.img "$WORK/plain.img" plain-link.img; do
        expect_failure "encrypt onto input as $out" 2 \
            "sshfsd-image: plain.img: --in and --out must be different files" \
            plain.img encrypt --in plain.img --out "$out" --key "$KEY"
    done
    expect_failure "decrypt onto input" 2 \
        "sshfsd-image: plain.img: --in and --out must be different files" \
        plain.img decrypt --in plain.img --out ./plain.img --key "$KEY"
    run_image ls plain.img
    check_eq "input still a plain image" 0 "$STATUS"

    mkdir -p out-dir
    expect_failure "encrypt onto directory" 1 \
        "sshfsd-image: out-dir: cannot create output: not a regular file" \
        plain.img encrypt --in plain.img --out out-dir --key "$KEY"
    check_eq "encrypt onto directory keeps it" yes \
        "$([ -d out-dir ] && echo yes || echo no)"

    expect_failure "encrypt missing input" 1 \
        "sshfsd-image: opening none.img failed: No such file or directory" \
        plain.img encrypt --in none.img --out enc.img --key "$KEY"
    check_eq "encrypt missing input creates no output" no \
        "$([ -e enc.img ] && echo yes || echo no)"

    # Short options, and the key from the environment.
    run_image enc -i plain.img -o short.img -k "$KEY"
    check_eq "enc short options exit status" 0 "$STATUS"
    SSHFSD_BLOCKKEY=$KEY run_image dec -i short.img -o short-back.img
    check_eq "dec key from environment exit status" 0 "$STATUS"
    check_eq "dec key from environment prints nothing" "" "$OUT$ERR"
    check_eq "short options round trip" "$(sha plain.img)" \
        "$(sha short-back.img)"
}

# ---------------------------------------------------------------------------
# Encrypted images (AES-CCM sectors in mirage-block-ccm's format)

# The original system's walkthrough, with only the program names changed:
# make a key pair, a zero-filled image, format it, store the public key,
# encrypt the image.
test_encrypted_walkthrough() {
    mkdir -p walkthrough
    cd walkthrough || return

    ssh-keygen -t ed25519 -C mirage_sshfs -f username -N '' >/dev/null ||
        echo "setup: ssh-keygen failed" >&2
    dd if=/dev/zero of=disk.img bs=1M count=32 2>/dev/null

    run_image format disk.img 512
    check_eq "walkthrough format exit status" 0 "$STATUS"
    run_image write ./disk.img 512 /username.pub "$(cat username.pub)"
    check_eq "walkthrough write exit status" 0 "$STATUS"

    local plain_sha
    plain_sha=$(sha disk.img)
    run_image enc --in=disk.img --out=encrypted.img \
        --key=1234567890ABCDEF1234567890ABCDEF
    check_eq "walkthrough enc exit status" 0 "$STATUS"
    check_eq "walkthrough enc prints nothing" "" "$OUT$ERR"
    check_eq "walkthrough enc keeps plain image" "$plain_sha" "$(sha disk.img)"
    check_eq "walkthrough encrypted size is double" 67108864 \
        "$(stat -c %s encrypted.img)"

    # Neither the littlefs magic nor the key's comment is in the clear.
    check_eq "walkthrough plain image shows magic" yes \
        "$(grep -aqF littlefs disk.img && echo yes || echo no)"
    check_eq "walkthrough encrypted image hides magic" no \
        "$(grep -aqF littlefs encrypted.img && echo yes || echo no)"
    check_eq "walkthrough encrypted image hides contents" no \
        "$(grep -aqF mirage_sshfs encrypted.img && echo yes || echo no)"

    # "$(cat username.pub)" drops the trailing newline.
    printf '%s' "$(cat username.pub)" >expected.pub
    printf '%s\n' "$CCM_KEY" >key.hex
    printf '0x%s\r\n' "${CCM_KEY,,}" >key-crlf.hex

    local encrypted_sha options
    encrypted_sha=$(sha encrypted.img)
    local key_options=(
        "--key $CCM_KEY"
        "--key=$CCM_KEY"
        "-k $CCM_KEY"
        "--key 0x$CCM_KEY"
        "--key 0X${CCM_KEY,,}"
        "--blockkey $CCM_KEY"
        "--blockkey=0x$CCM_KEY"
        "--key-file key.hex"
        "--key-file=key-crlf.hex"
    )
    for options in "${key_options[@]}"; do
        # shellcheck disable=SC2086
        run_image read $options encrypted.img /username.pub
        check_eq "walkthrough read $options exit status" 0 "$STATUS"
        check_eq "walkthrough read $options contents" "$(sha expected.pub)" \
            "$(sha "$WORK/stdout")"
        check_eq "walkthrough read $options no errors" "" "$ERR"
    done

    SSHFSD_BLOCKKEY=$CCM_KEY run_image read encrypted.img /username.pub
    check_eq "walkthrough read key variable exit status" 0 "$STATUS"
    check_eq "walkthrough read key variable contents" "$(sha expected.pub)" \
        "$(sha "$WORK/stdout")"

    # --key wins over the environment.
    SSHFSD_BLOCKKEY=$WRONG_KEY run_image read --key "$CCM_KEY" encrypted.img \
        /username.pub
    check_eq "walkthrough key option beats variable" "$(sha expected.pub)" \
        "$(sha "$WORK/stdout")"

    run_image ls --key "$CCM_KEY" encrypted.img
    check_eq "walkthrough ls" "username.pub" "$OUT"
    SSHFSD_BLOCKKEY=$CCM_KEY run_image ls -l encrypted.img /username.pub
    check_eq "walkthrough ls -l size" 93 "$(printf '%s\n' "$OUT" |
        awk '{ print $2 }')"

    local plain_info
    plain_info=$("$TOOL" info disk.img)
    run_image info --blockkey "$CCM_KEY" encrypted.img 512
    check_eq "walkthrough info matches plain image" "$plain_info" "$OUT"
    check_contains "walkthrough info block count" "block_count: 65536" "$OUT"

    run_image check --key-file key.hex encrypted.img
    check_eq "walkthrough check exit status" 0 "$STATUS"
    check_eq "walkthrough check report" \
        "3 of 65536 blocks in use, 0 problems" "$OUT"

    expect_failure "walkthrough ls without key" 1 \
        "sshfsd-image: encrypted.img: this looks like an encrypted image: give its key with --key" \
        encrypted.img ls encrypted.img
    check_eq "walkthrough reads leave image unchanged" "$encrypted_sha" \
        "$(sha encrypted.img)"

    # Every sector was written through the encryption, so decrypt has
    # nothing to note.
    run_image dec --in=encrypted.img --out=decrypted.img \
        --key=1234567890ABCDEF1234567890ABCDEF
    check_eq "walkthrough dec exit status" 0 "$STATUS"
    check_eq "walkthrough dec prints nothing" "" "$OUT$ERR"
    check_eq "walkthrough dec gives back plain image" "$plain_sha" \
        "$(sha decrypted.img)"
    check_eq "walkthrough dec keeps encrypted image" "$encrypted_sha" \
        "$(sha encrypted.img)"

    # Every write draws a fresh random nonce, so encrypting again gives
    # other bytes with the same plaintext.
    run_image encrypt --in disk.img --out again.img --key "$CCM_KEY"
    check_eq "walkthrough encrypt again exit status" 0 "$STATUS"
    check_eq "walkthrough encrypt again differs" no \
        "$([ "$(sha again.img)" = "$encrypted_sha" ] && echo yes || echo no)"
    run_image read --key "$CCM_KEY" again.img /username.pub
    check_eq "walkthrough encrypt again contents" "$(sha expected.pub)" \
        "$(sha "$WORK/stdout")"

    cd "$WORK" || exit 1
}

# read_manifest_files IMAGE MANIFEST SKIP NAME: read every file that
# MANIFEST lists, except SKIP, with the fixture key and compare its
# SHA-256.
read_manifest_files() {
    local image=$1 manifest=$2 skip=$3 name=$4 type path size digest
    while read -r type path size digest; do
        if [ "$type" != f ] || [ "$path" = "$skip" ]; then
            continue
        fi
        run_image read --key "$CCM_KEY" "$image" "$path"
        check_eq "$name read $path exit status" 0 "$STATUS"
        check_eq "$name read $path contents" "$digest" \
            "$(sha "$WORK/stdout")"
    done <"$manifest"
}

test_ccm_fixture() {
    local image="$CCM_FIXTURES/small-512.ccm.img"
    local manifest="$CCM_FIXTURES/small-512.ccm.manifest"
    local plain="$FIXTURES/small-512-v20.img" before
    before=$(sha "$image")

    check_eq "ccm fixture tree" \
        "$(grep -E '^[fd] ' "$manifest" | LC_ALL=C sort)" \
        "$(walk_image "$image" / --key "$CCM_KEY" | LC_ALL=C sort)"
    read_manifest_files "$image" "$manifest" "" "ccm fixture"

    run_image info --key "$CCM_KEY" "$image"
    check_eq "ccm fixture info" "disk_version: 2.0
block_size: 512
block_count: 256
used_blocks: 20
name_max: 255
file_max: 2147483647
attr_max: 1022" "$OUT"
    run_image check --key "$CCM_KEY" "$image"
    check_eq "ccm fixture check exit status" 0 "$STATUS"
    check_eq "ccm fixture check report" "20 of 256 blocks in use, 0 problems" \
        "$OUT"

    run_image decrypt --in "$image" --out fixture-plain.img --key "$CCM_KEY"
    check_eq "ccm fixture decrypt exit status" 0 "$STATUS"
    check_eq "ccm fixture decrypt prints nothing" "" "$OUT$ERR"
    check_eq "ccm fixture decrypt size" 131072 \
        "$(stat -c %s fixture-plain.img)"
    check_eq "ccm fixture decrypt matches plain fixture" "$(sha "$plain")" \
        "$(sha fixture-plain.img)"
    check_eq "ccm fixture decrypt matches manifest" \
        "$(manifest_header "$manifest" 'plaintext image' |
            sed 's/.*sha256 \([0-9a-f]*\),.*/\1/')" \
        "$(sha fixture-plain.img)"
    check_eq "ccm fixture unchanged" "$before" "$(sha "$image")"

    # Sector 3 holds an unused (0xff) block.  Zeroing its pair makes it a
    # sector never written through the encryption, which decrypt turns
    # back into 0xff bytes.
    cp "$image" zeroed-pair.img
    chmod u+w zeroed-pair.img
    dd if=/dev/zero of=zeroed-pair.img bs=1024 seek=3 count=1 conv=notrunc \
        status=none
    run_image decrypt --in zeroed-pair.img --out zeroed-pair-plain.img \
        --key "$CCM_KEY"
    check_eq "ccm zeroed pair decrypt exit status" 0 "$STATUS"
    check_eq "ccm zeroed pair decrypt note" \
        "sshfsd-image: zeroed-pair.img: note: 1 sector was never written through the encryption and is an erased (0xff) sector in the output" \
        "$ERR"
    check_eq "ccm zeroed pair decrypt matches plain fixture" "$(sha "$plain")" \
        "$(sha zeroed-pair-plain.img)"

    # A copy written by this tool stays readable, and decrypts to a plain
    # image with the new file.
    cp "$image" fixture-copy.img
    chmod u+w fixture-copy.img
    run_image write --key "$CCM_KEY" fixture-copy.img /docs/new.txt "new file"
    check_eq "ccm fixture copy write exit status" 0 "$STATUS"
    run_image read --key "$CCM_KEY" fixture-copy.img /docs/new.txt
    check_eq "ccm fixture copy read back" "new file" "$OUT"
    run_image read --key "$CCM_KEY" fixture-copy.img /hello.txt
    check_eq "ccm fixture copy keeps old file" "hello world" "$OUT"
    run_image check --key "$CCM_KEY" fixture-copy.img
    check_eq "ccm fixture copy check exit status" 0 "$STATUS"
    run_image decrypt --in fixture-copy.img --out fixture-copy-plain.img \
        --key "$CCM_KEY"
    run_image read fixture-copy-plain.img /docs/new.txt
    check_eq "ccm fixture copy decrypted read" "new file" "$OUT"
}

test_ccm_tampered() {
    cp "$CCM_FIXTURES/small-512.ccm.tampered-data.img" tampered-data.img
    cp "$CCM_FIXTURES/small-512.ccm.tampered.img" tampered.img
    cp "$CCM_FIXTURES/small-512.ccm.swapped.img" swapped.img
    local manifest="$CCM_FIXTURES/small-512.ccm.manifest"

    # Sector 5 contains the data of /username.pub: reading it fails, and
    # nothing of it reaches stdout; its metadata and every other file
    # still read.
    expect_failure "tampered data read" 1 \
        "sshfsd-image: tampered-data.img: /username.pub: data failed authentication (sector 5 failed authentication: wrong key or modified image)" \
        tampered-data.img read --key "$CCM_KEY" tampered-data.img /username.pub
    run_image ls -l --key "$CCM_KEY" tampered-data.img /username.pub
    check_eq "tampered data ls -l size" 94 "$(printf '%s\n' "$OUT" |
        awk '{ print $2 }')"
    read_manifest_files tampered-data.img "$manifest" /username.pub \
        "tampered data"

    local before
    before=$(sha tampered-data.img)
    run_image check --key "$CCM_KEY" tampered-data.img
    check_eq "tampered data check exit status" 1 "$STATUS"
    check_eq "tampered data check report" \
        "file /username.pub: block 5: data failed authentication: sector 5 failed authentication: wrong key or modified image
20 of 256 blocks in use, 1 problem" "$OUT"
    check_eq "tampered data check unchanged" "$before" \
        "$(sha tampered-data.img)"

    # Replacing the damaged file leaves its old block behind, unused.
    run_image write --key "$CCM_KEY" tampered-data.img /username.pub "new key"
    check_eq "tampered data replace exit status" 0 "$STATUS"
    run_image read --key "$CCM_KEY" tampered-data.img /username.pub
    check_eq "tampered data replace read back" "new key" "$OUT"
    run_image check --key "$CCM_KEY" tampered-data.img
    check_eq "tampered data replace check exit status" 0 "$STATUS"
    check_eq "tampered data replace check report" \
        "21 of 256 blocks in use, 0 problems" "$OUT"

    # Sector 3 is a block littlefs never used: the filesystem reads in
    # full, but decrypting the whole device stops there.
    read_manifest_files tampered.img "$manifest" "" "tampered unused"
    run_image check --key "$CCM_KEY" tampered.img
    check_eq "tampered unused check exit status" 0 "$STATUS"
    expect_failure "tampered decrypt" 1 \
        "sshfsd-image: tampered.img: sector 3 failed authentication: wrong key or modified image" \
        tampered.img decrypt --in tampered.img --out tampered-plain.img \
        --key "$CCM_KEY"
    check_eq "tampered decrypt leaves no output" no \
        "$([ -e tampered-plain.img ] && echo yes || echo no)"

    # Swapped sectors authenticate: only littlefs notices.
    expect_failure "swapped ls" 1 \
        "sshfsd-image: swapped.img: corrupted filesystem (metadata pair {6, 7} has no valid commit)" \
        swapped.img ls --key "$CCM_KEY" swapped.img
    local plain="$FIXTURES/small-512-v20.img"
    {
        head -c 2560 "$plain"
        dd if="$plain" bs=512 skip=6 count=1 status=none
        dd if="$plain" bs=512 skip=5 count=1 status=none
        tail -c +3585 "$plain"
    } >swapped-expected.img
    run_image decrypt --in swapped.img --out swapped-plain.img --key "$CCM_KEY"
    check_eq "swapped decrypt exit status" 0 "$STATUS"
    check_eq "swapped decrypt exchanges sectors 5 and 6" \
        "$(sha swapped-expected.img)" "$(sha swapped-plain.img)"
}

# The four messages for a mount that fails because of the key.
test_key_messages() {
    cp "$CCM_FIXTURES/small-512.ccm.img" small.ccm.img
    chmod u+w small.ccm.img
    new_image plain.img
    printf '%s\n' "$CCM_KEY" >ccm-key.hex

    local wrong="sshfsd-image: small.ccm.img: wrong key, or not an encrypted image"
    expect_failure "wrong key ls" 1 "$wrong" \
        small.ccm.img ls --key "$WRONG_KEY" small.ccm.img
    expect_failure "wrong key info" 1 "$wrong" \
        small.ccm.img info --key "$WRONG_KEY" small.ccm.img
    expect_failure "wrong key write" 1 "$wrong" \
        small.ccm.img write --key "$WRONG_KEY" small.ccm.img /f "x"
    expect_failure "wrong key mkdir" 1 "$wrong" \
        small.ccm.img mkdir --key "$WRONG_KEY" small.ccm.img /d
    expect_failure "wrong key check" 2 "$wrong" \
        small.ccm.img check --key "$WRONG_KEY" small.ccm.img
    SSHFSD_BLOCKKEY=$WRONG_KEY expect_failure "wrong key from variable" 1 \
        "$wrong" small.ccm.img read small.ccm.img /hello.txt
    expect_failure "wrong key decrypt" 1 \
        "sshfsd-image: small.ccm.img: sector 0 failed authentication: wrong key or modified image" \
        small.ccm.img decrypt --in small.ccm.img --out wrong.img \
        --key "$WRONG_KEY"
    check_eq "wrong key decrypt leaves no output" no \
        "$([ -e wrong.img ] && echo yes || echo no)"

    expect_failure "plain image with key" 1 \
        "sshfsd-image: plain.img: this is a plain (unencrypted) image: open it without --key" \
        plain.img ls --key "$CCM_KEY" plain.img
    expect_failure "plain image with blockkey write" 1 \
        "sshfsd-image: plain.img: this is a plain (unencrypted) image: open it without --key" \
        plain.img write --blockkey "$CCM_KEY" plain.img /f "x"
    expect_failure "plain image with key file" 1 \
        "sshfsd-image: plain.img: this is a plain (unencrypted) image: open it without --key-file" \
        plain.img info --key-file ccm-key.hex plain.img
    SSHFSD_BLOCKKEY=$CCM_KEY expect_failure "plain image with key variable" 1 \
        "sshfsd-image: plain.img: this is a plain (unencrypted) image: open it without \$SSHFSD_BLOCKKEY" \
        plain.img ls plain.img
    expect_failure "plain image decrypt" 1 \
        "sshfsd-image: plain.img: sector 0 failed authentication: wrong key or modified image" \
        plain.img decrypt --in plain.img --out plain-dec.img --key "$CCM_KEY"
    check_eq "plain image decrypt leaves no output" no \
        "$([ -e plain-dec.img ] && echo yes || echo no)"

    expect_failure "encrypted image without key" 1 \
        "sshfsd-image: small.ccm.img: this looks like an encrypted image: give its key with --key" \
        small.ccm.img ls small.ccm.img
    expect_failure "encrypted image without key write" 1 \
        "sshfsd-image: small.ccm.img: this looks like an encrypted image: give its key with --key" \
        small.ccm.img write small.ccm.img /f "x"
    expect_failure "encrypted image without key check" 2 \
        "sshfsd-image: small.ccm.img: this looks like an encrypted image: give its key with --key" \
        small.ccm.img check small.ccm.img

    head -c 65536 /dev/zero >blank.img
    expect_failure "never formatted ls" 1 \
        "sshfsd-image: blank.img: the encrypted image was never formatted (its first sector is all zeros)" \
        blank.img ls --key "$CCM_KEY" blank.img
    expect_failure "never formatted write" 1 \
        "sshfsd-image: blank.img: the encrypted image was never formatted (its first sector is all zeros)" \
        blank.img write --key "$CCM_KEY" blank.img /f "x"

    # A zero-filled file contains no sector written through the encryption:
    # decrypting it gives erased sectors, and says how many.
    run_image decrypt --in blank.img --out blank-plain.img --key "$CCM_KEY"
    check_eq "never formatted decrypt exit status" 0 "$STATUS"
    check_eq "never formatted decrypt note" \
        "sshfsd-image: blank.img: note: 64 sectors were never written through the encryption and are erased (0xff) sectors in the output" \
        "$ERR"
    check_eq "never formatted decrypt size" 32768 \
        "$(stat -c %s blank-plain.img)"
    check_eq "never formatted decrypt all 0xff" 0 \
        "$(tr -d '\377' <blank-plain.img | wc -c)"

    # AES-192 and AES-256 keys work, and a prefix of one is a wrong key.
    local long_key
    for long_key in "${KEY}0011223344556677" "$KEY$KEY"; do
        rm -f long-key.img
        run_image format --key "$long_key" --size 64K long-key.img
        check_eq "${#long_key}-digit key format exit status" 0 "$STATUS"
        "$TOOL" write --key "$long_key" long-key.img /f "long key" 2>/dev/null
        run_image read --key "$long_key" long-key.img /f
        check_eq "${#long_key}-digit key read back" "long key" "$OUT"
        expect_failure "${#long_key}-digit key prefix" 1 \
            "sshfsd-image: long-key.img: wrong key, or not an encrypted image" \
            long-key.img ls --key "$KEY" long-key.img
    done
}

test_invalid_keys() {
    new_image plain.img
    local digits31=1234567890ABCDEF1234567890ABCDE
    local cases=(
        "${CCM_KEY:0:30}|30 hex digits, expected 32, 48 or 64 (an AES key of 16, 24 or 32 bytes)"
        "${CCM_KEY}12|34 hex digits, expected 32, 48 or 64 (an AES key of 16, 24 or 32 bytes)"
        "${digits31}|31 hex digits, expected 32, 48 or 64 (an AES key of 16, 24 or 32 bytes)"
        "${CCM_KEY}1|33 hex digits, expected 32, 48 or 64 (an AES key of 16, 24 or 32 bytes)"
        "${digits31}G|character 32 is not a hex digit"
        "1234 567890ABCDEF1234567890ABCDEF|character 5 is not a hex digit"
        "0x${CCM_KEY:0:30}|30 hex digits, expected 32, 48 or 64 (an AES key of 16, 24 or 32 bytes)"
        "0x${CCM_KEY}12|34 hex digits, expected 32, 48 or 64 (an AES key of 16, 24 or 32 bytes)"
        "0x${CCM_KEY}1|33 hex digits, expected 32, 48 or 64 (an AES key of 16, 24 or 32 bytes)"
        "0x|0 hex digits, expected 32, 48 or 64 (an AES key of 16, 24 or 32 bytes)"
        "|0 hex digits, expected 32, 48 or 64 (an AES key of 16, 24 or 32 bytes)"
    )
    # The position counts the 0x prefix, as the user typed it.
    cases+=("0x${digits31}G|character 34 is not a hex digit")

    local entry key message
    for entry in "${cases[@]}"; do
        key=${entry%%|*}
        message="sshfsd-image: invalid key: ${entry#*|}"
        expect_failure "invalid key '$key' ls" 2 "$message" \
            plain.img ls --key "$key" plain.img
        expect_failure "invalid key '$key' format" 2 "$message" \
            plain.img format --key="$key" plain.img
        expect_failure "invalid key '$key' encrypt" 2 "$message" \
            plain.img encrypt --in plain.img --out never.img --blockkey "$key"
    done
    check_eq "invalid keys create no output" no \
        "$([ -e never.img ] && echo yes || echo no)"

    printf '%s\n' "${CCM_KEY:0:30}" >short.hex
    expect_failure "invalid key file" 2 \
        "sshfsd-image: short.hex: invalid key: 30 hex digits, expected 32, 48 or 64 (an AES key of 16, 24 or 32 bytes)" \
        plain.img ls --key-file short.hex plain.img
    : >empty.hex
    expect_failure "empty key file" 2 \
        "sshfsd-image: empty.hex: invalid key: 0 hex digits, expected 32, 48 or 64 (an AES key of 16, 24 or 32 bytes)" \
        plain.img ls --key-file empty.hex plain.img
    SSHFSD_BLOCKKEY="not hex" expect_failure "invalid key variable" 2 \
        "sshfsd-image: \$SSHFSD_BLOCKKEY: invalid key: character 1 is not a hex digit" \
        plain.img ls plain.img
}

# Encrypted files whose size is not a whole number of 1024-byte pairs, or
# smaller than the filesystem inside.
test_truncated_encrypted() {
    local fixture="$CCM_FIXTURES/small-512.ccm.img"

    head -c 261632 "$fixture" >cut.img
    expect_failure "truncated ls" 1 \
        "sshfsd-image: cut.img: image size 261632 bytes is not a whole number of encrypted sectors (1024 bytes each)" \
        cut.img ls --key "$CCM_KEY" cut.img
    expect_failure "truncated write" 1 \
        "sshfsd-image: cut.img: image size 261632 bytes is not a whole number of encrypted sectors (1024 bytes each)" \
        cut.img write --key "$CCM_KEY" cut.img /f "x"
    expect_failure "truncated decrypt" 1 \
        "sshfsd-image: cut.img: image size 261632 bytes is not a whole number of encrypted sectors (1024 bytes each)" \
        cut.img decrypt --in cut.img --out cut-plain.img --key "$CCM_KEY"
    check_eq "truncated decrypt leaves no output" no \
        "$([ -e cut-plain.img ] && echo yes || echo no)"

    head -c 1000 /dev/zero >odd.img
    expect_failure "odd-sized ls" 1 \
        "sshfsd-image: odd.img: image size 1000 bytes is not a whole number of encrypted sectors (1024 bytes each)" \
        odd.img ls --key "$CCM_KEY" odd.img
    expect_failure "odd-sized format" 1 \
        "sshfsd-image: odd.img: image size 1000 bytes is not a whole number of encrypted sectors (1024 bytes each)" \
        odd.img format --key "$CCM_KEY" odd.img
    expect_failure "odd-sized encrypt" 1 \
        "sshfsd-image: odd.img: size 1000 is not a whole number of 512-byte sectors" \
        odd.img encrypt --in odd.img --out odd-enc.img --key "$CCM_KEY"
    check_eq "odd-sized encrypt leaves no output" no \
        "$([ -e odd-enc.img ] && echo yes || echo no)"

    # Whole pairs, but half of the superblock's block count.
    head -c 131072 "$fixture" >half.img
    expect_failure "half image ls" 1 \
        "sshfsd-image: half.img: block size or count does not match (the image is truncated: the superblock says 256 blocks of 512 bytes, the image has 65536 bytes)" \
        half.img ls --key "$CCM_KEY" half.img

    : >empty.img
    expect_failure "empty encrypted ls" 1 \
        "sshfsd-image: empty.img: encrypted image is empty (0 bytes)" \
        empty.img ls --key "$CCM_KEY" empty.img
    expect_failure "empty encrypted decrypt" 1 \
        "sshfsd-image: empty.img: encrypted image is empty (0 bytes)" \
        empty.img decrypt --in empty.img --out empty-plain.img --key "$CCM_KEY"
}

test_format_encrypted() {
    # Format through the encryption over a zero-filled file: only the
    # superblock pair is written.
    dd if=/dev/zero of=zero.img bs=1M count=1 status=none
    run_image format --key "$CCM_KEY" zero.img
    check_eq "format key exit status" 0 "$STATUS"
    check_eq "format key prints nothing" "" "$OUT$ERR"
    check_eq "format key keeps file size" 1048576 "$(stat -c %s zero.img)"
    run_image info --key "$CCM_KEY" zero.img
    check_eq "format key info" "disk_version: 2.0
block_size: 512
block_count: 1024
used_blocks: 2
name_max: 255
file_max: 2147483647
attr_max: 1022" "$OUT"
    expect_failure "format key image needs key" 1 \
        "sshfsd-image: zero.img: this looks like an encrypted image: give its key with --key" \
        zero.img ls zero.img

    run_image decrypt --in zero.img --out zero-plain.img --key "$CCM_KEY"
    check_eq "format key decrypt exit status" 0 "$STATUS"
    # format --key writes every sector, so none is left unwritten
    check_eq "format key decrypt note" "" "$ERR"
    run_image check zero-plain.img
    check_eq "format key decrypted check" \
        "2 of 1024 blocks in use, 0 problems" "$OUT"

    # Every command opens and mounts the image again.
    run_image mkdir --key "$CCM_KEY" zero.img /docs
    check_eq "format key mkdir exit status" 0 "$STATUS"
    printf 'one\ntwo\n' >notes.txt
    run_image_stdin notes.txt write --key "$CCM_KEY" zero.img /docs/notes.txt
    check_eq "format key write exit status" 0 "$STATUS"
    head -c 5000 /dev/urandom >five-k.bin
    run_image_stdin five-k.bin write --key "$CCM_KEY" zero.img /five-k.bin
    check_eq "format key write multi-sector exit status" 0 "$STATUS"

    "$TOOL" read --key "$CCM_KEY" zero.img /docs/notes.txt >got.txt
    check_eq "format key read back" "$(sha notes.txt)" "$(sha got.txt)"
    "$TOOL" read --key "$CCM_KEY" zero.img /five-k.bin >got.bin
    check_eq "format key read multi-sector" "$(sha five-k.bin)" \
        "$(sha got.bin)"
    run_image check --key "$CCM_KEY" zero.img
    check_eq "format key check exit status" 0 "$STATUS"
    check_eq "format key check report" "14 of 1024 blocks in use, 0 problems" \
        "$OUT"

    run_image mv --key "$CCM_KEY" zero.img /five-k.bin /docs/moved.bin
    check_eq "format key mv exit status" 0 "$STATUS"
    run_image rm --key "$CCM_KEY" zero.img /docs/notes.txt
    check_eq "format key rm exit status" 0 "$STATUS"
    run_image ls --key "$CCM_KEY" zero.img /docs
    check_eq "format key ls after remount" "moved.bin" "$OUT"
    "$TOOL" read --key "$CCM_KEY" zero.img /docs/moved.bin >got.bin
    check_eq "format key read after mv" "$(sha five-k.bin)" "$(sha got.bin)"

    run_image decrypt --in zero.img --out zero-plain.img --key "$CCM_KEY"
    "$TOOL" read zero-plain.img /docs/moved.bin >got.bin
    check_eq "format key decrypted read" "$(sha five-k.bin)" "$(sha got.bin)"

    # --size is the filesystem's size, and the file is twice as large.
    run_image format --key "$CCM_KEY" --size 4M sized.img
    check_eq "format key size exit status" 0 "$STATUS"
    check_eq "format key size file size" 8388608 "$(stat -c %s sized.img)"
    run_image info --key "$CCM_KEY" sized.img
    check_contains "format key size block count" "block_count: 8192" "$OUT"

    run_image format --key "$CCM_KEY" --size 1000 never.img
    check_eq "format key size not block multiple exit status" 2 "$STATUS"
    check_eq "format key size not block multiple message" \
        "sshfsd-image: never.img: image size 1000 is not a multiple of the block size 512" \
        "$ERR"
    check_eq "format key invalid size creates nothing" no \
        "$([ -e never.img ] && echo yes || echo no)"
}

test_encrypted_block_sizes() {
    # 4096-byte blocks span eight sectors each.
    run_image format --key "$CCM_KEY" --size 1M big-blocks.img 4096
    check_eq "4096 blocks format exit status" 0 "$STATUS"
    check_eq "4096 blocks file size" 2097152 "$(stat -c %s big-blocks.img)"
    head -c 20000 /dev/urandom >twenty-k.bin
    run_image_stdin twenty-k.bin write --key "$CCM_KEY" big-blocks.img \
        /twenty-k.bin
    check_eq "4096 blocks write exit status" 0 "$STATUS"
    "$TOOL" read --key "$CCM_KEY" big-blocks.img /twenty-k.bin >got.bin
    check_eq "4096 blocks read back" "$(sha twenty-k.bin)" "$(sha got.bin)"
    run_image check --key "$CCM_KEY" big-blocks.img 4096
    check_eq "4096 blocks check exit status" 0 "$STATUS"
    check_eq "4096 blocks check report" "7 of 256 blocks in use, 0 problems" \
        "$OUT"
    expect_failure "4096 blocks wrong block size" 1 \
        "sshfsd-image: big-blocks.img: block size 512 does not match the image's block size 4096" \
        big-blocks.img ls --key "$CCM_KEY" big-blocks.img 512

    # Blocks smaller than a sector would share sectors that tear as a
    # whole, so an encrypted image needs blocks of 512 bytes or more.
    expect_failure "256 blocks refused" 2 \
        "sshfsd-image: small-blocks.img: encrypted images need a block size of at least 512 bytes" \
        small-blocks.img format --key "$CCM_KEY" --size 64K small-blocks.img 256
    check_eq "256 blocks no file" no \
        "$([ -e small-blocks.img ] && echo yes || echo no)"
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
    check_contains "usage names key variable" "variable SSHFSD_BLOCKKEY" \
        "$OUT"

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
        "enc --size 1M --in usage.img --out x.img|option '--size' is not valid for command 'encrypt'"
        "dec --in usage.img --out x.img usage.img|too many arguments for command 'decrypt'"
        "ls --key $KEY --blockkey $KEY usage.img|option '--blockkey' is given twice"
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

# walk_image IMAGE DIR [OPTION...]: one manifest-style line per entry
# below DIR; the options (a key) go to every ls and read.
walk_image() {
    local image=$1 dir=$2 listing type size mtime name path
    shift 2
    listing=$("$TOOL" ls -l "$@" "$image" "$dir") || {
        echo "ls of $dir failed"
        return
    }
    [ -n "$listing" ] || return
    while read -r type size mtime name; do
        path="${dir%/}/$name"
        if [ "$type" = d ]; then
            echo "d $path - -"
            walk_image "$image" "$path" "$@"
        else
            echo "f $path $size $("$TOOL" read "$@" "$image" "$path" |
                sha256sum | cut -d' ' -f1)"
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
test_key_options
test_encrypted_walkthrough
test_ccm_fixture
test_ccm_tampered
test_key_messages
test_invalid_keys
test_truncated_encrypted
test_format_encrypted
test_encrypted_block_sizes
test_usage
test_fixtures
test_fixture_copy_writable

check_finish
