/* SPDX-License-Identifier: MIT */
/*
 * fuse_uring.c — FUSE over io_uring (part of layer 8, the glue).
 *
 * Why: on a /dev/fuse connection a request is queued on one list for the
 * whole mount; the daemon's thread sleeps in read(2), usually on another
 * CPU than the program that asked, and each round trip wakes one CPU for
 * the request and another for the reply. On a VM whose idle CPUs halt
 * (this one) those cross-CPU wake-ups dominate a create or an unlink:
 * with daemon and client pinned on one CPU the metadata workloads ran
 * much faster (docs/performance.md, "Measurements behind the design").
 * Since Linux 6.14 the kernel can
 * instead hand requests over io_uring, to one queue per CPU: the request
 * of a program on CPU n goes to queue n, served here by a thread pinned to
 * CPU n. With the thread polling its ring for a while after each reply
 * (-o spin), program and thread stay on their CPUs (see spin()).
 *
 * The kernel offers it (FUSE_OVER_IO_URING in FUSE_INIT) only when the
 * fuse module's enable_uring parameter is on (a root-only system setting,
 * off by default). libfuse 3.14 knows nothing of it, so this file speaks
 * the protocol itself, on top of fuse_io.c's hooks:
 *
 * - fuse_io.c's writev sees the INIT reply. If the kernel offered the
 *   ring and -o no_uring is not given, mfs_uring_prepare() starts one
 *   thread per possible CPU; each pins itself, maps its buffers and makes
 *   its ring, and only when all succeeded does the INIT reply go out with
 *   FUSE_OVER_IO_URING. After the reply (the kernel then knows max_write),
 *   mfs_uring_go() lets the threads register their entries. From the
 *   moment the kernel accepts the flag it holds back every new request
 *   until each queue has an entry; if a registration fails it falls back
 *   to /dev/fuse by itself.
 * - An entry is a header block (in header, op header, commit id, payload
 *   size) and a payload buffer. A thread rebuilds the request as /dev/fuse
 *   would have delivered it — in header, op header, payload, contiguous —
 *   in the page in front of the payload (so the payload, up to 1 MiB of
 *   write data, is not copied), hands it to libfuse with
 *   fuse_session_process_buf(), and catches the reply in fuse_io.c's
 *   writev (mfs_uring_reply: the reply whose unique is this thread's
 *   request goes into the entry, anything else, e.g. a notification, to
 *   /dev/fuse). It submits COMMIT_AND_FETCH right there, which returns
 *   the reply and re-arms the entry in one system call, so what a handler
 *   does after replying delays nobody, as with writev.
 * - FORGET, INTERRUPT and notifications stay on /dev/fuse, so the session
 *   loop keeps running beside the rings.
 * - At unmount the kernel completes every armed entry with ENOTCONN;
 *   mfs_uring_stop() wakes each thread through an eventfd read armed on its
 *   ring, joins it, and the ring's exit cancels whatever is left. The
 *   rings use their own duplicate of /dev/fuse: libfuse closes the
 *   session's descriptor when it unmounts.
 * - Once the kernel uses the rings there is no way back to /dev/fuse, and
 *   a queue without entries would leave its CPU's programs waiting: a
 *   failed commit re-registers its entry, and a ring that keeps failing
 *   unmounts the file system (SIGTERM, as main.c handles it). A failed
 *   REGISTER is different: the kernel then goes back to /dev/fuse itself,
 *   and the session loop polls again.
 *
 * Every handler replies before it returns and touches nothing of its
 * request after the reply (fuse_ops.c), which this file relies on: a
 * request left without a reply is answered EIO here, since its entry
 * would otherwise never come back.
 */
#define FUSE_USE_VERSION FUSE_MAKE_VERSION(3, 12)

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>
#include <linux/fuse.h>
#include <fuse_lowlevel.h>

#include "fuse_ops.h"
#include "log.h"

/*
 * The kernel's ABI for it (include/uapi/linux/fuse.h, protocol 7.42);
 * Debian 12's linux/fuse.h predates it.
 */
#define URING_OP_IN_SZ 128
struct uring_ent_in_out {
	uint64_t flags;
	uint64_t commit_id;     /* the request's unique */
	uint32_t payload_sz;    /* bytes in the payload, either way */
	uint32_t padding;
	uint64_t reserved;
};
struct uring_req_header {
	char in_out[128];       /* fuse_in_header / fuse_out_header */
	char op_in[URING_OP_IN_SZ]; /* the opcode's fixed header */
	struct uring_ent_in_out ent;
};
struct uring_cmd_req {          /* in the SQE's 80-byte command area */
	uint64_t flags;
	uint64_t commit_id;
	uint16_t qid;
	uint8_t padding[6];
};
enum { URING_CMD_REGISTER = 1, URING_CMD_COMMIT_AND_FETCH = 2 };
_Static_assert(sizeof(struct uring_req_header) == 288, "kernel ABI");
_Static_assert(sizeof(struct uring_cmd_req) == 24, "kernel ABI");

/* Entries per queue: requests the kernel may hand a queue at once. The
 * thread serves them one after the other; more entries let it collect
 * several per system call. */
#define ENTRIES 4u
/* In front of each payload: the header block, and the rebuilt request's
 * in header and op header just before the payload. */
#define HEAD_AREA 4096u
#define STOP_TAG ((uint64_t)ENTRIES)

struct ent {
	struct queue *q;
	struct uring_req_header *hdr;
	char *payload;
	struct iovec iov[2];    /* what REGISTER hands the kernel */
	uint64_t unique;        /* of the request being served */
	unsigned cmd;           /* the last command queued for it */
	bool replied;
};

struct queue {
	struct mfs_uring *u;
	unsigned qid;
	pthread_t thread;
	bool started;
	struct io_uring ring;
	bool ring_ok;
	int efd;                /* written to stop the thread */
	uint64_t efd_val;
	char *mem;
	size_t mem_len;
	unsigned long served;   /* requests (read after the join) */
	unsigned errors;        /* failed commands in a row */
	struct ent ents[ENTRIES];
};

struct mfs_uring {
	struct mfs_fuse *d;
	/* A duplicate of the session's /dev/fuse descriptor: libfuse
	 * closes its own at unmount, before the rings are down. */
	int fd;
	size_t payload;         /* bytes per payload buffer */
	unsigned spin_us;       /* -o spin: poll this long before sleeping */
	unsigned loop_spin_us;  /* the session loop's, while the rings serve */
	unsigned nq;
	struct queue *q;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned set_up;        /* queues done with their set-up */
	int err;                /* the first set-up error, -errno */
	int go;                 /* 0: wait, 1: register, -1: give up */
	bool fell_back;         /* a REGISTER failed: /dev/fuse serves */
};

/* The entry whose request this thread is serving, for mfs_uring_reply. */
static _Thread_local struct ent *serving;

static void prep_cmd(struct queue *q, struct ent *e, unsigned cmd)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&q->ring);
	struct uring_cmd_req *req;

	/* The SQ has room for every entry plus the eventfd read, and each
	 * is queued at most once between two submissions. */
	if (!sqe)
		abort();
	memset(sqe, 0, 128);
	sqe->opcode = IORING_OP_URING_CMD;
	sqe->fd = q->u->fd;
	sqe->cmd_op = cmd;
	sqe->user_data = (uint64_t)(e - q->ents);
	if (cmd == URING_CMD_REGISTER) {
		sqe->addr = (uint64_t)(uintptr_t)e->iov;
		sqe->len = 2;
	}
	req = (struct uring_cmd_req *)sqe->cmd;
	req->commit_id = cmd == URING_CMD_REGISTER ? 0 : e->unique;
	req->qid = (uint16_t)q->qid;
	e->cmd = cmd;
}

/* Put an error reply (no payload) in the entry. */
static void reply_err(struct ent *e, int err)
{
	struct fuse_out_header oh = {
		.len = sizeof(oh), .error = -err, .unique = e->unique,
	};

	memcpy(e->hdr->in_out, &oh, sizeof(oh));
	e->hdr->ent.payload_sz = 0;
}

/*
 * Hand the reply in e to the kernel now, as writev on /dev/fuse would:
 * what a handler does after replying (write-behind, dropping read pages)
 * must not delay the program. The kernel may put the next request into e
 * during the submission; handlers touch nothing of their request after
 * the reply (fuse_ops.c), and the next request's completion is seen by
 * queue_loop. A failed submission leaves the SQE queued for the next one.
 */
static void commit(struct ent *e)
{
	int rc;

	e->replied = true;
	prep_cmd(e->q, e, URING_CMD_COMMIT_AND_FETCH);
	rc = io_uring_submit(&e->q->ring);
	if (rc < 0)
		mfs_log(MFS_LOG_WARNING, "io_uring: queue %u: %s (retrying)",
			e->q->qid, strerror(-rc));
}

bool mfs_uring_reply(const struct iovec *iov, int count, long *res)
{
	struct ent *e = serving;
	struct fuse_out_header oh;
	size_t n = 0;
	int i;

	if (!e || e->replied || count < 1 || iov[0].iov_len != sizeof(oh))
		return false;
	memcpy(&oh, iov[0].iov_base, sizeof(oh));
	if (oh.unique != e->unique)
		return false;   /* a notification, or another request's */
	for (i = 1; i < count; i++)
		n += iov[i].iov_len;
	if (n > e->iov[1].iov_len) {
		mfs_log(MFS_LOG_ERR, "io_uring: a reply of %zu bytes does not "
			"fit the ring's %zu", n, e->iov[1].iov_len);
		reply_err(e, EIO);
		commit(e);
		*res = (long)(sizeof(oh) + n);
		return true;
	}
	n = 0;
	for (i = 1; i < count; i++) {
		/* memmove: a reply may point into the request's payload */
		memmove(e->payload + n, iov[i].iov_base, iov[i].iov_len);
		n += iov[i].iov_len;
	}
	memcpy(e->hdr->in_out, &oh, sizeof(oh));
	e->hdr->ent.payload_sz = (uint32_t)n;
	commit(e);
	*res = (long)(sizeof(oh) + n);
	return true;
}

/* Serve the request the kernel put in e, leaving the reply in e. */
static void serve(struct queue *q, struct ent *e)
{
	const struct uring_req_header *h = e->hdr;
	struct fuse_in_header in;
	uint32_t psz = h->ent.payload_sz;
	size_t op_sz;
	char *start;

	memcpy(&in, h->in_out, sizeof(in));
	e->unique = h->ent.commit_id;
	e->replied = false;
	/* The in header's len counts all three parts. */
	if (in.unique != e->unique || psz > e->iov[1].iov_len ||
	    in.len < sizeof(in) + psz ||
	    in.len - sizeof(in) - psz > URING_OP_IN_SZ) {
		mfs_log(MFS_LOG_ERR, "io_uring: malformed request (opcode %u, "
			"len %u, payload %u)", in.opcode, in.len, psz);
		reply_err(e, EIO);
		commit(e);
		return;
	}
	op_sz = in.len - sizeof(in) - psz;
	start = e->payload - op_sz - sizeof(in);
	memcpy(start, &in, sizeof(in));
	memcpy(start + sizeof(in), h->op_in, op_sz);
	mfs_fuse_io_note(start, in.len);
	serving = e;
	fuse_session_process_buf(q->u->d->se, &(struct fuse_buf){
		.size = in.len, .mem = start });
	serving = NULL;
	if (!e->replied) {
		mfs_log(MFS_LOG_ERR, "io_uring: request %u got no reply",
			in.opcode);
		reply_err(e, EIO);
		commit(e);
	}
	q->served++;
}

/* Pin to the queue's CPU, map the buffers, make the ring: 0 or -errno. */
static int queue_setup(struct queue *q)
{
	const size_t per = HEAD_AREA + q->u->payload;
	struct io_uring_params p;
	cpu_set_t cpus;
	unsigned i;
	int rc;

	if (sched_getaffinity(0, sizeof(cpus), &cpus) == 0 &&
	    CPU_ISSET(q->qid, &cpus)) {
		CPU_ZERO(&cpus);
		CPU_SET(q->qid, &cpus);
		/* Unpinned, the queue still works, only slower. */
		(void)sched_setaffinity(0, sizeof(cpus), &cpus);
	}
	q->mem_len = per * ENTRIES;
	q->mem = mmap(NULL, q->mem_len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (q->mem == MAP_FAILED) {
		q->mem = NULL;
		return -errno;
	}
	for (i = 0; i < ENTRIES; i++) {
		struct ent *e = &q->ents[i];

		e->q = q;
		e->hdr = (struct uring_req_header *)(q->mem + i * per);
		e->payload = q->mem + i * per + HEAD_AREA;
		e->iov[0] = (struct iovec){ e->hdr, sizeof(*e->hdr) };
		e->iov[1] = (struct iovec){ e->payload, q->u->payload };
	}
	q->efd = eventfd(0, EFD_CLOEXEC);
	if (q->efd < 0)
		return -errno;
	/* Task work (the kernel copying a request in) runs only when this
	 * thread waits for completions: no interruptions mid-request. */
	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_SQE128 | IORING_SETUP_SINGLE_ISSUER |
		  IORING_SETUP_DEFER_TASKRUN;
	rc = io_uring_queue_init_params(2 * ENTRIES + 2, &q->ring, &p);
	if (rc == -EINVAL) {
		memset(&p, 0, sizeof(p));
		p.flags = IORING_SETUP_SQE128;
		rc = io_uring_queue_init_params(2 * ENTRIES + 2, &q->ring, &p);
	}
	if (rc < 0)
		return rc;
	q->ring_ok = true;
	return 0;
}

/* Arm the eventfd read whose completion tells the thread to stop. */
static void prep_stop(struct queue *q)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&q->ring);

	if (!sqe)
		abort();
	io_uring_prep_read(sqe, q->efd, &q->efd_val, sizeof(q->efd_val), 0);
	sqe->user_data = STOP_TAG;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * -o spin=US: send the replies, then poll for the next request for up to
 * US microseconds before sleeping. As on /dev/fuse (fuse_io.c), a thread
 * that sleeps between two requests of a busy program costs a wake-up per
 * request, and the scheduler moves the woken program to the other, idle
 * CPU, whose queue's thread then has to be woken in turn (figures: docs/
 * performance.md, "Measurements behind the design").
 */
static void spin(struct queue *q)
{
	struct io_uring_cqe *cqe;
	uint64_t end;

	if (!q->u->spin_us || io_uring_submit(&q->ring) < 0)
		return;
	end = mono_ns() + (uint64_t)q->u->spin_us * 1000u;
	do {
		if (io_uring_peek_cqe(&q->ring, &cqe) == 0)
			return;
		/* Task work (a request's copy-in) runs only on entering
		 * the ring (IORING_SETUP_DEFER_TASKRUN). */
		io_uring_get_events(&q->ring);
	} while (mono_ns() < end);
}

/*
 * Something is wrong with the rings while the mount lives: programs on
 * this CPU would wait forever. Unmount as SIGTERM does (main.c's signal
 * thread), so they get ENOTCONN and the image is closed cleanly.
 */
static void give_up(struct queue *q, int err)
{
	mfs_log(MFS_LOG_ERR, "io_uring: queue %u: %s; unmounting", q->qid,
		strerror(err));
	kill(getpid(), SIGTERM);
}

/* A command of e failed with err (not a teardown). */
static bool cmd_failed(struct queue *q, struct ent *e, int err)
{
	struct mfs_uring *u = q->u;

	if (e->cmd == URING_CMD_REGISTER) {
		/* The kernel serves through /dev/fuse again. */
		if (!__atomic_exchange_n(&u->fell_back, true,
					 __ATOMIC_RELAXED)) {
			__atomic_store_n(&u->d->spin_us, u->loop_spin_us,
					 __ATOMIC_RELAXED);
			mfs_log(MFS_LOG_WARNING, "io_uring: cannot register "
				"with the kernel (%s): requests go through "
				"/dev/fuse", strerror(err));
		}
		return false;
	}
	/* A lost reply (the request was interrupted or timed out, say):
	 * give the kernel the entry back. */
	mfs_log(MFS_LOG_WARNING, "io_uring: queue %u: commit: %s", q->qid,
		strerror(err));
	if (++q->errors > 2 * ENTRIES) {
		give_up(q, err);
		return true;
	}
	prep_cmd(q, e, URING_CMD_REGISTER);
	return false;
}

static void queue_loop(struct queue *q)
{
	bool stop = false;
	unsigned i;

	prep_stop(q);
	for (i = 0; i < ENTRIES; i++)
		prep_cmd(q, &q->ents[i], URING_CMD_REGISTER);
	while (!stop) {
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		int rc;

		spin(q);
		rc = io_uring_submit_and_wait(&q->ring, 1);
		if (rc == -EAGAIN || rc == -EBUSY || rc == -ENOMEM) {
			usleep(1000);
			continue;
		}
		if (rc < 0 && rc != -EINTR) {
			give_up(q, -rc);
			break;
		}
		io_uring_for_each_cqe(&q->ring, head, cqe) {
			struct ent *e;

			seen++;
			if (cqe->user_data == STOP_TAG) {
				stop = true;
				continue;
			}
			if (cqe->user_data >= ENTRIES)
				continue;
			e = &q->ents[cqe->user_data];
			if (cqe->res == -ENOTCONN || cqe->res == -ECANCELED ||
			    cqe->res == -ENODEV)
				continue;   /* unmounted: the entry is done */
			if (cqe->res < 0) {
				stop |= cmd_failed(q, e, -cqe->res);
				continue;
			}
			q->errors = 0;
			serve(q, e);
		}
		io_uring_cq_advance(&q->ring, seen);
	}
	/* Replies queued in the last round (an entry's EIO). */
	io_uring_submit(&q->ring);
}

static void *queue_thread(void *arg)
{
	struct queue *q = arg;
	struct mfs_uring *u = q->u;
	char name[16];
	int rc, go;

	snprintf(name, sizeof(name), "mmapfs-ring%u", q->qid);
	pthread_setname_np(pthread_self(), name);
	rc = queue_setup(q);

	pthread_mutex_lock(&u->lock);
	if (rc && !u->err)
		u->err = rc;
	u->set_up++;
	pthread_cond_broadcast(&u->cond);
	while (u->go == 0)
		pthread_cond_wait(&u->cond, &u->lock);
	go = u->go;
	pthread_mutex_unlock(&u->lock);
	if (go > 0)
		queue_loop(q);
	return NULL;
}

static void queue_free(struct queue *q)
{
	if (q->ring_ok)
		io_uring_queue_exit(&q->ring);
	if (q->efd >= 0)
		close(q->efd);
	if (q->mem)
		munmap(q->mem, q->mem_len);
}

/* One line at unmount: how many requests each queue served. */
static void log_served(const struct mfs_uring *u)
{
	char buf[512];
	size_t n = 0;
	unsigned long total = 0;
	unsigned i;

	buf[0] = 0;
	for (i = 0; i < u->nq && n < sizeof(buf); i++) {
		total += u->q[i].served;
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%squeue %u: %lu",
				      i ? ", " : "", i, u->q[i].served);
	}
	mfs_log(MFS_LOG_INFO, "io_uring served %lu requests (%s)", total,
		buf);
}

static void go(struct mfs_uring *u, int how)
{
	pthread_mutex_lock(&u->lock);
	u->go = how;
	pthread_cond_broadcast(&u->cond);
	pthread_mutex_unlock(&u->lock);
}

static void uring_free(struct mfs_uring *u)
{
	unsigned i;

	for (i = 0; i < u->nq; i++) {
		if (u->q[i].started)
			pthread_join(u->q[i].thread, NULL);
		queue_free(&u->q[i]);
	}
	if (u->go > 0 && !u->fell_back)
		log_served(u);
	if (u->fd >= 0)
		close(u->fd);
	pthread_cond_destroy(&u->cond);
	pthread_mutex_destroy(&u->lock);
	free(u->q);
	free(u);
}

/*
 * The kernel's number of queues: num_possible_cpus(), which is the count
 * of CPUs in /sys/devices/system/cpu/possible ("0-3,8-11"). If fewer
 * queues registered, the kernel would hold back every request forever,
 * so without the file there are no rings. 0 if it cannot be read.
 */
static unsigned possible_cpus(void)
{
	FILE *f = fopen("/sys/devices/system/cpu/possible", "re");
	unsigned a, b, n = 0;
	char sep;

	if (!f)
		return 0;
	while (fscanf(f, "%u", &a) == 1) {
		b = a;
		sep = (char)fgetc(f);
		if (sep == '-') {
			if (fscanf(f, "%u", &b) != 1 || b < a)
				break;
			sep = (char)fgetc(f);
		}
		n += b - a + 1;
		if (sep != ',')
			break;
	}
	fclose(f);
	return n;
}

int mfs_uring_prepare(struct mfs_fuse *d, size_t payload)
{
	struct mfs_uring *u;
	long page = sysconf(_SC_PAGESIZE);
	unsigned i;
	int rc = 0;

	if (d->uring || !d->se)
		return -EINVAL;
	u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	u->d = d;
	u->payload = (payload + (size_t)page - 1) & ~((size_t)page - 1);
	pthread_mutex_init(&u->lock, NULL);
	pthread_cond_init(&u->cond, NULL);
	/* The kernel makes one queue per possible CPU and expects each to
	 * have an entry before it uses any. */
	u->nq = possible_cpus();
	u->fd = fcntl(fuse_session_fd(d->se), F_DUPFD_CLOEXEC, 0);
	if (u->fd < 0)
		rc = -errno;
	else if (!u->nq)
		rc = -ENODEV;
	else if (!(u->q = calloc(u->nq, sizeof(*u->q))))
		rc = -ENOMEM;
	if (rc) {
		u->nq = 0;
		uring_free(u);
		return rc;
	}
	for (i = 0; i < u->nq; i++) {
		u->q[i] = (struct queue){ .u = u, .qid = i, .efd = -1 };
		rc = -pthread_create(&u->q[i].thread, NULL, queue_thread,
				     &u->q[i]);
		if (rc)
			break;
		u->q[i].started = true;
	}
	pthread_mutex_lock(&u->lock);
	while (u->set_up < i)
		pthread_cond_wait(&u->cond, &u->lock);
	if (!rc)
		rc = u->err;
	pthread_mutex_unlock(&u->lock);
	if (rc) {
		go(u, -1);
		uring_free(u);
		return rc;
	}
	d->uring = u;
	return 0;
}

void mfs_uring_go(struct mfs_fuse *d, bool init_sent)
{
	struct mfs_uring *u = d->uring;

	if (!u)
		return;
	if (!init_sent) {
		go(u, -1);
		uring_free(u);
		d->uring = NULL;
		return;
	}
	/* The session loop now sees only FORGETs and INTERRUPTs: polling
	 * for them would take a CPU from the rings' threads. */
	u->spin_us = d->ring_spin_us;
	u->loop_spin_us = d->spin_us;
	__atomic_store_n(&d->spin_us, 0, __ATOMIC_RELAXED);
	mfs_log(MFS_LOG_INFO, "serving requests over io_uring: %u queues of "
		"%u entries, polling %u us after each reply", u->nq, ENTRIES,
		u->spin_us);
	go(u, 1);
}

void mfs_uring_stop(struct mfs_fuse *d)
{
	struct mfs_uring *u = d->uring;
	unsigned i;

	if (!u)
		return;
	for (i = 0; i < u->nq; i++) {
		uint64_t one = 1;

		if (u->q[i].efd >= 0 &&
		    write(u->q[i].efd, &one, sizeof(one)) < 0)
			mfs_log(MFS_LOG_WARNING, "io_uring: cannot stop queue "
				"%u: %s", i, strerror(errno));
	}
	uring_free(u);
	d->uring = NULL;
}
