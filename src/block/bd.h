/*
 * Block devices: the storage under the littlefs engine.
 *
 * A device is an array of bytes of a fixed size, addressed as blocks of
 * block_size bytes once the user of the device has chosen the block size
 * (littlefs reads it from the superblock).  Every implementation fills in
 * a struct bd_ops; callers use the bd_* wrappers, which check ranges
 * before calling the implementation, so implementations never see an
 * out-of-range request.
 */
#ifndef SSHFSD_BLOCK_BD_H
#define SSHFSD_BLOCK_BD_H

#include <stddef.h>
#include <stdint.h>

/* Errors of the block layer: negative values, 0 is success. */
enum bd_error {
    BD_OK = 0,
    BD_ERR_IO = -1,      /* the underlying read/write/sync failed */
    BD_ERR_RANGE = -2,   /* request outside the device */
    BD_ERR_AUTH = -3,    /* data failed authentication (encrypted devices) */
    BD_ERR_NOMEM = -4,
    BD_ERR_INVAL = -5,   /* invalid geometry, key or argument */
    BD_ERR_POWERLOSS = -6, /* fault injection: the device lost power */
    BD_ERR_UNWRITTEN = -7, /* encrypted device: the sector was never written
                              through the encryption layer (all zeros) */
};

/* Size of struct bd's error detail buffer. */
#define BD_ERROR_MAX 256

struct bd;

/*
 * Operations of one kind of device.  The block argument counts units of
 * block_size, or units of sector_size while block_size is 0, which only
 * bd_read_raw() does before a block size is chosen.  bd_byte_offset()
 * turns (block, off) into a byte position.  The bd_* wrappers never pass
 * a request that crosses the end of its unit.
 */
struct bd_ops {
    /* Read len bytes at byte offset off inside block. */
    int (*read)(struct bd *bd, uint32_t block, uint32_t off, void *buf,
                size_t len);
    /* Program (write) len bytes at byte offset off inside block. */
    int (*prog)(struct bd *bd, uint32_t block, uint32_t off,
                const void *buf, size_t len);
    /* Erase a whole block: afterwards it reads as 0xff bytes. */
    int (*erase)(struct bd *bd, uint32_t block);
    /* Make every earlier prog and erase durable (fdatasync for files). */
    int (*sync)(struct bd *bd);
    /* Release the device and everything it owns (wiping secrets). */
    void (*close)(struct bd *bd);
    /* Optional hook, NULL if unused.  bd_set_block_size() calls it after
     * checking the geometry and before storing it, so that a wrapper can
     * give its inner device the same block size. */
    int (*set_block_size)(struct bd *bd, uint32_t block_size);
};

struct bd {
    const struct bd_ops *ops;
    uint64_t size;          /* device size in bytes */
    uint32_t sector_size;   /* smallest unit the device writes natively */
    uint32_t prog_align;    /* 0, or the alignment a prog must start at to
                               leave earlier bytes intact if it is torn
                               (a sector rewritten by read-modify-write is
                               lost whole when its write tears) */
    uint32_t block_size;    /* 0 until bd_set_block_size() */
    uint32_t block_count;   /* size / block_size */
    char error[BD_ERROR_MAX]; /* detail of the last failure, "" if none */
};

/* Byte position of offset off inside block (see struct bd_ops for the unit). */
static inline uint64_t bd_byte_offset(const struct bd *bd, uint32_t block,
                                      uint32_t off)
{
    uint32_t unit = bd->block_size != 0 ? bd->block_size : bd->sector_size;

    return (uint64_t)block * unit + off;
}

/* Choose the block size; fails with BD_ERR_INVAL (and a message in
 * bd->error) unless size is a non-zero multiple of block_size. */
int bd_set_block_size(struct bd *bd, uint32_t block_size);

int bd_read(struct bd *bd, uint32_t block, uint32_t off, void *buf,
            size_t len);
int bd_prog(struct bd *bd, uint32_t block, uint32_t off, const void *buf,
            size_t len);
int bd_erase(struct bd *bd, uint32_t block);
int bd_sync(struct bd *bd);
void bd_close(struct bd *bd);

/* Read at a byte offset before a block size is chosen (superblock probing). */
int bd_read_raw(struct bd *bd, uint64_t off, void *buf, size_t len);

/* Record a formatted detail message in bd->error; returns err. */
int bd_fail(struct bd *bd, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

const char *bd_strerror(int err);

/* File-backed device over an image file (pread/pwrite, fdatasync).
 * writable selects O_RDWR and an exclusive lock (flock), else the lock is
 * shared: a file locked by another writer fails to open.  On failure returns NULL and writes a message
 * into errbuf (errlen bytes). */
struct bd *bd_file_open(const char *path, int writable, char *errbuf,
                        size_t errlen);

/* File-backed device over an already open descriptor (not closed by
 * bd_close when own_fd is 0).  On failure the descriptor stays open. */
struct bd *bd_file_from_fd(int fd, int own_fd, char *errbuf, size_t errlen);

/* In-memory device of size bytes, initially all 0xff. */
struct bd *bd_mem_new(uint64_t size);

/* The in-memory device's bytes (for tests that corrupt or copy images). */
uint8_t *bd_mem_data(struct bd *bd);

/*
 * Fault-injecting wrapper for power-loss tests.  It counts prog and erase
 * calls; once the count reaches cut_after, that call and every later prog,
 * erase and sync fail with BD_ERR_POWERLOSS and change nothing, except that
 * with tear set the cut prog writes its first half before failing.
 * cut_after 0 never cuts.  The wrapper does not own the inner device.
 */
struct bd *bd_faulty_new(struct bd *inner, uint64_t cut_after, int tear);

/* Number of prog and erase calls the faulty device has seen so far. */
uint64_t bd_faulty_writes(struct bd *bd);

/* Re-arm the faulty device: reset the count and set a new cut point. */
void bd_faulty_rearm(struct bd *bd, uint64_t cut_after, int tear);

/* ---- AES-CCM encrypted device (block/ccm.c, block/open.c) ----
 *
 * The sector format of mirage-block-ccm (v2.0.0, default settings), so
 * that images encrypted by the MirageOS unikernel open here and the other
 * way round.  Logical 512-byte sector n is stored in the 1024 bytes at
 * byte offset 1024 * n of the inner device: AES-CCM ciphertext (512),
 * tag (16), nonce (8), associated data (488).  Every write draws a fresh
 * random nonce and random associated data.  docs/FORMAT.md describes the
 * format and what it does not protect against.
 */

#define BD_CCM_SECTOR_SIZE 512u  /* plaintext bytes per logical sector */
#define BD_CCM_PAIR_SIZE 1024u   /* bytes one logical sector takes inside */
#define BD_CCM_KEY_MAX 32u       /* AES-256; 16 and 24 bytes also work */

/*
 * Wrap inner in the encrypted device: its size is half of inner's, its
 * sector size 512.  key is an AES key of 16, 24 or 32 bytes (AES-128,
 * -192, -256); the device keeps no copy of it.  The wrapper owns inner
 * and closes it.  On failure returns NULL with a message in errbuf, and
 * inner stays open and owned by the caller.
 *
 * Reads fail with BD_ERR_AUTH when a sector does not authenticate (wrong
 * key or modified image).  They fail with BD_ERR_UNWRITTEN when its 1024
 * bytes are all zero: it was never written through this layer, as in an
 * image created with dd and formatted through the encryption.  In both
 * cases bd->error names the logical sector, and the read's buffer is
 * wiped, so that unauthenticated bytes never reach the caller.
 */
struct bd *bd_ccm_new(struct bd *inner, const uint8_t *key, size_t keylen,
                      char *errbuf, size_t errlen);

/*
 * Decode a key given as hex digits, with an optional "0x" prefix, into
 * key (*keylen becomes 16, 24 or 32).  Returns BD_OK, or BD_ERR_INVAL
 * with a message in errbuf that never contains the key.
 */
int bd_ccm_parse_key(const char *hex, uint8_t key[BD_CCM_KEY_MAX],
                     size_t *keylen, char *errbuf, size_t errlen);

/* Kinds of image that bd_ccm_probe() distinguishes by their raw bytes. */
enum bd_ccm_probe_result {
    BD_CCM_PROBE_UNKNOWN = 0,   /* empty, blank, or an odd size */
    BD_CCM_PROBE_PLAIN = 1,     /* littlefs superblock magic in the clear */
    BD_CCM_PROBE_ENCRYPTED = 2, /* no magic, a whole number of 1024-byte
                                   pairs, and a first pair that is neither
                                   all zeros nor all 0xff */
};

/*
 * Guess from the raw bytes of an unencrypted view (the file device, never
 * the AES-CCM device) whether it contains a plain littlefs image or an
 * encrypted one.  No key is needed, so "encrypted" is only a guess.
 * Returns an enum bd_ccm_probe_result, or a negative bd_error when
 * reading failed.
 */
int bd_ccm_probe(struct bd *raw);

/*
 * Explain a failed mount of dev when the cause is the key: dev is the
 * device the mount used, the AES-CCM device when a key was given.
 * key_option is the option users give the key with ("--key" in
 * sshfsd-image, "--blockkey" in sshfsd).  Writes one of these messages
 * into buf and returns 1:
 *   key given, plain image:      "this is a plain (unencrypted) image:
 *                                 open it without KEY_OPTION"
 *   key given, sector 0 fails:   "wrong key, or not an encrypted image"
 *   key given, sector 0 zeros:   "the encrypted image was never formatted
 *                                 (its first sector is all zeros)"
 *   no key, encrypted-looking:   "this looks like an encrypted image:
 *                                 give its key with KEY_OPTION"
 * Returns 0 and leaves buf empty when the failure has nothing to do with
 * the key; report the filesystem error then.
 */
int bd_ccm_explain_mount_failure(struct bd *dev, const char *key_option,
                                 char *buf, size_t len);

/* The device an AES-CCM device wraps, or NULL if dev is not one. */
struct bd *bd_ccm_inner(struct bd *dev);

/*
 * Open an image file (block/open.c): the plain file device when key is
 * NULL, else the AES-CCM device over it.  On failure returns NULL with a
 * message in errbuf naming the path.
 */
struct bd *bd_open_image(const char *path, int writable, const uint8_t *key,
                         size_t keylen, char *errbuf, size_t errlen);

#endif
