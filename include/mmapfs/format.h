/* SPDX-License-Identifier: MIT */
/*
 * format.h — every on-disk structure of mmapfs.
 *
 * Layer: format (2). Included by every layer above the image and by mkfs and
 * fsck. docs/format.md is the specification; this header must agree with it.
 *
 * Rules: all integers are little-endian and fixed-width; structures carry no
 * pointers, size_t, bool or enums; every structure has a _Static_assert on
 * its size. Fields are never read or written through these structs inside
 * the mapping directly: use the mfs_get_le* / mfs_put_le* accessors in
 * endian.h, which are alignment-safe.
 */
#ifndef MMAPFS_FORMAT_H
#define MMAPFS_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#define MFS_BLOCK_SIZE 4096u
#define MFS_BLOCK_SHIFT 12

/* ---------------------------------------------------------------- *
 * Superblock.
 *
 * Two slots: slot 0 in block 0, slot 1 in block 1, each at byte 0 of its
 * block. A commit writes the slot that is not current. At open, the valid
 * slot (magic, crc, sane fields) with the highest generation wins.
 * ---------------------------------------------------------------- */
#define MFS_SB_MAGIC 0x3130534650414d4dULL /* "MMAPFS01" read as LE u64 */
#define MFS_VERSION 1u
#define MFS_SB_SLOTS 2u
#define MFS_FIRST_DATA_BLOCK 2u /* blocks 0 and 1 hold the superblocks */

/* sb_state */
#define MFS_STATE_CLEAN 1u /* unmounted cleanly */
#define MFS_STATE_DIRTY 2u /* mounted read-write, or crashed */

/* Feature flags. An unknown incompat bit: refuse to open. An unknown
 * ro_compat bit: open read-only only. Unknown compat bits are ignored. */
#define MFS_FEATURE_COMPAT_SUPP 0u
#define MFS_FEATURE_RO_COMPAT_SUPP 0u
#define MFS_FEATURE_INCOMPAT_SUPP 0u

/* Tree ids: index into sb_roots[]. */
#define MFS_TREE_FS 0u   /* inodes, directories, extents, xattrs, orphans */
#define MFS_TREE_FREE 1u /* free-space extents */
#define MFS_TREE_COUNT 2u
#define MFS_TREE_SLOTS 4u /* room for future trees */

#define MFS_MAX_LEVELS 8u /* a tree is never deeper than this */

struct mfs_disk_root {
	uint64_t rt_block;      /* block number of the root node */
	uint64_t rt_generation; /* generation that wrote the root node */
	uint8_t rt_level;       /* level of the root node (0 = leaf) */
	uint8_t rt_pad[7];
};
_Static_assert(sizeof(struct mfs_disk_root) == 24, "mfs_disk_root size");

#define MFS_LABEL_MAX 64u
#define MFS_UUID_SIZE 16u

struct mfs_disk_super {
	uint64_t sb_magic;         /*   0 MFS_SB_MAGIC */
	uint32_t sb_crc;           /*   8 crc32c of bytes [12, MFS_SB_SIZE) */
	uint32_t sb_version;       /*  12 MFS_VERSION */
	uint32_t sb_block_size;    /*  16 MFS_BLOCK_SIZE */
	uint32_t sb_slot;          /*  20 0 or 1: the slot this copy belongs in */
	uint32_t sb_feature_compat;    /* 24 */
	uint32_t sb_feature_ro_compat; /* 28 */
	uint32_t sb_feature_incompat;  /* 32 */
	uint32_t sb_state;             /* 36 MFS_STATE_* */
	uint64_t sb_generation;    /*  40 commit number; the higher valid slot wins */
	uint64_t sb_block_count;   /*  48 size of the filesystem in blocks */
	uint64_t sb_free_blocks;   /*  56 blocks free in the free-space tree */
	uint64_t sb_inode_count;   /*  64 inodes in use */
	uint64_t sb_next_ino;      /*  72 next inode number to try */
	uint64_t sb_hash_seed[2];  /*  80 SipHash key for directory names */
	uint64_t sb_mkfs_time;     /*  96 seconds since the epoch */
	uint64_t sb_commit_time;   /* 104 seconds since the epoch */
	uint64_t sb_mount_count;   /* 112 */
	uint64_t sb_reserved0;     /* 120 */
	struct mfs_disk_root sb_roots[MFS_TREE_SLOTS]; /* 128 */
	uint8_t sb_uuid[MFS_UUID_SIZE];   /* 224 */
	uint8_t sb_label[MFS_LABEL_MAX];  /* 240 NUL-padded, not terminated */
	uint8_t sb_pad[208];              /* 304 zero */
};
#define MFS_SB_SIZE 512u
_Static_assert(sizeof(struct mfs_disk_super) == MFS_SB_SIZE, "superblock size");
_Static_assert(offsetof(struct mfs_disk_super, sb_roots) == 128, "sb_roots");
_Static_assert(offsetof(struct mfs_disk_super, sb_uuid) == 224, "sb_uuid");
_Static_assert(offsetof(struct mfs_disk_super, sb_label) == 240, "sb_label");
#define MFS_SB_CRC_START 12u

/* ---------------------------------------------------------------- *
 * Tree nodes (one per block).
 *
 * Every node begins with a header. Leaves (level 0) hold an array of item
 * headers growing up from byte 64 and their values packed down from the end
 * of the block. Internal nodes (level > 0) hold an array of key pointers.
 * Keys are compared as (objectid, type, offset), each unsigned.
 * ---------------------------------------------------------------- */
#define MFS_NODE_MAGIC 0x45455254u /* "TREE" */

struct mfs_disk_node {
	uint32_t nd_crc;        /*  0 crc32c of bytes [4, 4096) */
	uint32_t nd_magic;      /*  4 MFS_NODE_MAGIC */
	uint64_t nd_block;      /*  8 this node's own block number */
	uint64_t nd_generation; /* 16 the commit that wrote this node */
	uint8_t nd_uuid[MFS_UUID_SIZE]; /* 24 the filesystem's UUID */
	uint32_t nd_tree;       /* 40 MFS_TREE_* that owns this node */
	uint16_t nd_nritems;    /* 44 */
	uint8_t nd_level;       /* 46 0 = leaf */
	uint8_t nd_pad0;        /* 47 */
	uint64_t nd_pad[2];     /* 48 zero */
};
_Static_assert(sizeof(struct mfs_disk_node) == 64, "node header size");
#define MFS_NODE_HDR 64u
#define MFS_NODE_SPACE (MFS_BLOCK_SIZE - MFS_NODE_HDR) /* 4032 */

/* Leaf item header: key plus where the value lives in this block. */
struct mfs_disk_item {
	uint64_t it_objectid;
	uint64_t it_offset;
	uint8_t it_type;
	uint8_t it_pad;
	uint16_t it_size;   /* value length in bytes */
	uint16_t it_voff;   /* value start, from the start of the block */
	uint16_t it_pad2;
};
_Static_assert(sizeof(struct mfs_disk_item) == 24, "item header size");

/* Largest value one item may hold. A quarter of the leaf space, so a leaf
 * split always has room for the item being inserted. */
#define MFS_MAX_VALUE 984u
_Static_assert(4 * (MFS_MAX_VALUE + 24) <= MFS_NODE_SPACE, "max value");

/* Internal node entry: the smallest key in the child's subtree (the first
 * entry's key may be smaller than anything below it), and the child. */
struct mfs_disk_ptr {
	uint64_t kp_objectid;
	uint64_t kp_offset;
	uint8_t kp_type;
	uint8_t kp_pad[7];
	uint64_t kp_block;      /* child block number */
	uint64_t kp_generation; /* generation that wrote the child */
};
_Static_assert(sizeof(struct mfs_disk_ptr) == 40, "key pointer size");
#define MFS_NODE_MAX_PTRS (MFS_NODE_SPACE / 40u) /* 100 */

/* ---------------------------------------------------------------- *
 * Item types.
 * ---------------------------------------------------------------- */
/* FS tree */
#define MFS_ITEM_INODE 1u      /* (ino, 1, 0)         -> mfs_disk_inode */
#define MFS_ITEM_INLINE 2u     /* (ino, 2, chunk)     -> bytes (symlink target) */
#define MFS_ITEM_XATTR 3u      /* (ino, 3, h<<7|chunk) -> mfs_disk_xattr etc. */
#define MFS_ITEM_DIRENT 4u     /* (dir, 4, hash)      -> mfs_disk_dirent list */
#define MFS_ITEM_EXTENT 5u     /* (ino, 5, file blk)  -> mfs_disk_extent */
#define MFS_ITEM_ORPHAN 6u     /* (MFS_ORPHAN_OBJID, 6, ino) -> empty */
/* FREE tree */
#define MFS_ITEM_FREE 16u      /* (0, 16, first block) -> le64 block count */

#define MFS_ROOT_INO 1u
#define MFS_FIRST_INO 2u
#define MFS_ORPHAN_OBJID 0xfffffffffffffff0ULL
#define MFS_MAX_INO 0xffffffffffffff00ULL

/* Inode item value. Times are seconds and nanoseconds since the epoch. */
struct mfs_disk_inode {
	uint32_t di_mode;
	uint32_t di_uid;
	uint32_t di_gid;
	uint32_t di_nlink;
	uint64_t di_size;
	uint64_t di_blocks;      /* 512-byte sectors allocated, as st_blocks */
	uint64_t di_generation;  /* NFS/FUSE generation, new on inode reuse */
	uint64_t di_rdev;
	uint64_t di_flags;
	int64_t di_atime;
	int64_t di_mtime;
	int64_t di_ctime;
	int64_t di_btime;
	uint32_t di_atime_ns;
	uint32_t di_mtime_ns;
	uint32_t di_ctime_ns;
	uint32_t di_btime_ns;
	uint64_t di_parent;      /* directories: the parent directory (root: 1) */
	uint64_t di_reserved[2];
};
_Static_assert(sizeof(struct mfs_disk_inode) == 128, "inode size");

/* Directory entry, packed in a DIRENT item's value one after another
 * (several only when names collide in the hash), unaligned, 10 bytes each
 * plus the name:
 *   0  le64 de_ino
 *   8  u8   de_type      DT_* value
 *   9  u8   de_name_len  1..255
 *  10  de_name_len bytes of name, not NUL-terminated */
#define MFS_DIRENT_HDR 10u
#define MFS_NAME_MAX 255u

/* Extended attribute: one attribute is XATTR items (ino, 3, (h << 7) | c),
 * h = SipHash-2-4(sb_hash_seed, name) >> 8, chunk c = 0, 1, ... Chunk 0 is
 * this header, the name (not NUL-terminated) and the first
 * min(xa_value_len, MFS_XATTR_CHUNK0_VALUE - xa_name_len) value bytes;
 * chunks 1.. hold the rest, MFS_MAX_VALUE bytes each but the last. */
struct mfs_disk_xattr {
	uint32_t xa_value_len;  /* 0..MFS_XATTR_VALUE_MAX */
	uint8_t xa_name_len;    /* 1..MFS_NAME_MAX */
	uint8_t xa_flags;       /* zero in v1 */
	uint16_t xa_pad;        /* zero */
};
_Static_assert(sizeof(struct mfs_disk_xattr) == 8, "xattr header size");
#define MFS_XATTR_HDR 8u
#define MFS_XATTR_VALUE_MAX 65536u
#define MFS_XATTR_CHUNK_BITS 7
#define MFS_XATTR_CHUNKS (1u << MFS_XATTR_CHUNK_BITS) /* 128 per attribute */
#define MFS_XATTR_CHUNK0_VALUE (MFS_MAX_VALUE - MFS_XATTR_HDR) /* 976 - name */
_Static_assert(MFS_XATTR_CHUNK0_VALUE - MFS_NAME_MAX +
	       (MFS_XATTR_CHUNKS - 1) * MFS_MAX_VALUE >= MFS_XATTR_VALUE_MAX,
	       "xattr chunks");

/* Extent item value: file block (key offset) .. + ex_count maps to disk
 * blocks ex_block .. + ex_count. */
#define MFS_EXTENT_UNWRITTEN 1u /* allocated, reads as zeros */
struct mfs_disk_extent {
	uint64_t ex_block;
	uint64_t ex_count;
	uint32_t ex_flags;
	uint32_t ex_pad;
};
_Static_assert(sizeof(struct mfs_disk_extent) == 24, "extent size");

/* Free-space item value: le64 number of free blocks starting at key.offset. */
struct mfs_disk_free {
	uint64_t fr_count;
};
_Static_assert(sizeof(struct mfs_disk_free) == 8, "free size");

#endif
