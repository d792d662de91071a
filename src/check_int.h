/* SPDX-License-Identifier: MIT */
/*
 * check_int.h — state shared by the checker's files (check.c: driver,
 * messages, helpers, repairs of items, pass 5; check_tree.c: tree walk and
 * pass 1; check_dir.c: passes 2-4).
 * Not a public interface.
 *
 * The checker builds a model of the committed filesystem in pass 1 (every
 * inode, directory entry, extent and orphan it could read) and then works
 * on the model: each problem found changes the model as its repair would,
 * whether or not the repair is made, so a read-only check (-n) reports the
 * same list of problems that a repair (-y) fixes, without cascades.
 */
#ifndef MFS_CHECK_INT_H
#define MFS_CHECK_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "btree.h"
#include "check.h"
#include "vol.h"

struct mfs_alloc;

/* A list of block runs. */
struct run {
	uint64_t start, len;
};
struct runs {
	struct run *r;
	size_t nr, cap;
};

/* ino_rec.flags */
#define I_ORPHAN 0x01     /* an ORPHAN item names it */
#define I_REACHED 0x02    /* pass 3: reachable from the root */
#define I_CLEAR 0x04      /* removed by the checker */
#define I_INLINE_BAD 0x08 /* symlink target chunks missing or misplaced */
#define I_LEGIT 0x10      /* a proper orphan: nlink 0, listed, no entries */

/* One inode, as stored and as counted. */
struct ino_rec {
	uint64_t ino;
	/* stored in the INODE item */
	uint64_t size, blocks, parent, dflags, rdev;
	uint32_t mode, nlink;
	uint32_t bad_ns;       /* bit i: time i's nanoseconds >= 10^9 */
	/* counted */
	uint64_t ext_blocks;   /* blocks of the extents it keeps */
	uint64_t ext_end;      /* first file block past its last extent */
	uint64_t inline_bytes; /* symlink target bytes in INLINE items */
	uint64_t inline_next;  /* next INLINE chunk expected */
	uint64_t dent_parent;  /* directories: the directory holding its entry */
	uint32_t links;        /* entries naming it */
	uint32_t subdirs;      /* directories: entries in it naming directories */
	uint32_t entries;      /* directories: entries in it */
	uint32_t flags;        /* I_* */
};

/* dent.flags */
#define D_DROP 0x02   /* the entry is to be removed */
#define D_MOVE 0x04   /* stored under the wrong hash: move it */
#define D_TYPE 0x08   /* wrong file type in the entry: fix it */

/* One directory entry. dents[] is in tree order, so sorted by dir. */
struct dent {
	uint64_t dir, hash, ino;
	uint64_t new_hash;     /* D_MOVE: where it belongs */
	uint32_t name;         /* offset of the name in ck.names */
	uint8_t len, type, new_type, flags;
};

/* ext.act */
#define E_KEEP 0
#define E_DROP 1      /* overlaps another extent of its file: removed */
#define E_CLONE 2     /* its blocks are claimed elsewhere: copied */

/* One extent, as read. ext[] is in tree order: by inode, then file block. */
struct ext {
	uint64_t ino, fblk, block, count;
	uint32_t flags;
	uint8_t act;
};

/* The checker's state for one run over a volume. */
struct ck {
	struct mfs_vol *v;
	const struct mfs_check_opts *o;
	struct mfs_check_result *res;
	FILE *out;
	const char *name;
	bool repair;           /* changes allowed (read-write and REPAIR) */
	bool verify;           /* the check after a repair: report only */
	bool failed;           /* a repair failed: change nothing more */
	uint64_t nblocks;      /* sb block_count */
	unsigned pass;
	bool pass_problems;    /* this pass printed a problem */

	/* Pass 1 */
	struct mfs_alloc *used; /* blocks claimed: tree nodes, kept extents */
	struct runs extra;      /* other blocks the committed state points at */
	struct runs refd;       /* used ∪ extra, normalized: all it points at */
	struct runs free;       /* the FREE tree's runs */
	bool free_bad;          /* FREE tree damaged: rebuilt from scratch */
	bool fs_bad;            /* FS tree damaged: rebuilt from its good leaves */
	uint64_t *leaves;       /* good FS leaves, in key order */
	size_t nleaves, leaves_cap;
	struct mfs_key *badkeys; /* FS items to delete, in key order */
	size_t nbadkeys, badkeys_cap;
	uint64_t nodes[MFS_TREE_COUNT], items;
	uint64_t inode_items;   /* INODE items read, bad ones included */
	uint64_t max_ino_read;  /* highest object id of an inode item read */
	/* The extended attribute whose chunks are being read (format.md
	 * §8.6): its chunks are consecutive in key order, so one at a time. */
	struct {
		bool active;
		bool bad;           /* damaged: its later chunks go too */
		uint64_t ino, h;
		unsigned n, next;   /* chunks it must have; next one expected */
		uint32_t total;     /* value length */
		unsigned name_len;
		unsigned nkeys;     /* keys of the chunks read so far */
		struct mfs_key keys[MFS_XATTR_CHUNKS];
	} xa;

	/* The model */
	struct ino_rec *ino;    /* sorted by ino */
	size_t nino, ino_cap;
	struct dent *dent;
	size_t ndent, dent_cap;
	char *names;
	size_t names_len, names_cap;
	struct ext *ext;
	size_t next, ext_cap;
	uint64_t *orphans;      /* ORPHAN items, by ino */
	size_t norphans, orphans_cap;
	uint64_t max_ino;
	uint64_t lf_ino;        /* /lost+found, 0 if none */

	/* Progress of the current pass */
	uint64_t prog_done, prog_total, prog_step;
};

/* ---- check.c: messages ---- */

/* Report a problem and what its repair does ("Fix", "Clear", ...), in the
 * style of e2fsck. Returns true if the caller is to repair it now. */
bool ck_problem(struct ck *c, const char *action, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* A repair failed: report it, count the problem as not fixed, and make no
 * more changes (nothing is committed). Returns rc. */
int ck_fail(struct ck *c, int rc, const char *what);
/* Information that is not a problem. */
void ck_note(struct ck *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Printed with -v only. */
void ck_verbose(struct ck *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void ck_progress(struct ck *c, uint64_t add);
void ck_pass_start(struct ck *c, unsigned pass, const char *title,
		   uint64_t total);
void ck_pass_end(struct ck *c);
/* A name from the image, made printable (bytes outside 0x21..0x7e as
 * \xNN), into buf of at least 4 * MFS_NAME_MAX + 1 bytes. */
const char *ck_esc(const char *name, size_t len, char *buf);
#define CK_ESC_SIZE (4 * 255 + 1)

/* A problem the checker cannot repair (in this version): reported and
 * counted as left uncorrected. */
void ck_error(struct ck *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* "(objectid, TYPE, offset)", or "*" for NULL (no bound). */
const char *ck_key_str(const struct mfs_key *k, char *buf, size_t len);
extern const char *const ck_tree_name[MFS_TREE_COUNT];

/* The superblock slot not in use (decoded into *sb when its checksum is
 * right). CK_SLOT_OK: valid, the commit before the one in use (or the same
 * one, on a fresh image). CK_SLOT_NOTE: what a crash or a lost write
 * leaves (torn, or older than the commit before): informational, the next
 * commit rewrites it. CK_SLOT_BAD: written whole but wrong: a problem.
 * *why says what is wrong (NULL for CK_SLOT_OK). */
enum ck_slot { CK_SLOT_OK, CK_SLOT_NOTE, CK_SLOT_BAD };
enum ck_slot ck_other_slot(struct mfs_vol *v, struct mfs_super *sb,
			   const char **why);

/* ---- check.c: arrays and block runs ---- */
/* Make room for one more element in *p (nr used, *cap allocated). */
int ck_grow(void **p, size_t *cap, size_t nr, size_t size);
/* Append a run, merged with the last one if adjacent (input in order). */
int ck_runs_add(struct runs *r, uint64_t start, uint64_t len);
int ck_runs_add_cb(void *arg, uint64_t start, uint64_t len);
/* Sort and merge overlapping or adjacent runs. */
void ck_runs_normalize(struct runs *r);
/* out = a \ b (appended), both normalized. */
int ck_runs_subtract(const struct runs *a, const struct runs *b,
		     struct runs *out);
bool ck_runs_equal(const struct runs *a, const struct runs *b);
uint64_t ck_runs_blocks(const struct runs *r);
/* The runs of an allocator used as a set of claimed blocks. */
int ck_set_runs(struct mfs_alloc *set, uint64_t nblocks, struct runs *out);
/* All blocks of [2, nblocks) not in set (normalized). */
int ck_complement(const struct runs *set, uint64_t nblocks, struct runs *out);

/* ---- check.c: the model ---- */
struct ino_rec *ck_ino(struct ck *c, uint64_t ino);
int ck_ino_append(struct ck *c, const struct ino_rec *r);
static inline const char *ck_dname(const struct ck *c, const struct dent *d)
{
	return c->names + d->name;
}

/* ---- check.c: repairs (call only when ck_problem said so) ---- */
/* Set one field of an INODE item (off, width 4 or 8 bytes). */
int ck_patch_inode(struct ck *c, uint64_t ino, size_t off, unsigned width,
		   uint64_t val);
/* Remove the entry (name, ino) from the DIRENT item (dir, hash), or, with
 * type >= 0, set its type. */
int ck_dent_edit(struct ck *c, uint64_t dir, uint64_t hash, const char *name,
		 size_t len, uint64_t ino, int type);
/* Delete every item of an inode and its orphan entry. Its blocks are
 * returned to free space by pass 5. */
int ck_remove_inode(struct ck *c, uint64_t ino);
int ck_delete_item(struct ck *c, const struct mfs_key *k);

/* ---- the passes ---- */
int ck_pass1(struct ck *c);
int ck_pass2(struct ck *c);
int ck_pass3(struct ck *c);
int ck_pass4(struct ck *c);
/* Pass 5's repair: walk the repaired trees, return every block nothing
 * uses to free space, and set the superblock counters from what is there. */
int ck_reconcile(struct ck *c);

#endif
