/* SPDX-License-Identifier: MIT */
/*
 * mkfs.c — mkfs.mmapfs: create an mmapfs image file.
 *
 * Layer: program. Parses and checks the command line, looks at the target
 * without changing it, then hands over to mfs_format() (txn.h), which does
 * all the writing. Behaves like mkfs.ext4 where that makes sense: -L, -U,
 * -F, -q, a size argument with K/M/G/T suffixes, refusal to overwrite a
 * file that already carries a file system unless forced.
 *
 * Rule: every check that can fail on a wrong argument runs before
 * mfs_format(), so a wrong argument never writes a byte. Every error is
 * one line on stderr, "mkfs.mmapfs: WHAT: WHY".
 *
 * Exit status: 0 success; 1 the command is well-formed but could not be
 * carried out (target refused, I/O error, ...); 2 the command line itself
 * is wrong (unknown option, bad size/label/UUID, missing IMAGE).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image.h"
#include "log.h"
#include "mmapfs/format.h"
#include "populate.h"
#include "probe.h"
#include "newfs.h"
#include "txn.h"

#ifndef MMAPFS_VERSION
#define MMAPFS_VERSION "unknown"
#endif

#define EXIT_FAIL 1
#define EXIT_USAGE 2

struct mkfs_args {
	const char *image;
	const char *size_arg;   /* the size as typed, NULL if not given */
	uint64_t size;          /* bytes, rounded down to the block size; 0: from the file */
	const char *label;      /* NULL: none */
	const char *root_dir;   /* -d: copy this directory in, NULL: none */
	uint8_t uuid[MFS_UUID_SIZE];
	uint32_t root_uid, root_gid; /* owner of / (default: who runs mkfs) */
	bool force, quiet, prealloc;
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: mkfs.mmapfs [OPTION]... IMAGE [SIZE]\n"
		"Create an mmapfs file system in the image file IMAGE.\n"
		"\n"
		"  -s, --size=SIZE    image size in bytes; K, M, G, T suffixes (binary);\n"
		"                     default: the size of an existing IMAGE\n"
		"  -L, --label=LABEL  volume label, at most %u bytes\n"
		"  -d, --root-directory=DIR\n"
		"                     copy the contents of DIR into the new file system\n"
		"  -U, --uuid=UUID    volume UUID (8-4-4-4-12 hex digits) or 'random'\n"
		"  -E root_owner=UID:GID\n"
		"                     owner of the root directory; default: the user\n"
		"                     running mkfs.mmapfs\n"
		"  -F, --force        overwrite an image that holds a file system\n"
		"  -p, --prealloc     allocate host space for the whole image now\n"
		"  -q, --quiet        print nothing but errors\n"
		"  -V, --version      print the version and exit\n"
		"  -h, --help         print this help and exit\n"
		"\n"
		"Exit status: 0 success, 1 failure, 2 command line error.\n",
		MFS_LABEL_MAX);
}

/* Human size for messages: the largest binary unit that divides it. */
static const char *fmt_size(uint64_t bytes, char *buf, size_t len)
{
	static const char *const units[] = { "bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	unsigned u = 0;

	while (u + 1 < sizeof(units) / sizeof(units[0]) && bytes && bytes % 1024 == 0) {
		bytes /= 1024;
		u++;
	}
	snprintf(buf, len, "%llu %s", (unsigned long long)bytes, units[u]);
	return buf;
}

static void fmt_uuid(const uint8_t *u, char *buf)
{
	char *p = buf;

	for (unsigned i = 0; i < MFS_UUID_SIZE; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*p++ = '-';
		p += sprintf(p, "%02x", u[i]);
	}
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* "random" or 8-4-4-4-12 hex digits. 0 or -EINVAL / -errno (getrandom). */
static int parse_uuid(const char *s, uint8_t *uuid)
{
	unsigned n = 0;

	if (strcmp(s, "random") == 0) {
		if (getrandom(uuid, MFS_UUID_SIZE, 0) != (ssize_t)MFS_UUID_SIZE)
			return -errno;
		uuid[6] = (uint8_t)((uuid[6] & 0x0f) | 0x40); /* version 4 */
		uuid[8] = (uint8_t)((uuid[8] & 0x3f) | 0x80); /* RFC 4122 variant */
		return 0;
	}
	if (strlen(s) != 36)
		return -EINVAL;
	for (unsigned i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return -EINVAL;
			continue;
		}
		if (hexval(s[i]) < 0 || hexval(s[i + 1]) < 0)
			return -EINVAL;
		uuid[n++] = (uint8_t)(hexval(s[i]) << 4 | hexval(s[i + 1]));
		i++;
	}
	return 0;
}

/* Size argument to bytes, rounded down to the block size and within the
 * image limits. 0 or an exit status (message printed). */
static int parse_size_arg(const char *s, uint64_t *out)
{
	char lim[32];
	uint64_t v;
	int rc = mfs_parse_size(s, &v);

	if (rc == -EINVAL) {
		mfs_log(MFS_LOG_ERR, "size '%s': not a valid size "
			"(a positive number of bytes, optionally with a K, M, G or T suffix)", s);
		return EXIT_USAGE;
	}
	if (rc == -ERANGE || v > MFS_IMAGE_MAX_BYTES) {
		mfs_log(MFS_LOG_ERR, "size '%s': too large (the maximum is %s)", s,
			fmt_size(MFS_IMAGE_MAX_BYTES, lim, sizeof(lim)));
		return EXIT_USAGE;
	}
	v -= v % MFS_BLOCK_SIZE;
	if (v < MFS_IMAGE_MIN_BYTES) {
		mfs_log(MFS_LOG_ERR, "size '%s': too small (the minimum is %s)", s,
			fmt_size(MFS_IMAGE_MIN_BYTES, lim, sizeof(lim)));
		return EXIT_USAGE;
	}
	*out = v;
	return 0;
}

/* -E options, comma-separated, as mke2fs takes them: root_owner[=UID:GID]
 * (without a value: the user running mkfs, which is also the default). */
static int parse_extended(const char *arg, struct mkfs_args *a)
{
	char *copy = strdup(arg), *save = NULL, *opt;
	int rc = 0;

	if (!copy) {
		mfs_log(MFS_LOG_ERR, "out of memory");
		return EXIT_FAIL;
	}
	for (opt = strtok_r(copy, ",", &save); opt && !rc;
	     opt = strtok_r(NULL, ",", &save)) {
		unsigned long long u, g;
		char *end;

		if (strcmp(opt, "root_owner") == 0) {
			a->root_uid = (uint32_t)getuid();
			a->root_gid = (uint32_t)getgid();
			continue;
		}
		if (strncmp(opt, "root_owner=", 11) == 0) {
			errno = 0;
			u = strtoull(opt + 11, &end, 10);
			if (!errno && end != opt + 11 && *end == ':' &&
			    end[1] >= '0' && end[1] <= '9') {
				g = strtoull(end + 1, &end, 10);
				if (!errno && !*end && u < UINT32_MAX &&
				    g < UINT32_MAX) {
					a->root_uid = (uint32_t)u;
					a->root_gid = (uint32_t)g;
					continue;
				}
			}
			mfs_log(MFS_LOG_ERR, "-E %s: not UID:GID (two numbers, "
				"e.g. root_owner=1000:1000)", opt);
			rc = EXIT_USAGE;
			break;
		}
		mfs_log(MFS_LOG_ERR, "-E %s: unknown extended option (known: "
			"root_owner[=UID:GID])", opt);
		rc = EXIT_USAGE;
	}
	free(copy);
	return rc;
}

/* Returns -1 to go on, or the exit status (after --help/--version: 0). */
static int parse_args(int argc, char **argv, struct mkfs_args *a)
{
	static const struct option longopts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "label", required_argument, NULL, 'L' },
		{ "root-directory", required_argument, NULL, 'd' },
		{ "uuid", required_argument, NULL, 'U' },
		{ "extended", required_argument, NULL, 'E' },
		{ "force", no_argument, NULL, 'F' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "prealloc", no_argument, NULL, 'p' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *uuid_arg = "random";
	int c, rc;

	/* As mke2fs up to 1.42 did: a user who makes an image can use it. */
	a->root_uid = (uint32_t)getuid();
	a->root_gid = (uint32_t)getgid();

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":s:L:d:U:E:FqpVh", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			a->size_arg = optarg;
			break;
		case 'L':
			a->label = optarg;
			break;
		case 'd':
			a->root_dir = optarg;
			break;
		case 'U':
			uuid_arg = optarg;
			break;
		case 'E':
			rc = parse_extended(optarg, a);
			if (rc)
				return rc;
			break;
		case 'F':
			a->force = true;
			break;
		case 'q':
			a->quiet = true;
			break;
		case 'p':
			a->prealloc = true;
			break;
		case 'V':
			printf("mkfs.mmapfs %s (on-disk format version %u)\n",
			       MMAPFS_VERSION, MFS_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		case ':':
			mfs_log(MFS_LOG_ERR, "%s: option requires an argument (see --help)",
				argv[optind - 1]);
			return EXIT_USAGE;
		default:
			if (optopt && strncmp(argv[optind - 1], "--", 2) != 0)
				mfs_log(MFS_LOG_ERR, "-%c: unknown option (see --help)", optopt);
			else
				mfs_log(MFS_LOG_ERR, "%s: unknown option or unexpected argument "
					"(see --help)", argv[optind - 1]);
			return EXIT_USAGE;
		}
	}

	if (optind >= argc) {
		mfs_log(MFS_LOG_ERR, "no image file given (usage: mkfs.mmapfs [OPTION]... IMAGE [SIZE])");
		return EXIT_USAGE;
	}
	if (argc - optind > 2) {
		mfs_log(MFS_LOG_ERR, "%s: too many arguments (usage: mkfs.mmapfs [OPTION]... IMAGE [SIZE])",
			argv[optind + 2]);
		return EXIT_USAGE;
	}
	a->image = argv[optind];
	if (!*a->image) {
		mfs_log(MFS_LOG_ERR, "empty image file name");
		return EXIT_USAGE;
	}
	if (argc - optind == 2) {
		if (a->size_arg) {
			mfs_log(MFS_LOG_ERR, "%s: size given twice (-s %s and SIZE)",
				argv[optind + 1], a->size_arg);
			return EXIT_USAGE;
		}
		a->size_arg = argv[optind + 1];
	}

	if (a->size_arg && (rc = parse_size_arg(a->size_arg, &a->size)))
		return rc;
	if (a->label && strlen(a->label) > MFS_LABEL_MAX) {
		mfs_log(MFS_LOG_ERR, "label: too long (%zu bytes; at most %u)",
			strlen(a->label), MFS_LABEL_MAX);
		return EXIT_USAGE;
	}
	if (a->label && !*a->label)
		a->label = NULL;
	if (a->root_dir) {
		struct stat st;

		if (stat(a->root_dir, &st) != 0) {
			mfs_log(MFS_LOG_ERR, "%s: %s", a->root_dir, strerror(errno));
			return EXIT_USAGE;
		}
		if (!S_ISDIR(st.st_mode)) {
			mfs_log(MFS_LOG_ERR, "%s: not a directory (-d takes a "
				"directory)", a->root_dir);
			return EXIT_USAGE;
		}
		if (access(a->root_dir, R_OK | X_OK) != 0) {
			mfs_log(MFS_LOG_ERR, "%s: %s", a->root_dir, strerror(errno));
			return EXIT_USAGE;
		}
	}
	rc = parse_uuid(uuid_arg, a->uuid);
	if (rc == -EINVAL) {
		mfs_log(MFS_LOG_ERR, "UUID '%s': not a valid UUID "
			"(8-4-4-4-12 hex digits, or 'random')", uuid_arg);
		return EXIT_USAGE;
	}
	if (rc) {
		mfs_log(MFS_LOG_ERR, "cannot generate a random UUID: %s", strerror(-rc));
		return EXIT_FAIL;
	}
	return -1;
}

/* A new image: its directory must exist and be writable. */
static int check_new(const struct mkfs_args *a)
{
	char *copy = strdup(a->image);
	const char *dir;
	struct stat st;
	int rc = EXIT_FAIL;

	if (!copy) {
		mfs_log(MFS_LOG_ERR, "%s: %s", a->image, strerror(ENOMEM));
		return EXIT_FAIL;
	}
	dir = dirname(copy);
	if (stat(dir, &st) < 0) {
		if (errno == ENOENT)
			mfs_log(MFS_LOG_ERR, "%s: directory %s does not exist", a->image, dir);
		else
			mfs_log(MFS_LOG_ERR, "%s: %s: %s", a->image, dir, strerror(errno));
	} else if (!S_ISDIR(st.st_mode)) {
		mfs_log(MFS_LOG_ERR, "%s: %s is not a directory", a->image, dir);
	} else if (access(dir, W_OK) < 0) {
		mfs_log(MFS_LOG_ERR, "%s: cannot create a file in %s: %s", a->image, dir,
			strerror(errno));
	} else if (!a->size) {
		mfs_log(MFS_LOG_ERR, "%s: no size given and the file does not exist "
			"(use -s SIZE)", a->image);
	} else {
		rc = 0;
	}
	free(copy);
	return rc;
}

/* An existing file: a regular file, not in use, writable, and holding no
 * file system unless forced. Takes the size from it when none was given.
 * Opens the file read-only and changes nothing. 0 or an exit status. */
static int check_existing(struct mkfs_args *a, const struct stat *st)
{
	char name[32], what[64], lim[32];
	uint64_t size;
	int fd, rc;

	if (S_ISDIR(st->st_mode)) {
		mfs_log(MFS_LOG_ERR, "%s: is a directory", a->image);
		return EXIT_FAIL;
	}
	if (S_ISBLK(st->st_mode)) {
		mfs_log(MFS_LOG_ERR, "%s: is a block device (an mmapfs image is a regular file)",
			a->image);
		return EXIT_FAIL;
	}
	if (!S_ISREG(st->st_mode)) {
		mfs_log(MFS_LOG_ERR, "%s: not a regular file", a->image);
		return EXIT_FAIL;
	}
	fd = open(a->image, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		mfs_log(MFS_LOG_ERR, "%s: %s", a->image, strerror(errno));
		return EXIT_FAIL;
	}
	/* A mounted image is locked by the daemon. Asking first gives the
	 * right message even when the image holds a file system and no -F. */
	if (flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK) {
		mfs_log(MFS_LOG_ERR, "%s is in use (mounted?)", a->image);
		rc = EXIT_FAIL;
		goto out_close;
	}
	rc = mfs_probe_signature(fd, name, sizeof(name));
	if (rc < 0) {
		mfs_log(MFS_LOG_ERR, "%s: cannot read: %s", a->image, strerror(-rc));
		rc = EXIT_FAIL;
		goto out_close;
	}
	if (rc == 1 && !a->force) {
		mfs_log(MFS_LOG_ERR, "%s contains %s; use -F to overwrite", a->image,
			mfs_probe_describe(name, what, sizeof(what)));
		rc = EXIT_FAIL;
		goto out_close;
	}
	rc = EXIT_FAIL;
	if (access(a->image, W_OK) < 0) {
		mfs_log(MFS_LOG_ERR, "%s: %s", a->image, strerror(errno));
		goto out_close;
	}
	if (!a->size) {
		size = (uint64_t)st->st_size - (uint64_t)st->st_size % MFS_BLOCK_SIZE;
		if (size < MFS_IMAGE_MIN_BYTES) {
			mfs_log(MFS_LOG_ERR, "%s: the file is too small (%lld bytes; the minimum "
				"is %s): use -s SIZE", a->image, (long long)st->st_size,
				fmt_size(MFS_IMAGE_MIN_BYTES, lim, sizeof(lim)));
			goto out_close;
		}
		if (size > MFS_IMAGE_MAX_BYTES) {
			mfs_log(MFS_LOG_ERR, "%s: the file is too large (%lld bytes; the maximum "
				"is %s): use -s SIZE", a->image, (long long)st->st_size,
				fmt_size(MFS_IMAGE_MAX_BYTES, lim, sizeof(lim)));
			goto out_close;
		}
		a->size = size;
	}
	rc = 0;
out_close:
	close(fd); /* drops the probe lock */
	return rc;
}

int main(int argc, char **argv)
{
	struct mkfs_args a = { 0 };
	struct mfs_format_opts opts = { 0 };
	char uuid[40], sz[32];
	struct stat st;
	bool exists;
	int rc;

	mfs_log_set_progname("mkfs.mmapfs");
	rc = parse_args(argc, argv, &a);
	if (rc >= 0)
		return rc;

	if (stat(a.image, &st) == 0) {
		exists = true;
		rc = check_existing(&a, &st);
	} else if (errno == ENOENT) {
		exists = false;
		rc = check_new(&a);
	} else {
		mfs_log(MFS_LOG_ERR, "%s: %s", a.image, strerror(errno));
		rc = EXIT_FAIL;
	}
	if (rc)
		return rc;

	opts.size = a.size;
	opts.force = exists; /* checked above; a file that appears meanwhile is refused */
	opts.prealloc = a.prealloc;
	opts.label = a.label;
	opts.uuid = a.uuid;
	opts.root_uid = a.root_uid;
	opts.root_gid = a.root_gid;
	fmt_uuid(a.uuid, uuid);
	if (!a.quiet) {
		printf("Creating mmapfs file system in %s\n", a.image);
		printf("  size:       %s (%llu blocks of %u bytes)\n",
		       fmt_size(a.size, sz, sizeof(sz)),
		       (unsigned long long)(a.size / MFS_BLOCK_SIZE), MFS_BLOCK_SIZE);
		printf("  UUID:       %s\n", uuid);
		printf("  label:      %s\n", a.label ? a.label : "(none)");
		fflush(stdout);
	}

	rc = mfs_format(a.image, &opts);
	if (rc == -EBUSY) {
		mfs_log(MFS_LOG_ERR, "%s is in use (mounted?)", a.image);
		return EXIT_FAIL;
	}
	if (rc == -EEXIST) {
		mfs_log(MFS_LOG_ERR, "%s: created by someone else meanwhile; not overwritten",
			a.image);
		return EXIT_FAIL;
	}
	if (rc < 0) {
		mfs_log(MFS_LOG_ERR, "%s: %s", a.image, strerror(-rc));
		return EXIT_FAIL;
	}
	if (!a.quiet)
		printf("Writing superblocks, free-space tree and root directory: done\n");
	if (a.root_dir) {
		struct mfs_fs *fs;
		uint64_t files = 0, bytes = 0;

		if (!a.quiet) {
			printf("Copying files from %s: ", a.root_dir);
			fflush(stdout);
		}
		rc = mfs_fs_open(a.image, 0, &fs);
		if (rc) {
			mfs_log(MFS_LOG_ERR, "%s: %s", a.image, strerror(-rc));
			return EXIT_FAIL;
		}
		rc = mfs_populate(fs, a.root_dir, &files, &bytes);
		if (rc) {
			mfs_fs_close(fs);
			if (!a.quiet)
				printf("failed\n");
			return EXIT_FAIL;
		}
		rc = mfs_fs_close(fs);
		if (rc) {
			mfs_log(MFS_LOG_ERR, "%s: %s", a.image, strerror(-rc));
			return EXIT_FAIL;
		}
		if (!a.quiet)
			printf("%llu files, %s\n", (unsigned long long)files,
			       fmt_size(bytes, sz, sizeof(sz)));
	}
	if (fflush(stdout) == EOF || ferror(stdout)) {
		mfs_log(MFS_LOG_ERR, "standard output: %s", strerror(errno));
		return EXIT_FAIL;
	}
	return 0;
}
