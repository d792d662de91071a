/* SPDX-License-Identifier: MIT */
/*
 * fuse_io.c — what libfuse 3.14 does not pass on: FUSE_HANDLE_KILLPRIV_V2
 * (part of layer 8, the glue).
 *
 * Without FUSE_HANDLE_KILLPRIV_V2 the kernel never marks a FUSE superblock
 * SB_NOSEC, so no inode ever gets S_NOSEC, and every write(2) asks the
 * daemon for "security.capability" (file_remove_privs ->
 * cap_inode_need_killpriv -> a synchronous GETXATTR) before it may touch
 * the page cache. With it, the kernel asks once per inode and remembers
 * the answer, as it does for ext4; in exchange the filesystem itself must
 * clear setuid/setgid where the kernel tells it to: a WRITE carrying
 * FUSE_WRITE_KILL_SUIDGID, a SETATTR carrying FATTR_KILL_SUIDGID, an OPEN
 * carrying FUSE_OPEN_KILL_SUIDGID (O_TRUNC). The kernel sets these only for
 * a caller without CAP_FSETID (always for chown), from the caller's
 * context: in writeback-cache mode a write to a setuid/setgid file by such
 * a caller goes write-through for this reason.
 *
 * libfuse 3.14 has no capability flag for it: it neither passes the offer
 * in FUSE_INIT on to the filesystem nor lets it answer, and it drops
 * write_flags and open_flags from the requests it decodes (FATTR_KILL_
 * SUIDGID does reach setattr, as FUSE_SET_ATTR_KILL_SUID). So the daemon
 * installs its own read and writev on the session's /dev/fuse descriptor
 * (fuse_session_custom_io, right after fuse_session_mount):
 *
 * - read sees each raw request. It keeps, in thread-local storage, the
 *   opcode, unique and node id of the request, the kill flag of a WRITE or
 *   OPEN, and the flags the kernel offered in FUSE_INIT. libfuse's loops
 *   (single- and multi-threaded, with or without clone_fd) read a request
 *   and handle it in the same thread before reading the next, so the
 *   handler finds its own request's flags there; it checks opcode and node
 *   id anyway.
 * - writev passes every reply through, but adds FUSE_HANDLE_KILLPRIV_V2 to
 *   the flags of the INIT reply when init decided to (the kernel offered
 *   it). If the reply is not laid out as expected it leaves it alone and
 *   turns the feature off again before the kernel can see the reply.
 * - The same two hooks carry FUSE over io_uring (fuse_uring.c): the INIT
 *   reply also gains FUSE_OVER_IO_URING once the rings are ready, a ring
 *   thread notes its request as read would (mfs_fuse_io_note), and writev
 *   hands the reply to a ring request to its ring (mfs_uring_reply).
 *
 * - read also turns FUSE_TMPFILE into a CREATE that op_create recognises
 *   (see "O_TMPFILE" below).
 *
 * Splice reads would bypass the read hook, so init switches
 * FUSE_CAP_SPLICE_READ off with this on (without a write_buf operation it
 * only adds a copy). If anything here fails, or the kernel does not offer
 * the flag, the daemon behaves as it always did: the kernel decides and
 * sends mode changes as setattr (see fuse_ops.c).
 */
#define FUSE_USE_VERSION FUSE_MAKE_VERSION(3, 12)

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include <linux/fuse.h>
#include <fuse_lowlevel.h>

#include "fuse_ops.h"
#include "log.h"

/* The request this thread read last (see the file header). */
static _Thread_local struct {
	uint64_t unique;
	uint64_t nodeid;
	uint64_t init_flags;    /* FUSE_INIT: what the kernel offered */
	uint32_t opcode;
	bool kill;              /* WRITE, OPEN: the kernel's kill flag */
} cur;

/*
 * O_TMPFILE. The kernel sends FUSE_TMPFILE (protocol 7.37), which libfuse
 * 3.14 does not know (it would answer ENOSYS, and the kernel would give
 * up on O_TMPFILE for good). Its request and reply are laid out as
 * CREATE's (fuse_create_in and a name; fuse_entry_out and fuse_open_out),
 * so read turns its opcode into FUSE_CREATE and notes that it did:
 * op_create asks mfs_fuse_io_tmpfile and makes an unlinked file instead.
 */

/* Read a field of the request at off, if the request is long enough. */
static bool field(const void *buf, size_t n, size_t off, void *out,
		  size_t size)
{
	if (off + size > n)
		return false;
	memcpy(out, (const char *)buf + off, size);
	return true;
}

static void note_request(void *buf, ssize_t res)
{
	const size_t h = sizeof(struct fuse_in_header);
	struct fuse_in_header in;
	size_t n = res > 0 ? (size_t)res : 0;
	uint32_t v;

	memset(&cur, 0, sizeof(cur));
	if (!field(buf, n, 0, &in, sizeof(in)))
		return;
	cur.opcode = in.opcode;
	cur.unique = in.unique;
	cur.nodeid = in.nodeid;
	switch (in.opcode) {
	case FUSE_TMPFILE:
		v = FUSE_CREATE;
		memcpy((char *)buf + offsetof(struct fuse_in_header, opcode), &v,
		       sizeof(v));
		break;
	case FUSE_INIT:
		if (field(buf, n, h + offsetof(struct fuse_init_in, flags),
			  &v, sizeof(v)))
			cur.init_flags = v;
		if ((cur.init_flags & FUSE_INIT_EXT) &&
		    field(buf, n, h + offsetof(struct fuse_init_in, flags2),
			  &v, sizeof(v)))
			cur.init_flags |= (uint64_t)v << 32;
		break;
	case FUSE_WRITE:
		if (field(buf, n, h + offsetof(struct fuse_write_in,
					       write_flags), &v, sizeof(v)))
			cur.kill = v & FUSE_WRITE_KILL_SUIDGID;
		break;
	case FUSE_OPEN:
		if (field(buf, n, h + offsetof(struct fuse_open_in,
					       open_flags), &v, sizeof(v)))
			cur.kill = v & FUSE_OPEN_KILL_SUIDGID;
		break;
	default:
		break;
	}
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static ssize_t io_read(int fd, void *buf, size_t len, void *userdata)
{
	const struct mfs_fuse *d = userdata;
	ssize_t res;
	int err;

	/*
	 * -o spin=US: poll for the next request for up to US microseconds
	 * before blocking in read. A blocked reader is woken by the kernel
	 * when a request comes, which on a machine whose idle CPUs halt (a
	 * VM without halt polling: this one) means waking a CPU for every
	 * request (docs/performance.md, "Measurements behind the design":
	 * polling).
	 * Only while requests keep coming does it cost CPU. Read atomically:
	 * fuse_uring.c turns it off and on from other threads.
	 */
	unsigned spin_us = __atomic_load_n(&d->spin_us, __ATOMIC_RELAXED);

	if (spin_us) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		uint64_t end = mono_ns() + (uint64_t)spin_us * 1000u;

		while (poll(&p, 1, 0) == 0 && mono_ns() < end)
			;
	}
	res = read(fd, buf, len);
	err = errno;

	(void)userdata;
	note_request(buf, res);
	errno = err;
	return res;
}

/*
 * The INIT reply as libfuse 3.14 sends it: the out header alone in iov[0],
 * struct fuse_init_out (possibly shorter, for old kernels) in iov[1].
 * Copies it into init for patching; false if the reply is not that.
 */
static bool copy_init(const struct iovec *iov, int count, struct iovec *out,
		      struct fuse_init_out *init)
{
	struct fuse_out_header oh;

	if (count != 2 || iov[0].iov_len != sizeof(oh))
		return false;
	memcpy(&oh, iov[0].iov_base, sizeof(oh));
	if (oh.unique != cur.unique || oh.error != 0)
		return false;
	if (iov[1].iov_len < offsetof(struct fuse_init_out, flags) +
			     sizeof(init->flags) ||
	    iov[1].iov_len > sizeof(*init))
		return false;
	memset(init, 0, sizeof(*init));
	memcpy(init, iov[1].iov_base, iov[1].iov_len);
	out[0] = iov[0];
	out[1].iov_base = init;
	out[1].iov_len = iov[1].iov_len;
	return true;
}

/* The bytes a ring entry's payload must hold: the kernel's max_payload_sz
 * (FUSE_MIN_READ_BUFFER, max_write, max_pages pages), from the INIT reply;
 * 0 if the reply cannot say. */
static size_t ring_payload(const struct fuse_init_out *init, size_t len)
{
	size_t pages = 32, n = 8192; /* FUSE_DEFAULT_MAX_PAGES_PER_REQ */
	size_t page = (size_t)sysconf(_SC_PAGESIZE);

	if (len < offsetof(struct fuse_init_out, flags2) +
		  sizeof(init->flags2) || !(init->flags & FUSE_INIT_EXT))
		return 0;
	if ((init->flags & FUSE_MAX_PAGES) && init->max_pages > pages)
		pages = init->max_pages;
	if (init->max_write > n)
		n = init->max_write;
	if (pages * page > n)
		n = pages * page;
	return n;
}

/* The one reply to INIT: add what init decided (handle_killpriv_v2) and
 * what the rings need (FUSE_OVER_IO_URING), then start the rings. */
static ssize_t init_reply(int fd, struct iovec *iov, int count,
			  struct mfs_fuse *d)
{
	bool uring = d->uring_want && (cur.init_flags &
				       ((uint64_t)OVER_IO_URING_FLAGS2 << 32));
	struct fuse_init_out init;
	struct iovec v[2];
	size_t payload;
	ssize_t res;
	int rc;

	cur.opcode = 0;
	if (!d->killpriv_v2 && !uring)
		return writev(fd, iov, count);
	if (!copy_init(iov, count, v, &init)) {
		d->killpriv_v2 = false;
		mfs_log(MFS_LOG_WARNING, "init: unexpected reply layout, "
			"handle_killpriv_v2 and io_uring stay off");
		return writev(fd, iov, count);
	}
	if (d->killpriv_v2)
		init.flags |= FUSE_HANDLE_KILLPRIV_V2;
	if (uring) {
		payload = ring_payload(&init, v[1].iov_len);
		rc = payload ? mfs_uring_prepare(d, payload) : -EPROTO;
		if (rc == 0) {
			init.flags2 |= OVER_IO_URING_FLAGS2;
		} else {
			mfs_log(MFS_LOG_WARNING, "init: cannot set up io_uring "
				"(%s): requests go through /dev/fuse",
				strerror(-rc));
			uring = false;
		}
	}
	res = writev(fd, v, 2);
	if (uring)
		mfs_uring_go(d, res >= 0);
	return res;
}

static ssize_t io_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	struct mfs_fuse *d = userdata;
	long res;

	if (cur.opcode == FUSE_INIT)
		return init_reply(fd, iov, count, d);
	if (mfs_uring_reply(iov, count, &res))
		return res;
	return writev(fd, iov, count);
}

void mfs_fuse_io_note(void *buf, size_t len)
{
	note_request(buf, (ssize_t)len);
}

int mfs_fuse_hook_io(struct fuse_session *se, struct mfs_fuse *d)
{
	static const struct fuse_custom_io io = {
		.read = io_read,
		.writev = io_writev,
	};
	int rc;

	/* The hooks get the session's user data, which is d. The
	 * descriptor stays the session's: closed by unmount or destroy. */
	if (fuse_session_fd(se) < 0)
		return -EBADF;
	rc = fuse_session_custom_io(se, &io, fuse_session_fd(se));
	if (rc == 0) {
		d->io_hooked = true;
		d->se = se;
	}
	return rc;
}

bool mfs_fuse_io_offered_killpriv_v2(void)
{
	return cur.opcode == FUSE_INIT &&
	       (cur.init_flags & FUSE_HANDLE_KILLPRIV_V2);
}

bool mfs_fuse_io_tmpfile(uint64_t parent)
{
	return cur.opcode == FUSE_TMPFILE && cur.nodeid == parent;
}

bool mfs_fuse_io_kill(enum mfs_raw_op op, uint64_t nodeid)
{
	uint32_t opcode = op == MFS_RAW_WRITE ? FUSE_WRITE : FUSE_OPEN;

	return cur.opcode == opcode && cur.nodeid == nodeid && cur.kill;
}
