/* SPDX-License-Identifier: MIT */
/*
 * log.h — the core's one way to say something to a human.
 *
 * Messages go to stderr prefixed with the program name, unless a program
 * (the daemon, once detached) installs a sink such as syslog.
 */
#ifndef MFS_LOG_H
#define MFS_LOG_H

#include <stdarg.h>

enum { MFS_LOG_ERR = 3, MFS_LOG_WARNING = 4, MFS_LOG_NOTICE = 5,
       MFS_LOG_INFO = 6, MFS_LOG_DEBUG = 7 }; /* syslog priorities */

/* Program name used as prefix ("mmapfs", "mkfs.mmapfs", ...). */
void mfs_log_set_progname(const char *name);
const char *mfs_log_progname(void);
/* Install a sink (NULL restores stderr). Messages above max_level are
 * dropped (default MFS_LOG_INFO). */
void mfs_log_set_sink(void (*sink)(int level, const char *msg));
/* The sink installed now (NULL: stderr), so that a library function that
 * installs its own can put the caller's back. */
void (*mfs_log_get_sink(void))(int level, const char *msg);
void mfs_log_set_level(int max_level);

void mfs_log(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
